"""Long steps take the null objects NO_CANCEL / no_progress as defaults, never None (#15 item 6)."""

from __future__ import annotations

import importlib
import inspect

from unmix.jobs import NO_CANCEL, no_progress


def test_token_and_progress_default_to_the_null_objects():
    """``token``/``progress`` default to NO_CANCEL/no_progress in the separation, snippet and feature modules."""
    modules = ["unmix.separation.base", "unmix.separation.result", "unmix.separation.scatcov",
               "unmix.separation.solver", "unmix.separation.hybrid.separator", "unmix.baselines.template",
               "unmix.baselines.highpass", "unmix.snippets", "unmix.features.store", "unmix.features.extract"]
    checked = 0
    for name in modules:
        module = importlib.import_module(name)
        functions = [f for _, f in inspect.getmembers(module, inspect.isfunction) if f.__module__ == name]
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name:
                functions += [f for _, f in inspect.getmembers(cls, inspect.isfunction)]
        for f in functions:
            params = inspect.signature(f).parameters
            for pname, null in (("token", NO_CANCEL), ("progress", no_progress)):
                if pname in params and params[pname].default is not inspect.Parameter.empty:
                    assert params[pname].default is null, f"{name}.{f.__qualname__}: {pname} default"
                    checked += 1
    assert checked >= 10
