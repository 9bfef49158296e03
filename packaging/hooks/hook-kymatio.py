"""PyInstaller hook for kymatio: only its 1-D filter-bank maths is used (``unmix.scattering.filters``).

``import kymatio`` loads the frontend *entries* of every scattering class; the frontends and backends themselves are
imported by name at run time (``kymatio/frontend/entry.py``), invisible to static analysis. Unmix never builds a
kymatio transform, so the 1-D filter banks and the entries are collected, and no frontend or backend is (in
particular not ``kymatio.torch``, which would import the torch frontends).
"""

from PyInstaller.utils.hooks import collect_submodules


def _wanted(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return not (last.endswith("_frontend") or last.endswith("_backend") or ".tests" in name)


hiddenimports = collect_submodules("kymatio.scattering1d", filter=_wanted)
excludedimports = ["kymatio.torch", "kymatio.tensorflow", "kymatio.jax", "kymatio.keras", "kymatio.sklearn",
                   "kymatio.numpy", "kymatio.datasets"]
