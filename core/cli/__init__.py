"""The ``unmix`` command line: thin commands over ``core``; user errors print one line, never a traceback."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from tqdm import tqdm

from unmix import __version__
from unmix.errors import UnmixError, describe_os_error
from unmix.jobs import Cancelled, CancelToken
from unmix.logs import ProgressLog, setup_logging, teardown_logging

log = logging.getLogger(__name__)

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130


class CliProgress:
    """Maps the job protocol's ``progress(fraction, message)`` onto a tqdm bar on stderr."""

    def __init__(self, desc: str, enabled: bool = True) -> None:
        self.bar = tqdm(total=1000, desc=desc, unit="‰", leave=False, disable=not enabled,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
        self._last = 0

    def __call__(self, fraction: float, message: str = "") -> None:
        n = int(round(1000 * min(max(fraction, 0.0), 1.0)))
        if n > self._last:
            self.bar.update(n - self._last)
            self._last = n
        if message:
            self.bar.set_postfix_str(message, refresh=False)

    def close(self) -> None:
        self.bar.close()


#: Global settings of the current invocation (set by ``main``'s options).
SETTINGS: dict = {"progress_every": 10.0}


@contextlib.contextmanager
def job(desc: str, quiet: bool = False) -> Iterator[tuple[CliProgress | ProgressLog, CancelToken]]:
    """Progress (a tqdm bar on a terminal, periodic log lines otherwise) + a cancel token set by the first Ctrl-C
    (a second Ctrl-C aborts at once)."""
    token = CancelToken()
    if sys.stderr.isatty() or quiet:
        progress = CliProgress(desc, enabled=not quiet)
    else:  # a pipe, a file, a batch scheduler: plain lines every --progress-every seconds and 10 %
        progress = ProgressLog(desc, every=SETTINGS["progress_every"])
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        click.echo("\ncancelling… (Ctrl-C again to abort at once)", err=True)

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not in the main thread
        previous = None
    try:
        yield progress, token
    finally:
        progress.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


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
              help="when stderr is not a terminal: seconds between progress lines (also at least 10 % apart)")
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

        ctx.exit(run(self_test_out))
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


gap_options = [
    click.option("--gap-policy", type=click.Choice(["split", "fill", "error"]), default="split", show_default=True,
                 help="split into gap-free segments, fill short gaps, or refuse gapped data"),
    click.option("--max-fill", type=click.IntRange(min=0), default=0, show_default=True,
                 help="with --gap-policy fill: longest gap (samples) filled by linear interpolation"),
    click.option("--resample", "resample_to", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="resample every channel to this rate (Hz) instead of refusing mixed rates"),
]

#: Damaged inputs (truncated or corrupt miniSEED, pieces of a file that disagree) are refused unless this is given.
allow_damaged_option = click.option(
    "--allow-damaged", is_flag=True,
    help="use the readable part of damaged files (truncated or corrupt miniSEED, pieces of one file that disagree) "
         "instead of refusing them; the damage is reported and kept in the provenance")
gap_options.append(allow_damaged_option)


def with_options(options):
    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f
    return deco


# Commands live in submodules (one per area) that register themselves on ``main`` when imported.
from unmix.cli import bench, data, fetch, model, separate  # noqa: E402, F401
