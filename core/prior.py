"""``unmix.Prior``: the background statistics a separation keeps, from clusters or from an array of snippets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError


@dataclass(frozen=True)
class Prior:
    """Prior snippets for the scattering-covariance separators (``scatcov``, ``hybrid``).

    Either ``snippets``, an array ``(R, C, T)`` (``R >= 2`` realisations of ``C`` components in the order
    ``components``; ``C = 1`` serves every component), or the ``n_prior`` most confident windows of ``clusters`` at
    ``scale`` of a cluster ``table`` (read from the table's input files when a separation asks for them, never
    overlapping the separated span). Build one with :meth:`from_clusters` or :meth:`from_array`.
    """

    snippets: np.ndarray | None = None
    table: ClusterTable | None = None
    clusters: tuple[int, ...] = ()
    scale: int | None = None
    n_prior: int | None = None  # None: the separator's protocol decides (fast: 20, paper: 300 per cluster)
    near_lmst: bool | None = None
    components: str | None = None

    @classmethod
    def from_clusters(cls, table: ClusterTable, clusters: int | list[int], scale: int, n_prior: int | None = None,
                      near_lmst: bool | None = None) -> Prior:
        """The windows of ``clusters`` at ``scale`` (``near_lmst``: near the separated span's LMST time of day).
        ``n_prior``/``near_lmst`` left at None take the separator's protocol values (``protocol='fast'``: 20
        snippets, no LMST filter; ``'paper'``: 300 per cluster within ±2 h LMST)."""
        if not isinstance(table, ClusterTable):
            raise ConfigError(f"table must be a ClusterTable, got {type(table).__name__}")
        s = table.scale_index(scale)
        wanted = tuple(int(k) for k in np.atleast_1d(clusters))
        bad = [k for k in wanted if not 0 <= k < table.n_clusters]
        if not wanted or bad:
            raise ConfigError(f"clusters must be numbers in [0, {table.n_clusters}), got {list(wanted)}")
        members = np.isin(table.cluster[:, s], wanted)
        found = int(members.sum())
        if found and table.input_index is not None and table.inputs and not all(
                table.inputs[i].get("path") for i in np.unique(table.input_index[members])):
            raise ConfigError("windows of these clusters come from records held only in memory (not read from one "
                              "file), so their waveforms cannot be read back as prior snippets; write the stream to "
                              "a file and read it with unmix.read, or use Prior.from_array")
        if found < 2:
            raise ConfigError(f"cluster(s) {list(wanted)} hold {found} window(s) at scale {scale}; a prior needs >= 2")
        if n_prior is not None and n_prior < 2:
            raise ConfigError(f"n_prior must be >= 2, got {n_prior}")
        return cls(table=table, clusters=wanted, scale=int(scale), n_prior=None if n_prior is None else int(n_prior),
                   near_lmst=None if near_lmst is None else bool(near_lmst))

    @classmethod
    def from_array(cls, snippets: np.ndarray, components: str | None = None) -> Prior:
        """Snippets ``(R, C, T)`` (or ``(R, T)`` for one component serving all) as the prior."""
        a = np.asarray(snippets, dtype=np.float64)
        a = a[:, None] if a.ndim == 2 else a
        if a.ndim != 3 or a.shape[0] < 2:
            raise ConfigError(f"prior snippets must be an array (R >= 2, C, T), got shape {np.shape(snippets)}")
        if not np.isfinite(a).all():
            raise ConfigError("prior snippets contain NaN or infinite values")
        if components is not None and len(components) != a.shape[1]:
            raise ConfigError(f"components {components!r} name {len(components)} components, the snippets have "
                              f"{a.shape[1]}")
        return cls(snippets=a, components=components)

    def options(self) -> dict:
        """The keyword arguments a separator takes for this prior."""
        if self.snippets is not None:
            return {"prior": self.snippets} | ({"components": self.components} if self.components else {})
        chosen = {k: v for k, v in (("n_prior", self.n_prior), ("near_lmst", self.near_lmst)) if v is not None}
        return {"table": self.table, "clusters": list(self.clusters), "scale": self.scale} | chosen

    def __repr__(self) -> str:
        if self.snippets is not None:
            return f"Prior.from_array(shape {self.snippets.shape})"
        n = "" if self.n_prior is None else f", n_prior {self.n_prior}"
        return f"Prior.from_clusters(clusters {list(self.clusters)}, scale {self.scale}{n})"


__all__ = ["Prior"]
