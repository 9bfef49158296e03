"""Independent tasks on Dask, for ``features`` and ``separate``: a local cluster of worker processes or an existing
scheduler, each result handed back as it finishes.

Workers are set up for this work, as the process of an in-process run is. Dask starts its worker processes with
``MALLOC_TRIM_THRESHOLD_=65536``, so glibc handed every freed block back to the kernel and the scattering transform
page-faulted its tensors in afresh on every batch (features of 5 sols on 2 cores: 2–3 times the in-process time,
half of it system time); every task therefore tunes the allocator (:func:`unmix.allocator.tune_allocator`) over
Dask's value, and a local cluster does not set it at all. Tasks run in a thread, and glibc gives a thread an arena
whose heaps hold at most 64 MiB, so every larger block (a record of a few sols) was mapped afresh each time: local
workers start with one arena for all threads (``GLIBC_TUNABLES=glibc.malloc.arena_max=1``; workers of another
scheduler profit from the same setting). A local cluster gives each of its ``N`` workers one task at a time and
``cores // N`` math-library threads (Dask's default is 1).

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
    """A task's token: cancelled once the client has set the run's Dask :class:`~distributed.Event`.

    On a local cluster it also carries the client's advice of how many torch threads a task should use (the Dask
    :class:`~distributed.Variable` ``threads``): when fewer tasks than workers are left, the last ones take over the
    cores of the idle workers."""

    def __init__(self, name: str, threads: str | None = None) -> None:
        super().__init__()
        self._name, self._threads, self._next, self._seen = name, threads, 0.0, False

    def cancel(self) -> None:
        raise TypeError("a task cannot cancel its run; the client does")

    @property
    def cancelled(self) -> bool:
        if not self._seen and time.monotonic() >= self._next:
            from distributed import Event

            self._next = time.monotonic() + CANCEL_POLL_S
            try:
                self._seen = Event(self._name).is_set()
                if self._threads is not None:
                    _use_threads(self._threads)
            except Exception:  # the scheduler is gone: nobody waits for this result any more
                self._seen = True
        return self._seen

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled("cancelled by user")


def _use_threads(variable: str) -> None:
    """Give torch (where the task uses it) the number of threads the client advises now."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return
    from distributed import Variable

    n = int(Variable(variable).get(timeout=5))
    if n != torch.get_num_threads():
        torch.set_num_threads(n)


def _run_task(func: Callable, args: tuple, shared: dict[str, Any], cancel_event: str, threads: str | None):
    """What a worker runs: ``func(*args, **shared, token=...)`` in a process whose allocator is tuned as in-process."""
    _tune_allocator()
    return func(*args, **shared, token=_SchedulerToken(cancel_event, threads))


def _tune_allocator() -> None:
    """:func:`unmix.allocator.tune_allocator` over the settings Dask gives its workers."""
    import dask

    from unmix.allocator import tune_allocator

    tune_allocator(not_the_users=dask.config.get("distributed.nanny.pre-spawn-environ", {}))


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
    """A local cluster of ``workers`` single-task processes, set up as the module docstring says. A worker holds only
    the task it runs (none queued behind it), so a worker that dies takes the blame of that task alone, and a task
    that killed two workers fails. Dask's nanny puts its worker environment into this process's too; this process
    gets its own back."""
    import dask
    from distributed import LocalCluster

    threads = str(threads_per_worker(workers))
    environ = {"MALLOC_TRIM_THRESHOLD_": None, "GLIBC_TUNABLES": "glibc.malloc.arena_max=1",
               **dict.fromkeys(_THREAD_VARS, threads)}
    saved = {k: os.environ.get(k) for k in (*environ, "PYTHONHASHSEED")}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                              "distributed.scheduler.allowed-failures": 1,
                              "distributed.scheduler.worker-saturation": 1.0}):
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
              on_result: OnResult, token: CancelToken, shared: dict[str, Any] | None = None) -> None:
    """Run ``func(*call, **shared, token=...)`` for every call on Dask (see :func:`dask_client`) and call
    ``on_result`` here as each finishes, in the order they finish.

    ``shared`` values go to the workers once, not with every call. ``labels`` name the calls (input paths): a call
    whose worker died is handed on as a :class:`DataError` of its label. ``token`` is checked every 0.1 s; cancelling
    it stops the tasks (they see it at their next check) and raises :class:`Cancelled`. An exception of
    ``on_result`` stops all. On a local cluster, unless the user set ``OMP_NUM_THREADS``, the last tasks get the
    cores of workers that have nothing left to do."""
    from distributed import Event, Variable, as_completed

    if not calls:
        return
    run = uuid.uuid4().hex[:12]
    adapt = not scheduler and "OMP_NUM_THREADS" not in os.environ
    with dask_client(workers, scheduler) as client:
        cancel = Event(f"unmix-cancel-{run}", client=client)
        threads = Variable(f"unmix-threads-{run}", client=client) if adapt else None
        advice = _advise(threads, workers, len(calls), None)
        common = {k: client.scatter(v, broadcast=False, hash=False) for k, v in (shared or {}).items()}
        index = {client.submit(_run_task, func, call, common, cancel.name, threads and threads.name, pure=False,
                               key=f"unmix-{run}-{i}"): i for i, call in enumerate(calls)}
        finished = as_completed(list(index))
        try:
            while not finished.is_empty():
                token.check()
                batch = finished.next_batch(block=False)
                if not batch:
                    time.sleep(_WAIT_S)
                for fut in batch:
                    if not fut.done():  # its worker died after it finished: Dask computes it again
                        finished.add(fut)
                        continue
                    i = index.pop(fut)
                    value, error = _outcome(fut, labels[i])
                    fut.release()
                    advice = _advise(threads, workers, len(index), advice)
                    on_result(i, value, error)
        except BaseException:
            cancel.set()
            client.cancel(list(index))
            raise


def _advise(threads, workers: int, left: int, advice: int | None) -> int | None:
    """Set the threads each task should use while ``left`` tasks remain (see :class:`_SchedulerToken`)."""
    if threads is None or left == 0:
        return advice
    n = threads_per_worker(min(workers, left))
    if n != advice:
        threads.set(n)
    return n


def _outcome(fut, label: str) -> tuple[Any, BaseException | None]:
    """A finished future's value, or what went wrong (a dead worker as a :class:`DataError` of ``label``)."""
    from distributed import KilledWorker

    try:
        return fut.result(), None
    except KilledWorker:
        return None, DataError("the Dask worker died while working on this input (out of memory?)", label)
    except Exception as exc:  # the task's own error, or the scheduler's (e.g. CancelledError: it lost the task)
        return None, exc
