"""Instrument response removal and UVW → ZNE rotation from StationXML/RESP metadata (ObsPy)."""

from __future__ import annotations

from pathlib import Path

from obspy import Inventory
from obspy import read_inventory as _obspy_read_inventory

from unmix.errors import InputFileError, ResponseError
from unmix.io.record import Record

OUTPUTS = ("VEL", "ACC", "DISP")


def read_inventory(path: str | Path) -> Inventory:
    """Read StationXML, RESP, dataless SEED (anything ObsPy reads) with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError("no such response file", path)
    if path.stat().st_size == 0:
        raise InputFileError("response file is empty", path)
    try:
        return _obspy_read_inventory(str(path))
    except Exception as exc:
        raise InputFileError(f"not a readable StationXML/RESP/dataless file ({type(exc).__name__})", path) from None


def _label(inventory: Inventory | str | Path) -> str:
    return str(inventory) if isinstance(inventory, str | Path) else "inventory"


def _inventory(inventory: Inventory | str | Path) -> Inventory:
    return inventory if isinstance(inventory, Inventory) else read_inventory(inventory)


def check_coverage(record: Record, inventory: Inventory | str | Path) -> None:
    """Raise :class:`ResponseError` unless every component has a response over the whole record."""
    inv = _inventory(inventory)
    for tr in record.stream:
        for when in (tr.stats.starttime, tr.stats.endtime):
            try:
                inv.get_response(tr.id, when)
            except Exception:
                raise ResponseError(
                    f"no response for {tr.id} at {when} (the metadata do not cover the data's time span)",
                    _label(inventory),
                ) from None


def remove_response(
    record: Record,
    inventory: Inventory | str | Path,
    output: str = "VEL",
    pre_filt: tuple[float, float, float, float] | None = None,
    water_level: float | None = 60.0,
    taper_fraction: float = 0.05,
) -> Record:
    """Return a copy of ``record`` in physical units (m/s, m/s², m); the input record is unchanged.

    ``pre_filt`` defaults to a cosine band from 0.5×(1/record length) to 0.9×Nyquist, which keeps the deconvolution
    stable at both ends without cutting the VBB's long-period band.
    """
    output = output.upper()
    if output not in OUTPUTS:
        raise ResponseError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
    inv = _inventory(inventory)
    check_coverage(record, inv)
    out = record.copy()
    nyq = 0.5 * out.sampling_rate
    if pre_filt is None:
        f_low = 1.0 / max(float(out.endtime - out.starttime), 1.0)
        pre_filt = (0.5 * f_low, f_low, 0.8 * nyq, 0.9 * nyq)
    for tr in out.stream:
        tr.data = tr.data.astype("float64")
        tr.detrend("linear")
        tr.remove_response(inventory=inv, output=output, pre_filt=pre_filt, water_level=water_level,
                           taper=True, taper_fraction=taper_fraction)
    unit = {"VEL": "m/s", "ACC": "m/s²", "DISP": "m"}[output]
    band = tuple(round(f, 6) for f in pre_filt)
    out.notes.append(f"instrument response removed to {output} ({unit}), pre_filt={band}")
    return out


def rotate_to_zne(record: Record, inventory: Inventory | str | Path) -> Record:
    """Rotate a 3-component record (e.g. InSight U/V/W) to Z/N/E with the inventory's azimuths and dips."""
    if len(record.stream) != 3:
        raise ResponseError(f"rotation needs 3 components, {record.key} has {len(record.stream)}", record.sources_label)
    inv = _inventory(inventory)
    check_coverage(record, inv)
    out = record.copy()
    codes = out.components
    try:
        out.stream.rotate("->ZNE", inventory=inv, components=(codes,))
    except Exception as exc:
        raise ResponseError(f"cannot rotate {record.key} to ZNE: {exc}", _label(inventory)) from None
    order = {"Z": 0, "N": 1, "E": 2}
    out.stream.traces.sort(key=lambda tr: order.get(tr.stats.channel[-1], 3))
    out.notes.append(f"rotated {codes} → ZNE using the inventory's orientations")
    return out
