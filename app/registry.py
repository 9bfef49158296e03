"""Registry of the jobs in the pipeline panel; later panels (Features, Train, Cluster, Separate, Export) register here.

A :class:`JobSpec` names a form factory; the form turns its fields into a :class:`JobRequest` (a core job function and
its keyword arguments). The function runs in a :class:`~unmix.gui.workers.Worker`; ``apply`` receives the result on
the GUI thread together with the main window, which it may update.
"""

from __future__ import annotations

from collections.abc import Callable
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


_JOBS: dict[str, JobSpec] = {}


def register_job(spec: JobSpec) -> JobSpec:
    """Add (or replace) a job kind; returns it so it can be used as a module-level constant."""
    _JOBS[spec.key] = spec
    return spec


def jobs() -> list[JobSpec]:
    """Registered job kinds, in panel order."""
    from unmix.gui.views import forms  # noqa: F401  (registers the built-in jobs)

    return sorted(_JOBS.values(), key=lambda s: (s.order, s.title))
