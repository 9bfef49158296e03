"""The ``unmix`` command line: thin commands over the computation; user errors print one line, never a traceback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from unmix import __version__
from unmix.cli.common import SETTINGS
from unmix.errors import UnmixError, describe_os_error
from unmix.jobs import Cancelled
from unmix.logs import setup_logging, teardown_logging

log = logging.getLogger(__name__)

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130


class UnmixGroup(click.Group):
    """Click group that turns user errors and cancellation into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UnmixError as exc:
            _fail(ctx, exc.message, EXIT_USER_ERROR)
        except OSError as exc:  # permissions, a file where a folder is needed, a full disk: one line, no traceback
            message = describe_os_error(exc)
            if message is None:
                log.exception("unexpected operating-system error", extra={"console": False})
                raise
            _fail(ctx, message, EXIT_USER_ERROR)
        except (Cancelled, KeyboardInterrupt):
            click.echo("cancelled", err=True)
            log.info("cancelled", extra={"console": False})
            ctx.exit(EXIT_CANCELLED)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception:
            log.exception("internal error", extra={"console": False})  # the traceback reaches --log-file too
            raise


def _fail(ctx: click.Context, message: str, status: int) -> None:
    """The one error line on stderr (also recorded in --log-file), then exit with ``status``."""
    click.echo(f"error: {message}", err=True)
    log.error(message, extra={"console": False})
    ctx.exit(status)


def _load_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Eager ``--config``: the file becomes the ``default_map`` of every command (command-line options win)."""
    if value is not None:
        from unmix.config import load_config

        try:
            ctx.default_map = {**(ctx.default_map or {}), **load_config(value, ctx.command)}
        except UnmixError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(EXIT_USER_ERROR)
    return value


@click.group(cls=UnmixGroup, context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True,
             no_args_is_help=True)
@click.version_option(__version__, prog_name="unmix")
@click.option("--self-test", "self_test", is_flag=True,
              help="check this installation (miniSEED/SAC, features, training, clustering, report, every separation "
                   "method, FDSN fetch, GUI) and exit")
@click.option("--self-test-out", type=click.Path(file_okay=False), default=None,
              help="empty or new folder for the self-test's files and screenshot (default: a new temporary folder)")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None, is_eager=True,
              expose_value=False, callback=_load_config,
              help="TOML file of option values: top-level keys for these global options, a [COMMAND] table per "
                   "command (keys are option names, e.g. gap-policy = \"fill\"); command-line options win")
@click.option("-v", "--verbose", count=True,
              help="more detail on stderr (-v: info, -vv: debug, -vvv: other libraries too)")
@click.option("-q", "--quiet", is_flag=True, help="only errors on stderr (no progress, no warnings)")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="append the full debug log to this file, written as it goes")
@click.option("--progress-every", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="when stderr is not a terminal: seconds between progress lines (also at least 10 % apart; "
                   "a line at least every 6× this, ≥ 1 min, while a step runs)")
@click.pass_context
def main(ctx: click.Context, self_test: bool, self_test_out: str | None, verbose: int, quiet: bool,
         log_file: Path | None, progress_every: float) -> None:
    """Unmix: multi-scale clustering and source separation of InSight seismic records."""
    from unmix.allocator import tune_allocator

    try:
        setup_logging(verbose, quiet, log_file)
        ctx.call_on_close(teardown_logging)
    except OSError as exc:
        click.echo(f"error: {describe_os_error(exc) or exc}", err=True)
        ctx.exit(EXIT_USER_ERROR)
    SETTINGS["progress_every"] = progress_every
    log.debug("unmix %s: %s", __version__, " ".join(sys.argv))
    tune_allocator()
    if self_test:
        from unmix.selftest import run

        ctx.exit(run(self_test_out, cli=ctx.command))
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# The commands live in one submodule per area; each lists its commands in ``COMMANDS``.
from unmix.cli import bench, data, fetch, model, separate  # noqa: E402
from unmix.cli import generate as _generate  # noqa: E402

for _area in (data, fetch, model, _generate, separate, bench):
    for _command in _area.COMMANDS:
        main.add_command(_command)
