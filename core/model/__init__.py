"""The factorial Gaussian-mixture VAE: multi-scale clustering of feature-store windows.

Typical use::

    from unmix.model import preset, train, predict
    model = train("features.h5", "model.pt", preset("small", epochs=40))
    table = predict("features.h5", model)        # unmix.clusters.ClusterTable
"""

from importlib import import_module

from unmix.model.config import PRESETS, ModelConfig, preset

#: Where each public name lives; all but the configuration are imported on first use (they load PyTorch), so that
#: reading a preset (the CLI's option help) stays cheap.
_LAZY = {"ScalePrep": "data", "adjusted_rand_index": "metrics", "dominated_clusters": "metrics",
         "precision_recall": "metrics", "FactorialVAE": "network", "build_network": "network",
         "count_parameters": "network", "predict": "predict", "TrainedModel": "train", "Training": "train",
         "format_log": "train", "load_model": "train", "train": "train"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"unmix.model.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'unmix.model' has no attribute {name!r}")


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
