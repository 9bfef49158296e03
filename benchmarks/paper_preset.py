"""Train the ``paper`` preset (the published network and loss, 195.7 M parameters) once on synthetic sols of the
default path and print time, GPU memory and clustering quality: ``python benchmarks/paper_preset.py SOLS EPOCHS``."""

from __future__ import annotations

import json
import sys
import time

import torch

from unmix.model import preset
from unmix.model.benchmark import synthetic_benchmark


def main(sols: float, epochs: int) -> None:
    t0 = time.perf_counter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    r = synthetic_benchmark(sols=sols, seed=0, model=preset("paper", epochs=epochs), train_seeds=(29,))
    run = r["runs"][0]
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    print(json.dumps({"sols": sols, "windows": r["windows"], "epochs": epochs, "training_s": run["training_s"],
                      "features_s": r["times"]["features_s"], "total_s": time.perf_counter() - t0,
                      "cuda_peak_gb": peak, "device": torch.cuda.get_device_name() if torch.cuda.is_available()
                      else "cpu",
                      "scores": [{"scale": s.scale, "ari": s.ari, "glitch_f1": s.glitch_f1,
                                  "glitch_precision": s.glitch_precision, "glitch_recall": s.glitch_share}
                                 for s in run["scores"]],
                      "occupancy": run["occupancy"]}, indent=1, default=str))


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]))
