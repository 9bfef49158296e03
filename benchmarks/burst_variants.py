"""Atmospheric-burst cases (issue #9): scatcov and several hybrid settings on the very same cases.

    python -m benchmarks.burst_variants --device cuda --json out.json

Each case is run once with scatcov and once per hybrid variant; the table gives the output SNR (dB) per component
and its mean. Results are written after every case, so a run cut short keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from unmix.evaluation.benchmark import insight_dir, machine, run_case
from unmix.evaluation.cases import burst_case, load_background

VARIANTS = {
    "hybrid": {},
    "hybrid outlier_factor=1": {"outlier_factor": 1.0},
    "hybrid record_share=0.5": {"record_share": 0.5},
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="S0185a:0,S0105a:0,S0484b:0,S0185a:1",
                    help="comma-separated SOL:SEED pairs (UCLA backgrounds)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--only", default=None, help="comma-separated subset of: scatcov and the variant names")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    folder = insight_dir() / "background"
    rows, out = [], {"machine": machine(), "max_iter": args.max_iter, "variants": VARIANTS, "cases": []}
    for item in args.cases.split(","):
        sol, seed = item.split(":")
        path = next(folder.glob(f"*{sol}*UCLA*"))
        case = burst_case(load_background(path), seed=int(seed))
        common = {"device": args.device, "max_iter": args.max_iter}
        only = None if args.only is None else set(args.only.split(","))
        runs = {}
        if only is None or "scatcov" in only:
            runs["scatcov"] = run_case(case, ["scatcov"], {"scatcov": common})["methods"]["scatcov"]
        for name, opts in VARIANTS.items():
            if only is not None and name not in only:
                continue
            runs[name] = run_case(case, ["hybrid"], {"hybrid": {**common, **opts}})["methods"]["hybrid"]
        out["cases"].append({"background": sol, "seed": int(seed), "info": case.info, "runs": runs})
        for name, r in runs.items():
            if "components" not in r:
                print(f"{sol} seed {seed} {name:28s} skipped: {r.get('skipped')}", flush=True)
                continue
            snr = [r["components"][c]["snr_out_db"] for c in "UVW"]
            rows.append((name, np.mean(snr)))
            print(f"{sol} seed {seed} {name:28s} " + " ".join(f"{v:7.2f}" for v in snr)
                  + f"  mean {np.mean(snr):6.2f}  ({r['seconds']:.0f} s)", flush=True)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1, default=str))
    print("mean output SNR over cases and components:")
    for name in ["scatcov", *VARIANTS]:
        vals = [v for n, v in rows if n == name]
        if vals:
            print(f"  {name:28s} {np.mean(vals):6.2f} dB ({len(vals)} cases)")


if __name__ == "__main__":
    main()
