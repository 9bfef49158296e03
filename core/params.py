"""The scikit-learn parameter protocol shared by Unmix's estimators: ``get_params``/``set_params``/``repr``.

As in scikit-learn, the constructor only stores its arguments under their own names (no validation, no
rewriting); validation happens in ``fit``/``separate``; what fitting learns ends in ``_``. So
``type(est)(**est.get_params())`` is an unfitted copy of ``est``.
"""

from __future__ import annotations

import inspect
from typing import Any

from unmix.errors import ConfigError


class ParamsMixin:
    """``get_params``/``set_params`` from the constructor's signature, and a ``repr`` of the non-default ones."""

    @classmethod
    def _param_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments as given (``deep`` is accepted for scikit-learn compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any):
        """Change constructor arguments; unknown names are a :class:`ConfigError` listing the valid ones."""
        valid = self._param_names()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} of {type(self).__name__}; valid: "
                              f"{', '.join(valid)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k))]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays compare element-wise
        return a is b


__all__ = ["ParamsMixin"]
