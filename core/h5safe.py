"""Safe HDF5 for files Unmix writes and reads back (feature stores, shards, cluster tables).

Writing: HDF5 crashes the process (segmentation fault) when the disk fills up under it, and leaves its temporary
file behind. :func:`h5_atomic_writer` writes through a guard that records the first write error and hides it from
HDF5, so the library finishes cleanly; the temporary file is then removed and one :class:`DiskFullError` raised.

Reading: :func:`check_dataset` checks a dataset's shape, dtype and declared size before anything is loaded, and
:func:`json_attr` reads a JSON attribute of an expected type, so that a crafted or damaged file gives one line.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from unmix.atomic import atomic_path
from unmix.errors import InputFileError, UnmixError

#: Errors that mean "no space": a full disk, a quota, a file-size limit.
SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: A dataset may declare at most this many times the file's size (lzf compresses features ~1.1-3x).
MAX_DECLARED_RATIO = 1000
#: Exceptions h5py raises on damaged files.
H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError)


class DiskFullError(UnmixError):
    """An output could not be written for lack of space; nothing was written and earlier files are kept."""


class _GuardedFile(io.FileIO):
    """A file for h5py's file-object driver that swallows write errors after recording the first one."""

    error: OSError | None = None

    def write(self, b) -> int:  # noqa: D102
        view = memoryview(b).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += super().write(view[done:])
            except OSError as exc:
                self.error = exc
        return len(view)


@contextlib.contextmanager
def h5_atomic_writer(target: str | Path, what: str = "file", overwrite: bool = True) -> Iterator[h5py.File]:
    """An HDF5 file written under a temporary name and renamed onto ``target`` only when complete.

    A full disk (or quota, or file-size limit) raises :class:`DiskFullError` naming ``target``; the temporary file is
    removed and ``target`` is left as it was.
    """
    target = Path(target)
    with atomic_path(target, overwrite=overwrite) as tmp:
        guard = _GuardedFile(tmp, "w+")
        try:
            try:
                with h5py.File(guard, "w") as f:
                    yield f
                    if guard.error is None:
                        f.flush()
            except Exception:
                if guard.error is None:
                    raise
            guard.flush()
        finally:
            guard.close()
        if guard.error is not None:
            exc = guard.error
            if exc.errno in SPACE_ERRNOS:
                raise DiskFullError(f"disk full while writing the {what} ({exc.strerror}); nothing was written and "
                                    "the earlier file is kept", target) from None
            raise DiskFullError(f"cannot write the {what} ({exc.strerror}); nothing was written", target) from None


def json_attr(f: h5py.File | h5py.Group, name: str, kind: type, path: Path, what: str) -> object:
    """Attribute ``name`` of ``f`` parsed as JSON and of type ``kind``; one-line error naming ``path`` otherwise."""
    if name not in f.attrs:
        raise InputFileError(f"damaged {what}: attribute {name!r} is missing", path)
    raw = f.attrs[name]
    try:
        value = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (ValueError, UnicodeDecodeError):
        raise InputFileError(f"damaged {what}: attribute {name!r} is not valid JSON", path) from None
    if not isinstance(value, kind):
        raise InputFileError(f"damaged {what}: attribute {name!r} is not a {kind.__name__}", path)
    return value


def check_dataset(f: h5py.File, name: str, shape: tuple, kind: str, path: Path, what: str,
                  size_of: Path | None = None) -> h5py.Dataset:
    """Dataset ``name`` with exactly ``shape`` (``None`` = any length) and dtype kind in ``kind`` (e.g. ``'f'``).

    Also refuses a dataset that declares far more data than the file holds (a crafted size that would exhaust
    memory when read) or that was never written (reading it would silently give zeros). Errors name ``path``;
    ``size_of`` is the file ``f`` was opened from when that is another (a store's segment: errors name the store).
    """
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise InputFileError(f"damaged {what}: dataset {name!r} is missing", path)
    if len(obj.shape) != len(shape) or any(e is not None and a != e for a, e in zip(obj.shape, shape, strict=True)):
        raise InputFileError(f"damaged {what}: dataset {name!r} has shape {obj.shape}, expected "
                             f"{tuple('N' if e is None else e for e in shape)}", path)
    if obj.dtype.kind not in kind:
        raise InputFileError(f"damaged {what}: dataset {name!r} has dtype {obj.dtype}", path)
    declared = int(np.prod(obj.shape, dtype=np.float64)) * obj.dtype.itemsize
    size = (size_of or path).stat().st_size
    if declared > MAX_DECLARED_RATIO * max(size, 1 << 20):
        raise InputFileError(f"damaged {what}: dataset {name!r} declares {declared / 1e9:.3g} GB in a "
                             f"{size / 1e6:.3g} MB file", path)
    if declared and obj.id.get_storage_size() == 0:
        raise InputFileError(f"damaged {what}: dataset {name!r} holds no data", path)
    return obj


def damaged(exc: BaseException, path: Path, what: str) -> InputFileError:
    """One-line error for an h5py failure on a damaged file."""
    detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return InputFileError(f"unreadable or damaged {what} ({detail})", path)
