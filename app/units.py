"""Physical units in the browser (Qt-free, run in a worker): instrument response removal to VEL/ACC/DISP and
U/V/W → Z/N/E rotation with a StationXML file (``unmix.io``, as ``unmix features --response/--rotate``), then the
browser's display data, with the unit its rows show on the y axis."""

from __future__ import annotations

from dataclasses import dataclass

from unmix.errors import ConfigError
from unmix.gui.display import Display, build_display
from unmix.io import Record
from unmix.io.response import OUTPUTS, read_inventory, remove_response, rotate_to_zne
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

UNITS = {"COUNTS": "counts", "VEL": "m/s", "ACC": "m/s²", "DISP": "m"}
"""Output → the unit drawn on every y axis."""


@dataclass(frozen=True)
class Conversion:
    """What the browser shows: ``output`` one of :data:`UNITS` (``COUNTS``: as recorded), ``response`` the
    StationXML/RESP file needed for any other output, ``rotate`` U/V/W → Z/N/E (physical outputs only: counts of
    components with different gains cannot be rotated)."""

    output: str = "COUNTS"
    response: str | None = None
    rotate: bool = False

    def __post_init__(self) -> None:
        if self.output not in UNITS:
            raise ConfigError(f"unknown output {self.output!r}; choose one of {', '.join(UNITS)}")
        if self.output in OUTPUTS and not self.response:
            raise ConfigError(f"{self.output} needs a response file (StationXML)")
        if self.rotate and self.output not in OUTPUTS:
            raise ConfigError("rotation to Z/N/E needs physical units (VEL, ACC or DISP) and a response file")

    @property
    def identity(self) -> bool:
        return self.output == "COUNTS" and not self.rotate

    @property
    def unit(self) -> str:
        return UNITS[self.output]

    def describe(self) -> str:
        return "counts" if self.identity else f"{self.output} ({self.unit})" + (", ZNE" if self.rotate else "")


def convert_records(records: list[Record], conversion: Conversion, token: CancelToken = NO_CANCEL) -> list[Record]:
    """Copies of ``records`` in physical units (and rotated); the inputs are unchanged."""
    if conversion.identity:
        return list(records)
    inventory = read_inventory(conversion.response)  # type: ignore[arg-type]  # checked by Conversion
    out = []
    for rec in records:
        token.check()
        rec = remove_response(rec, inventory, output=conversion.output)
        token.check()
        if conversion.rotate:
            rec = rotate_to_zne(rec, inventory)
        out.append(rec)
    return out


def build_view(
    records: list[Record],
    t_ref: float | None = None,
    band: tuple[float | None, float | None] | None = None,
    conversion: Conversion | None = None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
) -> Display:
    """The browser's display of ``records`` converted by ``conversion`` and then band-pass filtered by ``band``."""
    conversion = conversion or Conversion()
    if not conversion.identity:
        progress(0.0, "removing the instrument response")
        records = convert_records(records, conversion, token)
    display = build_display(records, t_ref=t_ref, band=band, progress=progress, token=token)
    display.unit = conversion.unit
    display.conversion = None if conversion.identity else conversion.describe()
    return display
