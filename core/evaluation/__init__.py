"""Separation quality: benchmark cases with known truth, metrics, and the ``unmix bench separation`` runner."""

from unmix.evaluation.benchmark import (
    DEFAULT_METHODS,
    markdown_tables,
    run_real_benchmark,
    run_synthetic_benchmark,
    write_results,
)
from unmix.evaluation.cases import (
    BenchCase,
    add_quake,
    burst_case,
    dust_devil_case,
    glitch_case,
    gust_case,
    gust_train,
    hard_glitch_case,
    load_background,
    prior_snippets,
    quake_case,
    rise_glitch_template,
    select_components,
)
from unmix.evaluation.metrics import correlation, quake_removed, reference_metrics, separation_metrics, snr_db

__all__ = [
    "DEFAULT_METHODS",
    "BenchCase",
    "add_quake",
    "burst_case",
    "correlation",
    "dust_devil_case",
    "glitch_case",
    "gust_case",
    "gust_train",
    "hard_glitch_case",
    "load_background",
    "markdown_tables",
    "prior_snippets",
    "quake_case",
    "quake_removed",
    "reference_metrics",
    "rise_glitch_template",
    "run_real_benchmark",
    "run_synthetic_benchmark",
    "select_components",
    "separation_metrics",
    "snr_db",
    "write_results",
]
