"""FDSN download: ``fetch`` (issue #7)."""

from __future__ import annotations
