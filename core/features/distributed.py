"""Feature extraction on Dask: one task per input file. Workers of a local cluster write their input's segment
themselves and send back a summary; those of another scheduler send the features, which the client writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from unmix.errors import UnmixError
from unmix.h5safe import DiskFullError
from unmix.jobs import CancelToken, Progress


def run_on_dask(compute: Callable[..., Any], todo: list[tuple[Path, Path]], calls: list[tuple], device: str,
                workers: int, scheduler: str | None, accept: Callable[[Any, Path], None], failures: list[str],
                progress: Progress, token: CancelToken, on_error=None) -> None:
    """Run ``compute(*call, device, token=...)`` for every input of ``todo`` (``(input, segment)``; ``calls`` in the
    same order) on Dask (:func:`unmix.distributed.run_tasks`); ``accept(result, segment)`` runs here as results
    arrive.

    ``compute`` (:func:`unmix.features.store.features_for_file`, or :func:`~unmix.features.store.segment_for_file`
    when workers write their own segments) must be importable by the workers; what it returns comes back through
    Dask's own transport. An input's :class:`UnmixError` (a worker that died on it included) is collected in
    ``failures`` (and passed to ``on_error``); a full disk, cancelling and any other exception stop all.
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

    run_tasks(compute, [(*call, device) for call in calls], [str(p) for p, _ in todo], workers, scheduler, handle,
              token)
