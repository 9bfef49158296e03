"""Runtime of the paper protocol on one 65 536-sample 3-component target (#18): S0235b raw from 100 s, R = 300
snippets of 1024 samples from the two UCLA backgrounds (drawn at random starts; values do not change the cost).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.paper_protocol_time MAX_ITER [DEVICE]``
"""
import json
import sys
import time

import numpy as np
import torch

from unmix.evaluation.benchmark import insight_dir
from unmix.io import read_record, read_records
from unmix.separation import get_method

it = int(sys.argv[1])
device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
root = insight_dir()
rec = read_record(root / "raw/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed")
st = rec.stream.copy()
t0 = st[0].stats.starttime
st.trim(t0 + 100, t0 + 100 + 65535 / 20.0)
rng = np.random.default_rng(0)
xs = [max(read_records(root / f"background/XB.ELYSE.02.BH_{e}_deglitched_UCLA_v4.mseed"),
          key=lambda r: r.npts).to_array()
      for e in ("S0185a", "S0484b")]
snip = []
for k in range(300):
    x = xs[k % 2]
    a = int(rng.integers(0, x.shape[1] - 1024))
    snip.append(x[:, a:a + 1024])
prior = np.stack(snip)
t1 = time.perf_counter()
res = get_method("scatcov", prior=prior, protocol="paper", max_iter=it, device=device).separate(st)
print(json.dumps({"device": device, "torch_threads": torch.get_num_threads(), "npts": [tr.stats.npts for tr in st],
                  "R": 300, "max_iter": it, "n_iter": res.info["n_iter"], "n_eval": res.info["n_eval"],
                  "setup_s": res.info["setup_s"], "solve_s": res.info["solve_s"], "seconds": time.perf_counter() - t1,
                  "n_problems": res.info["n_problems"],
                  "loss": [res.info["loss_history"][0], res.info["loss_history"][-1]]}),
      flush=True)
