"""Model commands: ``train``, ``cluster``, ``report`` (issue #4)."""

from __future__ import annotations
