"""Multi-scale scattering-covariance features of windowed records, and the on-disk feature store."""

from core.features.config import FeatureConfig
from core.features.store import FeatureStore, build_store

__all__ = ["FeatureConfig", "FeatureStore", "build_store"]
