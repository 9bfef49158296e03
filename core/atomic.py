"""Atomic output: write to a temporary name beside the target, then rename, so no reader sees a partial file.

Temporary names are recognisable: ``.<target name>.unmix~<host>~<pid>~<random>.part``. Before writing a target,
:func:`atomic_path` removes the temporary files of that target left by a killed run (:func:`remove_stale_parts`):
those of a process of this host that no longer runs, and older ones (from another host or an earlier naming) after
:data:`STALE_AGE_S`. The temporary files of a run still in progress are left alone.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from unmix.errors import OutputExistsError

#: Temporary files of unknown owner (another host, an older naming) older than this are stale (seconds).
STALE_AGE_S = 3600.0
_TAG = "unmix"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def temp_prefix(target: str | Path) -> str:
    """Prefix of this process's temporary files for ``target`` (name only, no folder)."""
    return f".{Path(target).name}.{_TAG}~{_host()}~{os.getpid()}~"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _is_stale(part: Path, now: float) -> bool:
    match = re.search(rf"\.{_TAG}~([^~]+)~(\d+)~[^~]*\.part$", part.name)
    if match and match.group(1) == _host():
        pid = int(match.group(2))
        return pid != os.getpid() and not _pid_alive(pid)
    try:
        return now - part.stat().st_mtime > STALE_AGE_S
    except OSError:
        return False


def remove_stale_parts(target: str | Path) -> list[Path]:
    """Remove the temporary files of ``target`` left by killed runs; returns the removed paths."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    now, removed = time.time(), []
    for part in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
        if _is_stale(part, now):
            with contextlib.suppress(OSError):
                part.unlink()
                removed.append(part)
    return removed


def write_stream(stream, path: str | Path, fmt: str) -> None:
    """Write an ObsPy stream to ``path`` so that write errors are raised, then flush it to the disk. ObsPy's
    miniSEED writer runs in a ctypes callback that swallows them (a full disk left a truncated file and no error), so
    miniSEED bytes are made in memory and written here."""
    import io

    if fmt.upper() != "MSEED":
        stream.write(str(path), format=fmt)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        return
    buffer = io.BytesIO()
    stream.write(buffer, format=fmt)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(target: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success it replaces ``target``, on error it is removed."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise OutputExistsError("already exists; pass --overwrite to replace it", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".part", dir=target.parent)
    except OSError as exc:  # name the folder the user chose, not our temporary name
        raise OSError(exc.errno, exc.strerror, str(target.parent)) from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results should get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as exc:  # e.g. disk full while writing: name the target, not the temporary file
        ours = exc.filename is not None and Path(exc.filename) == tmp_path
        if not ours and not (exc.filename is None and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
            raise
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
