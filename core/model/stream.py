"""Model inputs for stores larger than memory: a memory budget, and reading the store piece by piece.

Training and prediction hold every window's features in memory when the store fits :data:`DEFAULT_MEMORY_BUDGET`
(or the budget given); otherwise they *stream*: the preprocessing is fitted in passes over the training windows
(:class:`unmix.model.data.StreamingFit`), each epoch reads the training windows in store chunks
(:attr:`unmix.features.FeatureStore.chunk_windows` windows) in a shuffled order, several chunks at a time (a shuffle
buffer, as many as half the budget allows, at most :data:`MAX_BUFFER_CHUNKS`), the next buffer read by a background
thread while the network trains on the current one. The inputs of each chunk are computed once and kept on disk
for later epochs (:class:`InputReader`; after a projection they are far smaller than the store's features), so that
memory does not grow with the store.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

from unmix.allocator import release_memory
from unmix.errors import ConfigError
from unmix.features import FeatureStore
from unmix.jobs import CancelToken, Progress
from unmix.model.data import ScalePrep, StreamingFit, offset_rows

if TYPE_CHECKING:
    from unmix.model.network import FactorialVAE
    from unmix.model.trained import TrainedModel

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Memory for the model inputs of an in-memory run (512 MiB): a 2-sol store (≈ 3 400 windows) is held, larger ones
#: stream. Streamed epochs read back from scratch files run as fast as in-memory ones and the run takes half the
#: memory (8 sols: 0.46 against 0.86 GB peak; docs/performance.md, "Mission scale, fifth pass").
DEFAULT_MEMORY_BUDGET = 512 * 1024**2
#: Most store chunks in one shuffle buffer (about 65 000 windows from 16 places in the store), whatever the budget.
MAX_BUFFER_CHUNKS = 16
#: How often (s) a wait for the background reader checks the cancel token.
POLL_S = 0.1
#: Most windows evaluated in one forward pass.
PIECE = 4096
#: Rows of a store chunk that the preprocessing fit takes at a time.
FIT_ROWS = 1024
#: Rows converted to network inputs at a time (their float64 working copies stay a few MB; no slower than more).
CONVERT_ROWS = 256


def memory_budget(value: int | None) -> int:
    """The budget in bytes (None: :data:`DEFAULT_MEMORY_BUDGET`); refuses a budget that is not positive."""
    budget = DEFAULT_MEMORY_BUDGET if value is None else int(value)
    if budget <= 0:
        raise ConfigError(f"the memory budget must be positive, got {budget} bytes")
    return budget


def window_bytes(store: FeatureStore) -> dict[int, int]:
    """Bytes of one window's features per scale as read from the store (float32 real and imaginary parts)."""
    per = len(store.config.components) * len(store.description) * 2 * 4
    return {int(s): per for s in store.scales}


def in_memory_bytes(store: FeatureStore, pca: int, fitting: bool = True) -> int:
    """Estimated peak memory of holding ``store`` in memory as model inputs (today's in-memory path).

    Every scale's features (float32), the inputs kept for the network (float32; as large as the features unless
    projected on ``pca`` axes), and float64 working copies of one scale: about 9 times its features while fitting the
    preprocessing (columns, temporaries, the SVD of a projection), 6 times while standardising.
    """
    per = window_bytes(store)
    raw = sum(per.values())
    inputs = 4 * pca * len(per) if pca > 0 else raw
    return store.n_windows * (raw + inputs + (9 if fitting else 6) * max(per.values()))


def describe(need: int, budget: int) -> str:
    from dask.utils import format_bytes

    return f"≈{format_bytes(need)} of model inputs, budget {format_bytes(budget)}"


# -- reading in the background -----------------------------------------------------------------------------------------
_READER: ThreadPoolExecutor | None = None
_READER_LOCK = threading.Lock()


def _reader() -> ThreadPoolExecutor:
    """The process's one background reader thread, shared by every run: glibc gives each new thread a malloc arena
    of its own, which keeps what it freed, so a thread per pass made a streamed training's memory grow with the
    number of passes (measured in docs/performance.md, "Mission scale, fifth pass")."""
    global _READER
    with _READER_LOCK:
        if _READER is None:
            _READER = ThreadPoolExecutor(1, thread_name_prefix="unmix-read")
        return _READER


def prefetched(jobs: list[Callable[[threading.Event], T]], token: CancelToken) -> Iterator[T]:
    """Results of ``jobs`` in order, each next one computed by the background reader while the caller uses the
    current.

    A job gets a stop event to check between its pieces; closing the iterator (or a cancelled ``token`` while
    waiting, checked every :data:`POLL_S`) sets it and drops the jobs not started.
    """
    stop = threading.Event()
    pool = _reader()
    ahead = None
    try:
        ahead = pool.submit(jobs[0], stop) if jobs else None
        for i in range(len(jobs)):
            current = ahead
            ahead = pool.submit(jobs[i + 1], stop) if i + 1 < len(jobs) else None
            while True:
                token.check()
                try:
                    result = current.result(timeout=POLL_S)
                    break
                except TimeoutError:
                    continue
            yield result
    finally:
        stop.set()
        if ahead is not None:
            ahead.cancel()


def chunk_inputs(store: FeatureStore, model: TrainedModel, rows: np.ndarray | slice,
                 stop: threading.Event | None = None) -> dict[int, torch.Tensor]:
    """Network inputs (CPU float32) of the store windows ``rows`` (sorted indices, or a slice of windows), every
    scale; empty when stopped. Features are read :data:`FIT_ROWS` windows of one scale at a time and converted
    :data:`CONVERT_ROWS` rows at a time, so a chunk's raw features (and their float64 copies) are never held whole."""
    return chunk_views(store, model, rows, stop, side=False)[0]


def chunk_views(store: FeatureStore, model: TrainedModel, rows: np.ndarray | slice,
                stop: threading.Event | None = None, side: bool = True
                ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """:func:`chunk_inputs` and, from the same reads, the windows' sparsity columns (:meth:`TrainedModel.scale_side`)
    at the scales where ``side`` and the model's sparsity splits need them; both empty when stopped."""
    rows = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else np.asarray(rows, np.int64)
    out, sides = {}, {}
    for s in model.scales:
        parts, side_parts = [], []
        for b in range(0, len(rows), FIT_ROWS):
            if stop is not None and stop.is_set():
                return {}, {}
            a = store.read_rows(s, rows[b:b + FIT_ROWS])
            parts.append(model.scale_inputs(s, a, CONVERT_ROWS))
            if side and s in model.side_scales():
                side_parts.append(model.scale_side(s, a))
        out[s] = torch.cat(parts) if len(parts) != 1 else parts[0]
        if side_parts:
            sides[s] = torch.cat(side_parts)
    release_memory()  # the freed reads go back to the system, so they do not pile up in the arena
    return out, sides


def held_inputs(store: FeatureStore, model: TrainedModel) -> dict[int, torch.Tensor]:
    """Every window's network inputs (CPU float32), for a store that fits the budget: one scale's features read and
    converted at a time (:data:`CONVERT_ROWS` rows at a time), each freed before the next is read."""
    return held_views(store, model, side=False)[0]


def held_views(store: FeatureStore, model: TrainedModel, side: bool = True
               ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """:func:`held_inputs` and, from the same reads, the sparsity columns the model's sparsity splits need."""
    x, sides = {}, {}
    for s in model.scales:
        a = store.features(s)
        x[s] = model.scale_inputs(s, a, CONVERT_ROWS)
        if side and s in model.side_scales():
            sides[s] = model.scale_side(s, a)
        del a
        release_memory()
    return x, sides


def _read_scale(store: FeatureStore, scale: int, rows: np.ndarray, stop: threading.Event) -> np.ndarray:
    return store.read_rows(scale, rows)


class SplitChunks:
    """The windows of one split (sorted window indices) grouped by store chunk: ``rows[i]`` lie in one chunk."""

    def __init__(self, rows: np.ndarray, chunk: int) -> None:
        rows = np.asarray(rows, np.int64)
        cut = np.flatnonzero(np.diff(rows // chunk)) + 1
        self.rows = np.split(rows, cut) if len(rows) else []
        self.offsets = np.concatenate([[0], np.cumsum([len(r) for r in self.rows])]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_windows(self) -> int:
        return int(self.offsets[-1])


class InputReader:
    """Network inputs of a split's chunks, read from the store once: each chunk's inputs are then kept in a scratch
    folder (while they fit ``cache_bytes`` of disk) and read back from there in later epochs.

    The scratch files are plain ``.npy`` files read with ordinary reads, so the operating system's page cache keeps
    them in memory when it has room without counting against this process (in-memory tensors here made a streaming
    run's memory grow with the store). The folder (under ``TMPDIR``) goes when the reader is garbage collected or the
    interpreter exits."""

    def __init__(self, store: FeatureStore, model: TrainedModel, cache_bytes: int) -> None:
        self.store, self.model, self.cache_bytes = store, model, cache_bytes
        self._cache: dict[tuple[str, int], dict[int, Path]] = {}
        self._cached = 0
        self._lock = threading.Lock()
        self._folder: Path | None = None

    def _scratch(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="unmix-inputs-"))
            weakref.finalize(self, shutil.rmtree, self._folder, True)
        return self._folder

    def load(self, split: str, i: int, rows: np.ndarray, stop: threading.Event | None = None
             ) -> dict[int, torch.Tensor]:
        """Inputs (CPU float32) of ``rows``, chunk ``i`` of ``split``; empty when stopped."""
        with self._lock:
            hit = self._cache.get((split, i))
        if hit is not None:
            return {s: torch.from_numpy(np.load(f, allow_pickle=False)) for s, f in hit.items()}
        x = chunk_inputs(self.store, self.model, rows, stop)
        if not x:
            return {}
        size = sum(v.element_size() * v.nelement() for v in x.values())
        with self._lock:
            keep = self._cached + size <= self.cache_bytes
            if keep:
                self._cached += size
        if keep:
            self._keep(split, i, x)
        return x

    def _keep(self, split: str, i: int, x: dict[int, torch.Tensor]) -> None:
        files = {s: self._scratch() / f"{split}-{i}-{s}.npy" for s in x}
        try:
            for s, f in files.items():
                np.save(f, x[s].numpy(), allow_pickle=False)
        except OSError as exc:  # e.g. a full disk: read the store again instead
            log.warning("cannot keep model inputs in %s (%s); later epochs read the store again", self._folder, exc)
            for f in files.values():
                f.unlink(missing_ok=True)
            self.cache_bytes = 0
            return
        with self._lock:
            self._cache[(split, i)] = files


def _buffer(reader: InputReader, chunks: SplitChunks, group: np.ndarray, stop: threading.Event
            ) -> dict[int, torch.Tensor]:
    parts = []
    for i in group:
        parts.append(reader.load("train", int(i), chunks.rows[i], stop))
        if stop.is_set():
            return {}
    out = {s: torch.cat([p[s] for p in parts]) if len(parts) > 1 else parts[0][s] for s in parts[0]}
    del parts
    release_memory()  # chunks read back from the scratch files are freed here, not in chunk_inputs
    return out


def _batches(buffers: Iterator[dict[int, torch.Tensor]], perms: list[torch.Tensor], batch: int
             ) -> Iterator[dict[int, torch.Tensor]]:
    """Batches of ``batch`` rows from buffers each taken in its permutation's order (the remainder of one buffer
    opens the next batch; the epoch's last partial batch is dropped, as in memory)."""
    parts: list[dict[int, torch.Tensor]] = []
    have = 0
    with contextlib.closing(buffers):
        for buf, perm in zip(buffers, perms, strict=True):
            i = 0
            while i < len(perm):
                take = min(batch - have, len(perm) - i)
                parts.append({s: v[perm[i:i + take]] for s, v in buf.items()})
                have, i = have + take, i + take
                if have == batch:
                    yield parts[0] if len(parts) == 1 else {s: torch.cat([p[s] for p in parts]) for s in parts[0]}
                    parts, have = [], 0


class StreamedInputs:
    """The training and validation windows of a streaming run: epochs in shuffled batches, and pieces to evaluate."""

    def __init__(self, store: FeatureStore, model: TrainedModel, train_idx: np.ndarray, val_idx: np.ndarray,
                 budget: int, batch: int) -> None:
        W = store.chunk_windows
        self.store, self.model, self.batch = store, model, batch
        self.splits = {"train": SplitChunks(train_idx, W), "val": SplitChunks(val_idx, W)}
        per_input = sum(4 * p.channels * p.n_features for p in model.preps.values())
        per = window_bytes(store)
        transient = 12 * min(W, FIT_ROWS) * max(per.values())  # one read and its float64 working copies
        self.buffer_chunks = int(np.clip((budget // 2 - transient) // (3 * W * per_input), 1,
                                         min(max(len(self.splits["train"]), 1), MAX_BUFFER_CHUNKS)))
        inputs = per_input * (len(train_idx) + len(val_idx))
        cache = min(inputs, shutil.disk_usage(tempfile.gettempdir()).free // 2)
        self.reader = InputReader(store, model, cache)
        log.info("streaming %d training windows in chunks of %d, %d chunk(s) per shuffle buffer; inputs of ≈%d "
                 "windows kept on disk (%s) for later epochs", len(train_idx), W, self.buffer_chunks,
                 cache // max(per_input, 1), tempfile.gettempdir())

    def epoch(self, seed: int, token: CancelToken) -> Iterator[dict[int, torch.Tensor]]:
        """One epoch's batches (CPU): chunks in a seeded random order, rows permuted within each buffer."""
        chunks = self.splits["train"]
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(chunks), generator=gen).numpy()
        groups = [order[i:i + self.buffer_chunks] for i in range(0, len(order), self.buffer_chunks)]
        perms = [torch.randperm(int(sum(len(chunks.rows[c]) for c in g)), generator=gen) for g in groups]
        jobs = [partial(_buffer, self.reader, chunks, g) for g in groups]
        return _batches(prefetched(jobs, token), perms, self.batch)

    def pieces(self, split: str, token: CancelToken, select: np.ndarray | None = None
               ) -> Iterator[tuple[np.ndarray, dict[int, torch.Tensor]]]:
        """Per chunk in store order: positions (in the split) of the rows ``select`` picks (a mask over the split's
        rows; None: all), and their inputs (CPU)."""
        chunks = self.splits[split]
        spans = [np.arange(chunks.offsets[i], chunks.offsets[i + 1]) for i in range(len(chunks))]
        keep = [i for i in range(len(chunks)) if select is None or select[spans[i]].any()]
        jobs = [partial(self.reader.load, split, i, chunks.rows[i]) for i in keep]
        with contextlib.closing(prefetched(jobs, token)) as loaded:
            for i, x in zip(keep, loaded, strict=True):
                pos = spans[i]
                if select is not None:
                    sel = select[pos]
                    pos, x = pos[sel], {s: v[torch.from_numpy(sel)] for s, v in x.items()}
                for a in range(0, len(pos), PIECE):
                    yield pos[a:a + PIECE], {s: v[a:a + PIECE] for s, v in x.items()}

    @torch.no_grad()
    def evaluate(self, nets: list[FactorialVAE], tau: float, clusters: int, occupancy_windows: int,
                 device: torch.device, token: CancelToken) -> dict:
        """Validation loss terms (members' mean, in batches) and member 0's cluster occupancy on at most
        ``occupancy_windows`` evenly spaced validation windows (training windows when there is no validation)."""
        n_val = self.splits["val"].n_windows
        split = "val" if n_val >= 2 else "train"
        n = self.splits[split].n_windows
        occ = np.zeros(n, bool)
        occ[np.linspace(0, n - 1, min(n, occupancy_windows)).round().astype(np.int64) if split == "val"
            else np.arange(min(n, occupancy_windows))] = True
        sums: dict[str, float] = {}
        counts = {s: np.zeros(clusters, np.int64) for s in self.model.scales}
        with contextlib.closing(self.pieces(split, token, None if split == "val" else occ)) as pieces:
            for pos, x in pieces:
                token.check()
                xb = {s: v.to(device) for s, v in x.items()}
                for net in nets if split == "val" else ():
                    for k, v in net.loss(xb, net(xb, tau)).items():
                        sums[k] = sums.get(k, 0.0) + float(v) * len(pos) / (len(nets) * n)
                if occ[pos].any():
                    sel = torch.from_numpy(occ[pos]).to(device)
                    for s, r in nets[0].infer({s: v[sel] for s, v in xb.items()}).items():
                        counts[s] += np.bincount(r["prob"].argmax(-1).cpu().numpy(), minlength=clusters)
        out = {f"val_{k}": v for k, v in sums.items()}
        out["occupancy"] = {str(s): c.tolist() for s, c in counts.items()}
        return out


def fit_preps(store: FeatureStore, train_idx: np.ndarray, preprocessing: str, pca: int, progress: Progress,
              token: CancelToken, log_offset: float = 0.0) -> dict[int, ScalePrep]:
    """Every scale's preprocessing fitted in passes over the training windows, one store chunk at a time (with a
    log offset, first a read of the :func:`~unmix.model.data.offset_rows` windows whose medians set it)."""
    chunks = SplitChunks(train_idx, store.chunk_windows)
    sample_rows = train_idx[offset_rows(len(train_idx))]

    def sample(s: int) -> np.ndarray | None:
        token.check()
        return store.read_rows(s, sample_rows) if log_offset > 0 else None

    fits = {s: StreamingFit(store.description, len(store.description), preprocessing, pca, log_offset, sample(s))
            for s in store.scales}
    passes = 2 if pca > 0 else 1
    parts = [(i, s, rows) for i, rows in enumerate(chunks.rows) for s in store.scales]
    for p in range(passes):
        jobs = [partial(_read_scale, store, s, rows) for _, s, rows in parts]
        with contextlib.closing(prefetched(jobs, token)) as loaded:
            for (i, s, _), a in zip(parts, loaded, strict=True):
                for b in range(0, len(a), FIT_ROWS):  # float64 working copies of FIT_ROWS rows at a time
                    token.check()
                    (fits[s].add if p == 0 else fits[s].add_gram)(a[b:b + FIT_ROWS])
                del a
                if s == store.scales[-1]:
                    release_memory()
                progress(0.0, f"fitting the preprocessing: pass {p + 1}/{passes}, chunk {i + 1}/{len(chunks)}")
    return {s: f.finish() for s, f in fits.items()}


def store_pieces(store: FeatureStore, model: TrainedModel, token: CancelToken
                 ) -> Iterator[tuple[int, dict[int, torch.Tensor], dict[int, torch.Tensor]]]:
    """Every window's inputs and the sparsity columns the model needs (CPU) in store order, one chunk at a time:
    (first window, inputs, sparsity columns)."""
    n, W = store.n_windows, store.chunk_windows
    starts = list(range(0, n, W))
    jobs = [partial(chunk_views, store, model, slice(a, min(a + W, n))) for a in starts]
    with contextlib.closing(prefetched(jobs, token)) as loaded:
        for a, (x, side) in zip(starts, loaded, strict=True):
            yield a, x, side
