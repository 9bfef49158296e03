"""Separation and batch export: ``separate`` (issue #5)."""

from __future__ import annotations
