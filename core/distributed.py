"""Independent tasks on Dask, for ``features`` and ``separate``: a local cluster of worker processes or an existing
scheduler, each result handed back as it finishes.

Workers are set up for this work, as the process of an in-process run is. Dask starts its worker processes with
``MALLOC_TRIM_THRESHOLD_=65536``, so glibc handed every freed block back to the kernel and the scattering transform
page-faulted its tensors in afresh on every batch (features of 5 sols on 2 cores: 80–120 s instead of 32 s, most
of it system time); every task therefore tunes the allocator (:func:`unmix.allocator.tune_allocator`) over Dask's
value, and a local cluster does not set it at all. A local cluster gives each of its ``N`` workers one task at a
time and ``cores // N`` math-library threads (Dask's default is 1).

A task gets a cancel token that asks the scheduler (at most every :data:`CANCEL_POLL_S`) whether the run was
cancelled, so a running task stops at its next check, also on workers of a remote scheduler.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from unmix.errors import ConfigError, DataError
from unmix.jobs import Cancelled, CancelToken

#: Seconds between a task's questions to the scheduler whether its run was cancelled.
CANCEL_POLL_S = 0.5
#: Seconds between the client's looks at its unfinished tasks (and at its own cancel token).
_WAIT_S = 0.1
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: ``on_result(index, value, error)``: the task's return value, or the exception it raised (then value is None).
OnResult = Callable[[int, Any, "BaseException | None"], None]


class _SchedulerToken(CancelToken):
    """A task's token: cancelled once the client has set the run's Dask :class:`~distributed.Event`."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name, self._next, self._seen = name, 0.0, False

    def cancel(self) -> None:
        raise TypeError("a task cannot cancel its run; the client does")

    @property
    def cancelled(self) -> bool:
        if not self._seen and time.monotonic() >= self._next:
            from distributed import Event

            self._next = time.monotonic() + CANCEL_POLL_S
            try:
                self._seen = Event(self._name).is_set()
            except Exception:  # the scheduler is gone: nobody waits for this result any more
                self._seen = True
        return self._seen

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled("cancelled by user")


def _run_task(func: Callable, args: tuple, cancel_event: str):
    """What a worker runs: ``func(*args, token=...)`` in a process whose allocator is tuned as in-process."""
    import dask

    from unmix.allocator import tune_allocator

    tune_allocator(not_the_users=dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    return func(*args, token=_SchedulerToken(cancel_event))


class _QuickExit(WorkerPlugin):
    """Worker plugin of local clusters: the worker process ends without tearing down its interpreter.

    A worker that imported torch spent seconds of CPU in interpreter teardown after closing, and Dask's nanny killed
    it after 4 s; its work is done and reported by then, so nothing is lost by ending at once."""

    name = "unmix-quick-exit"

    def setup(self, worker) -> None:
        import atexit

        atexit.register(_exit_now)


def _exit_now() -> None:
    import logging
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def threads_per_worker(workers: int) -> int:
    """Math-library threads of each local worker: the cores this process may use, shared out."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, workers))


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None) -> Iterator[Any]:
    """A :class:`distributed.Client` of the scheduler at ``scheduler``, else of a new local cluster of ``workers``
    processes (closed on exit)."""
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    with _local_cluster(workers) as cluster, Client(cluster) as client:
        client.register_plugin(_QuickExit())
        yield client


@contextlib.contextmanager
def _local_cluster(workers: int) -> Iterator[Any]:
    """A local cluster of ``workers`` single-task processes, set up as the module docstring says. Dask's nanny puts
    its worker environment into this process's too; this process gets its own back."""
    import dask
    from distributed import LocalCluster

    threads = str(threads_per_worker(workers))
    environ = {"MALLOC_TRIM_THRESHOLD_": None, **dict.fromkeys(_THREAD_VARS, threads)}
    saved = {k: os.environ.get(k) for k in (*environ, "PYTHONHASHSEED")}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                              "distributed.scheduler.allowed-failures": 1}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None)
        with cluster:
            yield cluster
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_tasks(func: Callable, calls: Sequence[tuple], labels: Sequence[str], workers: int, scheduler: str | None,
              on_result: OnResult, token: CancelToken) -> None:
    """Run ``func(*call, token=...)`` for every call on Dask (see :func:`dask_client`) and call ``on_result`` here as
    each finishes, in the order they finish. ``labels`` name the calls (input paths): a call whose worker died is
    handed on as a :class:`DataError` of its label. ``token`` is checked every 0.1 s; cancelling it stops the tasks
    (they see it at their next check) and raises :class:`Cancelled`. An exception of ``on_result`` stops all."""
    from distributed import Event

    run = uuid.uuid4().hex[:12]
    with dask_client(workers, scheduler) as client:
        cancel = Event(f"unmix-cancel-{run}", client=client)
        pending = {client.submit(_run_task, func, call, cancel.name, pure=False, key=f"unmix-{run}-{i}"): i
                   for i, call in enumerate(calls)}
        try:
            while pending:
                if token.cancelled:
                    raise Cancelled("cancelled by user")
                finished = [f for f in pending if f.done()]
                if not finished:
                    time.sleep(_WAIT_S)
                for fut in finished:
                    i = pending.pop(fut)
                    value, error = _outcome(fut, labels[i])
                    fut.release()
                    on_result(i, value, error)
        except BaseException:
            cancel.set()
            client.cancel(list(pending))
            raise


def _outcome(fut, label: str) -> tuple[Any, BaseException | None]:
    """A finished future's value, or what went wrong (a dead worker as a :class:`DataError` of ``label``)."""
    from distributed import KilledWorker

    if fut.status == "finished":
        return fut.result(), None
    try:
        error = fut.exception()
    except BaseException as exc:  # e.g. CancelledError: the scheduler lost the task
        error = exc
    if isinstance(error, KilledWorker):
        error = DataError("the Dask worker died while working on this input (out of memory?)", label)
    return None, error
