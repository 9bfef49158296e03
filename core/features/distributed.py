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


def run_on_dask(compute: Callable[[str, dict, str], FileFeatures], todo: list[tuple[Path, Path]], config: dict,
                device: str, workers: int, scheduler: str | None, accept: Callable[[FileFeatures, Path], None],
                failures: list[str], progress: Progress, token: CancelToken, on_error=None) -> None:
    """Submit ``compute(path, config, device)`` for every input; ``accept(result, shard)`` runs here as results arrive.

    ``compute`` (:func:`unmix.features.store.features_for_file`) must be importable by the workers; its
    :class:`~unmix.features.store.FileFeatures` (a dataclass of lists and arrays) comes back through Dask's own
    transport. An input's :class:`UnmixError` is collected in ``failures`` (and passed to ``on_error``); a full disk
    stops all.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="20s")
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(compute, str(p), config, device, pure=False, key=f"unmix-{shard.stem}"):
                   (p, shard) for p, shard in todo}
        for i, fut in enumerate(as_completed(futures)):
            if token.cancelled:
                client.cancel(list(futures))
                token.check()
            p, shard = futures[fut]
            try:
                accept(fut.result(), shard)
            except DiskFullError:
                raise
            except UnmixError as exc:
                failures.append(exc.message)
                if on_error:
                    on_error(exc.message)
            progress((i + 1) / len(todo), p.name)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
