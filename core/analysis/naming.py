"""Suggested cluster names from evidence: catalogue overlap, time of day, rarity.

A suggestion is a name and the evidence for it, e.g. ``glitch`` — "71 % of its windows hold a catalogued glitch
(record: 4 %)". Suggestions are stored in the cluster table beside the user's names and become names only when the
user accepts them (``unmix name --accept``): the evidence is statistical, the analyst decides.

Rules, in order (the first that holds names the cluster):

0. the model's glitch class (windows the template deglitcher explains for at least the model's share of their
   energy, ``ModelConfig.glitch_share``) → ``glitch``;
1. a catalogue kind (glitch, quake, …) present in at least half of the cluster's windows and at least twice as
   often as in the record → that kind;
2. at least 75 % of the windows at night (18–06 LMST, when the Martian wind is weak), and at least 20 points more
   than the record's own share (a record of one night alone says nothing about time of day) → ``quiet night``;
3. the same for the windy afternoon hours (08–17 LMST) → ``windy day``;
4. under 3 % of the windows → ``rare`` (a transient class worth a look);
5. otherwise no suggestion (the evidence is listed all the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unmix.catalogs import Catalog
from unmix.clusters import ClusterTable, glitch_class

NIGHT = (18.0, 6.0)
DAY = (8.0, 17.0)
MIN_SHARE = 0.75  # of a cluster's windows in one part of the sol
MIN_EVENT_SHARE = 0.5  # of a cluster's windows holding a catalogued kind
MIN_LIFT = 2.0  # how much more often than in the whole record
MIN_CONTRAST = 0.2  # how much more of a cluster than of the record lies in one part of the sol
RARE = 0.03


@dataclass(frozen=True)
class Suggestion:
    """A suggested name (may be '') with the evidence behind it."""

    cluster: int
    name: str
    evidence: str

    def to_dict(self) -> dict:
        return {"name": self.name, "evidence": self.evidence}


def _hours(table: ClusterTable, s: int) -> np.ndarray:
    """LMST hour of each window's sub-window centre at scale index ``s``."""
    mid = table.lmst[:, s].mean(axis=1)
    return (mid - np.floor(mid)) * 24.0


def _within(hours: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    a, b = span
    return (hours >= a) & (hours < b) if a < b else (hours >= a) | (hours < b)


def _kind_flags(table: ClusterTable, catalog: Catalog | None, scale: int) -> dict[str, np.ndarray]:
    from unmix.analysis.overlays import event_flags

    if catalog is None or not len(catalog):
        return {}
    kinds = sorted({e.kind for e in catalog})
    return {k: event_flags(table, catalog, scale, how="onset" if k == "glitch" else "overlap", kinds=k)
            for k in kinds}


def _stands_out(inside: float, record: float) -> bool:
    """Most of a cluster's windows lie in one part of the sol, clearly more than the record's windows do."""
    return inside >= MIN_SHARE and inside >= record + MIN_CONTRAST


def suggest(table: ClusterTable, scale: int, catalog: Catalog | None = None) -> list[Suggestion]:
    """One suggestion per occupied cluster at ``scale`` (rules: module docstring)."""
    s = table.scale_index(scale)
    clusters = table.cluster[:, s]
    n = max(table.n_windows, 1)
    hours = _hours(table, s)
    night, day = _within(hours, NIGHT), _within(hours, DAY)
    flags = _kind_flags(table, catalog, scale)
    glitches = glitch_class(table.meta)
    out = []
    for k in np.unique(clusters):
        members = clusters == k
        m = int(members.sum())
        share = m / n
        at_night, by_day = float(night[members].mean()), float(day[members].mean())
        facts = [f"{share:.0%} of the windows", f"{at_night:.0%} at night (18–06 LMST; record {night.mean():.0%})",
                 f"{by_day:.0%} in 08–17 LMST (record {day.mean():.0%})"]
        name = ""
        if k == glitches:
            name = "glitch"
            facts.append(f"the glitch class: the template deglitcher explains at least "
                         f"{table.meta['glitch_class'].get('share', 0.5):.0%} of each window's energy")
        for kind, f in flags.items():
            inside, base = float(f[members].mean()), float(f.mean())
            facts.append(f"{inside:.0%} hold a catalogued {kind} (record: {base:.0%})")
            if not name and inside >= MIN_EVENT_SHARE and inside >= MIN_LIFT * base:
                name = kind
        if not name:
            name = ("quiet night" if _stands_out(at_night, float(night.mean())) else
                    "windy day" if _stands_out(by_day, float(day.mean())) else "rare" if share < RARE else "")
        out.append(Suggestion(int(k), name, "; ".join(facts)))
    return out


def suggest_all(table: ClusterTable, catalog: Catalog | None = None) -> dict[int, dict[int, dict]]:
    """:func:`suggest` at every scale, in the form :attr:`ClusterTable.suggestions` stores."""
    return {int(scale): {sg.cluster: sg.to_dict() for sg in suggest(table, scale, catalog) if sg.name}
            for scale in table.scales}


def accept(table: ClusterTable, overwrite: bool = False) -> int:
    """Copy the stored suggestions to the names (clusters the user named keep their name unless ``overwrite``);
    returns how many names were set."""
    count = 0
    for scale, per in table.suggestions.items():
        for k, sg in per.items():
            if overwrite or not table.name_of(scale, k):
                table.set_name(scale, k, sg["name"])
                count += 1
    return count


__all__ = ["Suggestion", "accept", "suggest", "suggest_all"]
