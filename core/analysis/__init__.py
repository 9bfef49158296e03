"""Analysis products of a cluster table (issue #4): each function returns data; figures are drawn by the report
(:func:`unmix.analysis.report.make_report`) and the GUI."""

from unmix.analysis.embedding import Embedding, embed_latents, pca_2d, umap_available
from unmix.analysis.occupancy import Occupancy, occupancy_over_time
from unmix.analysis.overlays import CatalogScores, catalog_scores, cluster_set_scores, event_counts, event_flags
from unmix.analysis.time_of_day import TimeOfDay, time_of_day
from unmix.analysis.waveforms import (
    ClusterWaveforms,
    align_waveforms,
    amplitude_spectrum,
    cluster_waveforms,
    standardize,
    weighted_centroid,
)

__all__ = [
    "CatalogScores",
    "ClusterWaveforms",
    "Embedding",
    "Occupancy",
    "TimeOfDay",
    "align_waveforms",
    "amplitude_spectrum",
    "catalog_scores",
    "cluster_set_scores",
    "cluster_waveforms",
    "embed_latents",
    "event_counts",
    "event_flags",
    "make_report",
    "occupancy_over_time",
    "pca_2d",
    "standardize",
    "time_of_day",
    "umap_available",
    "weighted_centroid",
]


def __getattr__(name: str):
    if name == "make_report":  # matplotlib is imported only when a report is made
        from unmix.analysis.report import make_report

        return make_report
    raise AttributeError(name)
