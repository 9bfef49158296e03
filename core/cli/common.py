"""What every ``unmix`` command shares: the progress display and cancel token of a job, and common options."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

import click
from tqdm import tqdm

from unmix.jobs import CancelToken
from unmix.logs import ProgressLog


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


class ByteSize(click.ParamType):
    """A size in bytes written like 2GB, 512MiB or 1e9 (dask.utils.parse_bytes)."""

    name = "SIZE"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        from dask.utils import parse_bytes

        try:
            size = int(parse_bytes(str(value)))
        except (ValueError, TypeError):
            self.fail(f"{value!r} is not a size (write e.g. 2GB, 512MiB)", param, ctx)
        if size <= 0:
            self.fail(f"{value!r}: the size must be positive", param, ctx)
        return size
