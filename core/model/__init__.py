"""The factorial Gaussian-mixture VAE: multi-scale clustering of feature-store windows.

Typical use::

    from unmix.model import preset, train, predict
    model = train("features.h5", "model.pt", preset("small", epochs=40))
    table = predict("features.h5", model)        # unmix.clusters.ClusterTable

Stores larger than ``memory_budget`` (default :data:`DEFAULT_MEMORY_BUDGET`) are streamed from disk
(:mod:`unmix.model.stream`).
"""

from unmix.model.config import PRESETS, ModelConfig, preset
from unmix.model.data import ScalePrep
from unmix.model.metrics import adjusted_rand_index, dominated_clusters, precision_recall
from unmix.model.network import FactorialVAE, build_network, count_parameters
from unmix.model.predict import predict, predict_to_file
from unmix.model.stream import DEFAULT_MEMORY_BUDGET
from unmix.model.train import Training, format_log, train
from unmix.model.trained import TrainedModel, load_model

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "PRESETS",
    "FactorialVAE",
    "ModelConfig",
    "ScalePrep",
    "TrainedModel",
    "Training",
    "adjusted_rand_index",
    "build_network",
    "count_parameters",
    "dominated_clusters",
    "format_log",
    "load_model",
    "precision_recall",
    "predict",
    "predict_to_file",
    "preset",
    "train",
]
