"""``unmix.example()``: a small seeded synthetic InSight-like record with its ground truth, cached on disk.

The record is written once per (hours, seed) into the cache folder (``$UNMIX_CACHE``, else
``$XDG_CACHE_HOME/unmix``, else ``~/.cache/unmix``), atomically (a folder renamed into place when complete), so every
later call, and every docstring example, reads the same files in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from obspy import Stream

from unmix.errors import ConfigError
from unmix.io.record import Record

EXAMPLE_START_SOL = 173


def cache_dir() -> Path:
    """Where Unmix keeps generated example data."""
    if os.environ.get("UNMIX_CACHE"):
        return Path(os.environ["UNMIX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unmix"


@dataclass(frozen=True)
class Example:
    """A synthetic record on disk: ``path`` (the mixture, miniSEED), ``folder`` (each source as
    ``<source>.mseed``, and ``truth.json``)."""

    path: Path
    folder: Path

    @property
    def truth(self) -> dict:
        """The ground truth: glitch and event catalogues, gaps and the generator's configuration."""
        return json.loads((self.folder / "truth.json").read_text())

    @property
    def sources(self) -> list[str]:
        """Names of the separate sources written beside the mixture (e.g. ``'glitches'``, ``'background'``)."""
        return sorted(p.stem for p in self.folder.glob("*.mseed") if p.stem != "mixture")

    def stream(self, source: str = "mixture") -> Stream:
        """The mixture (default) or one source as an ObsPy Stream."""
        from unmix.io import read_file

        path = self.folder / f"{source}.mseed"
        if not path.is_file():
            raise ConfigError(f"no source {source!r} in the example; sources: mixture, {', '.join(self.sources)}")
        return read_file(path)

    def records(self) -> list[Record]:
        """The mixture as Unmix records (:func:`unmix.read`)."""
        from unmix.io import read_records

        return read_records(self.path)


def example(hours: float = 3.0, seed: int = 0) -> Example:
    """A small synthetic three-component record (20 sps, starting at sol 173) with glitches, spikes, wind and its
    ground truth; generated on the first call, then read from the cache.

    >>> import unmix
    >>> ex = unmix.example()
    >>> ex.stream()[0].id, len(ex.truth["glitches"]) > 0
    ('SY.ELYSE.02.BHU', True)
    """
    if not 0 < hours <= 48:
        raise ConfigError(f"hours must be in (0, 48], got {hours}")
    folder = cache_dir() / f"example-{hours:g}h-seed{int(seed)}"
    if not (folder / "truth.json").is_file():
        _generate(folder, hours, int(seed))
    return Example(folder / "mixture.mseed", folder)


def _generate(folder: Path, hours: float, seed: int) -> None:
    """Write the record into a temporary folder beside ``folder``, then rename it into place."""
    from unmix.synthetic import SyntheticConfig, generate

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        generate(SyntheticConfig(hours=hours, seed=seed, start_sol=EXAMPLE_START_SOL)).write(tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first, or a damaged earlier attempt is in the way
            if not (folder / "truth.json").is_file():
                shutil.rmtree(folder, ignore_errors=True)
                tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["Example", "cache_dir", "example"]
