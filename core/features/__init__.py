"""Multi-scale scattering-covariance features of windowed records, and the on-disk feature store.

``FeatureConfig`` is light; the store (and with it PyTorch) is imported on first use, so that reading the default
settings (the CLI's option defaults) does not load the scattering engine.
"""

from unmix.features.config import FeatureConfig

__all__ = ["FeatureConfig", "FeatureStore", "build_store", "compact_store"]


def __getattr__(name: str):
    if name in ("FeatureStore", "build_store", "compact_store"):
        from unmix.features import store

        return getattr(store, name)
    raise AttributeError(f"module 'unmix.features' has no attribute {name!r}")
