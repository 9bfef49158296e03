"""Glitch lists from the template deglitcher's detections: ``unmix glitches FILES --out LIST`` (``docs/interop.md``).

Every record of the inputs is deglitched by the template method (:class:`unmix.baselines.template.TemplateDeglitcher`;
nothing is written but the list); its accepted per-component glitches become one entry per onset
(:func:`unmix.catalogs.catalog_from_detections`), written as a SEISglitch glitch list, QuakeML or Snuffler markers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from unmix.catalogs import Catalog, catalog_from_detections, format_for, write_catalog
from unmix.errors import OutputExistsError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress


def detect_glitches(inputs: str | Path | Iterable[str | Path], options: dict | None = None, gap_policy: str = "split",
                    max_fill: int = 0, resample_to: float | None = None, allow_damaged: bool = False,
                    progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> Catalog:
    """The glitches the template deglitcher (configured by ``options``) finds and accepts in every record."""
    from unmix.io import read_records
    from unmix.separation import get_method

    separator = get_method("template", **(options or {}))  # bad options stop here, before any file is read
    records = read_records(inputs, gap_policy, max_fill, resample_to, allow_damaged=allow_damaged)
    detections: list[dict] = []
    for k, record in enumerate(records):
        token.check()
        sub = sub_progress(progress, k / len(records), (k + 1) / len(records))
        detections += separator.separate(record.stream, sub, token).info["catalogue"]
    progress(1.0, f"{len(detections)} component glitch(es)")
    return catalog_from_detections(detections, source="unmix template deglitcher")


def export_glitches(inputs: str | Path | Iterable[str | Path], out: str | Path, fmt: str | None = None,
                    overwrite: bool = False, **kwargs) -> tuple[Path, Catalog]:
    """Detect (see :func:`detect_glitches`) and write the list to ``out``; returns the path and the catalogue."""
    out = Path(out)
    format_for(out, fmt)  # a bad name or format fails before the work
    if out.exists() and not overwrite:
        raise OutputExistsError("already exists; pass --overwrite to replace it", out)
    catalog = detect_glitches(inputs, **kwargs)
    return write_catalog(catalog, out, fmt, overwrite=overwrite), catalog
