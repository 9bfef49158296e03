"""The jobs of the pipeline panel: what a job kind is (:class:`JobSpec`) and what one run is (:class:`JobRequest`).

The built-in kinds are plain constants of the modules that define their forms (``unmix.gui.views.forms.JOBS``,
``unmix.gui.panels.pipeline.JOBS``); the panel lists them through :func:`jobs`. This module imports none of them (no
registration by import side effect, no import cycle); :func:`register_job` adds further kinds (plugins, tests).

A :class:`JobSpec` names a form factory; the form turns its fields into a :class:`JobRequest` (a core job function and
its keyword arguments). The function runs in a :class:`~unmix.gui.workers.Worker`; ``apply`` receives the result on
the GUI thread together with the main window, which it may update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget


@dataclass
class JobRequest:
    """One run: ``fn(**kwargs, progress=, token=)``; ``apply(window, result)`` on success."""

    title: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    apply: Callable[[Any, Any], None] | None = None


@dataclass(frozen=True)
class JobSpec:
    """A kind of job offered in the pipeline panel: ``make_form(window)`` returns a QWidget with ``request()``."""

    key: str
    title: str
    make_form: Callable[[Any], QWidget]
    order: int = 100


_EXTRA: dict[str, JobSpec] = {}


def register_job(spec: JobSpec) -> JobSpec:
    """Add (or replace, by key) a job kind beyond the built-in ones; returns it."""
    _EXTRA[spec.key] = spec
    return spec


def jobs(builtin: Iterable[JobSpec] = ()) -> list[JobSpec]:
    """``builtin`` and the registered job kinds (a registered kind replaces the built-in one of its key), by order."""
    merged = {spec.key: spec for spec in builtin} | _EXTRA
    return sorted(merged.values(), key=lambda s: (s.order, s.title))
