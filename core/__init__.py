"""Unmix: unsupervised multi-scale clustering and source separation of InSight seismic data.

The public API is flat (see ``docs/python-api.md``)::

    import unmix
    ex = unmix.example()                                  # a small synthetic record with its truth
    records = unmix.read(ex.path)                         # Records (record.stream is an ObsPy Stream)
    features = unmix.extract(records, unmix.FeatureConfig(window=16384, scales=(1024, 4096, 16384)))
    table = unmix.FactorialGMVAE(preset="small", epochs=10).fit(features).predict(features)
    prior = unmix.Prior.from_clusters(table, clusters=[0], scale=1024)
    result = unmix.get_separator("hybrid", prior=prior).separate(records[0].stream)
    unmix.export(result, "separated")

Names are imported on first use, so ``import unmix`` stays light (no PyTorch until a model or feature is needed).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name → the module that defines it
_API = {
    "read": "unmix.api", "FactorialGMVAE": "unmix.api", "get_separator": "unmix.api", "export": "unmix.export",
    "example": "unmix.example_data", "Example": "unmix.example_data",
    "extract": "unmix.featureset", "FeatureSet": "unmix.featureset",
    "Prior": "unmix.prior",
    "FeatureConfig": "unmix.features.config", "FeatureStore": "unmix.features.store",
    "ClusterTable": "unmix.clusters", "ModelConfig": "unmix.model.config",
    "Record": "unmix.io.record", "read_stream": "unmix.io.read",
    "SeparationResult": "unmix.separation.result",
    "UnmixError": "unmix.errors", "InputFileError": "unmix.errors", "DataError": "unmix.errors",
    "ConfigError": "unmix.errors", "OutputExistsError": "unmix.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name == "export":  # the module unmix.export is callable: unmix.export(result, folder) is unmix.api.export
        return importlib.import_module("unmix.export")
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'unmix' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
