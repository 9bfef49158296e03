"""Peak memory of separating one file whole or in pieces (#19 item 3): read the records as ``unmix separate`` does,
separate each with the method, write every product as miniSEED; ``--mode whole`` separates each record at once and
writes the products after, ``--mode pieces`` separates in pieces (:mod:`unmix.separation.pieces`) and appends each
piece to the files as it comes (:mod:`unmix.io.append`). Prints one JSON line: the peak resident set size of this
process (the whole run), the peak while reading, the resident size after reading, and the wall times.

Run one process per case, e.g. on synthetic records::

    .venv/bin/unmix synth --sols 2 --out /tmp/syn2
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.separate_memory /tmp/syn2/mixture.mseed --mode pieces
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from obspy import Stream
from obspy.core import AttribDict

from unmix.atomic import write_stream
from unmix.io import read_records
from unmix.io.append import AppendedFiles
from unmix.separation import get_method
from unmix.separation.pieces import separate_in_pieces


def _float64(st: Stream) -> Stream:
    """The traces as float64 miniSEED (as the export writes them by default)."""
    for tr in st:
        tr.data = np.ascontiguousarray(tr.data, dtype=np.float64)
        tr.stats.mseed = AttribDict(encoding="FLOAT64", dataquality="Q")
    return st


def run(path: Path, method: str, mode: str, out: Path) -> dict:
    """Separate ``path`` and write its products into ``out``; the figures of the run."""
    t0 = time.perf_counter()
    records = read_records(path, "split", 0, None)
    t_read, rss_read = time.perf_counter(), psutil.Process().memory_info().rss
    peak_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    separator = get_method(method)
    pieces = 0
    if mode == "whole":
        products: dict[str, Stream] = {}
        for record in records:
            result = separator.separate(record.stream)
            pieces += 1
            for name, st in {"background": result.background, **result.removed}.items():
                products.setdefault(name, Stream())
                products[name] += st
        for name, st in products.items():
            write_stream(_float64(st), out / f"{name}.mseed", "MSEED")
    else:
        with AppendedFiles() as files:
            for record in records:
                for part in separate_in_pieces(record, separator):
                    pieces += 1
                    for name, st in {"background": part.background, **part.removed}.items():
                        files.append(out / f"{name}.mseed", _float64(st))
                    del part
    t_end = time.perf_counter()
    return {"file": str(path), "method": method, "mode": mode, "npts": int(sum(r.npts for r in records)),
            "pieces": pieces, "rss_after_read_mb": round(rss_read / 2**20, 1),
            "peak_rss_reading_mb": round(peak_read / 2**20, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "read_s": round(t_read - t0, 2), "separate_write_s": round(t_end - t_read, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--method", default="template", choices=("template", "highpass"))
    parser.add_argument("--mode", default="pieces", choices=("whole", "pieces"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args.file, args.method, args.mode, Path(tmp))))


if __name__ == "__main__":
    main()
