"""The factorial Gaussian-mixture VAE: multi-scale clustering of feature-store windows.

Typical use::

    from core.model import preset, train, predict
    model = train("features.h5", "model.pt", preset("small", epochs=40))
    table = predict("features.h5", model)        # core.clusters.ClusterTable
"""

from core.model.config import PRESETS, ModelConfig, preset
from core.model.data import ScalePrep
from core.model.metrics import adjusted_rand_index, dominated_clusters, precision_recall
from core.model.network import FactorialVAE, build_network, count_parameters
from core.model.predict import predict
from core.model.train import TrainedModel, Training, format_log, load_model, train

__all__ = [
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
    "preset",
    "train",
]
