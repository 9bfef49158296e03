"""Typed errors for user-facing problems.

Every error a user can cause (bad file, bad option) is an :class:`UnmixError`; the CLI prints it as one line and exits
non-zero, the GUI shows it in a dialog. Programming errors stay ordinary exceptions with tracebacks.
"""

from __future__ import annotations

from pathlib import Path


class UnmixError(Exception):
    """Base class for errors caused by input or configuration, reported without a traceback."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


class InputFileError(UnmixError):
    """A file cannot be read: missing, empty, unknown format, corrupt."""


class DataError(UnmixError):
    """Data were read but cannot be used as asked: NaN, too short, mixed rates, mixed stations, gaps."""


class ResponseError(UnmixError):
    """Instrument response or orientation metadata is missing or does not cover the data."""


class OutputExistsError(UnmixError):
    """An output would overwrite an existing result and overwriting was not allowed."""


class ConfigError(UnmixError):
    """An option or configuration value is invalid or inconsistent."""


def describe_os_error(exc: OSError) -> str | None:
    """One line ``<path>: <problem>`` for an operating-system error a user can cause (permissions, a file where a
    folder is needed, a full disk); None for the others, which stay programming errors."""
    import errno

    problems = {
        errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
        errno.ENOTDIR: "a part of this path is a file, not a folder",
        errno.EISDIR: "is a folder, not a file", errno.EEXIST: "already exists",
        errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
        errno.ENAMETOOLONG: "file name too long", errno.ENOENT: "no such file or directory",
    }
    problem = problems.get(exc.errno)
    if problem is None:
        return None
    if exc.errno == errno.EEXIST and exc.filename is not None and Path(exc.filename).is_file():
        problem = "is a file, not a folder"  # mkdir of a folder where a file stands
    return problem if exc.filename is None else f"{exc.filename}: {problem}"
