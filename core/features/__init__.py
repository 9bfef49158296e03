"""Multi-scale scattering-covariance features of windowed records, and the on-disk feature store."""

from unmix.features.config import FeatureConfig
from unmix.features.store import FeatureStore, build_store

__all__ = ["FeatureConfig", "FeatureStore", "build_store"]
