"""File digests: one sha256 helper for inputs, outputs, priors, tables and checkpoints."""

from __future__ import annotations

import hashlib
from pathlib import Path

from unmix.jobs import NO_CANCEL, CancelToken

BLOCK = 1 << 20


def file_sha256(path: str | Path, token: CancelToken = NO_CANCEL) -> str:
    """Hex sha256 of the file's bytes, read in 1 MiB blocks (the token is checked between blocks, so hashing a
    large file cancels promptly)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            token.check()
            h.update(block)
    return h.hexdigest()


__all__ = ["file_sha256"]
