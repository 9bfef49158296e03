"""Feature extraction on Dask: one task per input file, results gathered by the client into the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from unmix.errors import UnmixError
from unmix.h5safe import DiskFullError
from unmix.jobs import CancelToken, Progress

if TYPE_CHECKING:
    from unmix.features.store import FileFeatures


def run_on_dask(compute: Callable[..., FileFeatures], todo: list[tuple[Path, Path]], config: dict,
                device: str, workers: int, scheduler: str | None, accept: Callable[[FileFeatures, Path], None],
                failures: list[str], progress: Progress, token: CancelToken, on_error=None) -> None:
    """Run ``compute(path, config, device, token=...)`` for every input on Dask (:func:`unmix.distributed.run_tasks`);
    ``accept(result, shard)`` runs here as results arrive.

    ``compute`` (:func:`unmix.features.store.features_for_file`) must be importable by the workers; its
    :class:`~unmix.features.store.FileFeatures` (a dataclass of lists and arrays) comes back through Dask's own
    transport. An input's :class:`UnmixError` (a worker that died on it included) is collected in ``failures`` (and
    passed to ``on_error``); a full disk, cancelling and any other exception stop all.
    """
    from unmix.distributed import run_tasks

    finished = 0

    def handle(i: int, result, error: BaseException | None) -> None:
        nonlocal finished
        path, shard = todo[i]
        try:
            if error is not None:
                raise error
            accept(result, shard)
        except DiskFullError:
            raise
        except UnmixError as exc:
            failures.append(exc.message)
            if on_error:
                on_error(exc.message)
        finished += 1
        progress(finished / len(todo), path.name)

    run_tasks(compute, [(str(p), config, device) for p, _ in todo], [str(p) for p, _ in todo], workers, scheduler,
              handle, token)
