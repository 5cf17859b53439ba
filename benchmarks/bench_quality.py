"""Heatmap quality on the demo's validation split, per algorithm and depth.

    python benchmarks/bench_quality.py [--n 1000] [--steps 20]

For GradCAM, LayerCAM and Focus Layer CAM, at the deepest, a middle and the shallowest depth,
explaining each sample's true class:
  energy      energy-based pointing game: share of heatmap mass inside the object's mask
              (higher is better); a uniform heatmap scores the mask's area share
  deletion    AUC of the class probability as the most salient pixels are set to the data mean
              (0 after normalisation), 20 steps (lower is better)
  insertion   AUC as they are revealed on a mean image (higher is better)
Prints a markdown table and writes benchmarks/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samplelens_widget import CamEngine  # noqa: E402
from samplelens_widget.cam import ALGORITHMS  # noqa: E402
from samplelens_widget.cam.metrics import auc, perturbation_curves, pointing_energy  # noqa: E402
from samplelens_widget.demo import load_demo  # noqa: E402


def heatmaps(engine, images, labels, algorithm, depths, batch=100):
    out = {d: [] for d in depths}
    for s in range(0, len(images), batch):
        res = engine.explain(images[s:s + batch], label=labels[s:s + batch].tolist(),
                             algorithm=algorithm)
        for d in depths:
            out[d].append(res.heatmap(d))
    return {d: np.concatenate(v) for d, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="validation samples to use")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quality.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    model, data, _ = load_demo()
    val = data["val"]
    n = min(args.n, len(val))
    images, labels, masks = val.images[:n], np.asarray(val.labels[:n]), np.asarray(val.masks[:n])
    engine = CamEngine(model)
    layers = engine.layers(images[:1])
    top = max(i.depth for i in layers)
    depths = {"deepest": top, "middle": (top + 1) // 2, "shallowest": 1}
    acc = float((model(images).argmax(1).numpy() == labels).mean())
    rows = []
    for algorithm in CamEngine.algorithms:
        maps = heatmaps(engine, images, labels, algorithm, list(depths.values()))
        for where, d in depths.items():
            h = maps[d]
            rows.append({
                "algorithm": algorithm, "where": where, "depth": d,
                "layer": [i.name for i in layers if i.depth == d][-1],
                "energy": float(pointing_energy(h, masks).mean()),
                "deletion": float(auc(perturbation_curves(model, images, h, labels, "deletion",
                                                          args.steps)).mean()),
                "insertion": float(auc(perturbation_curves(model, images, h, labels,
                                                           "insertion", args.steps)).mean()),
            })
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    uniform = float(masks.reshape(n, -1).mean())
    print(f"\nDemo validation split: {n} samples, model accuracy {acc:.3f}, {top} depths; "
          f"a uniform heatmap's energy is {uniform:.3f}; {time.perf_counter() - t0:.0f} s\n")
    print("| algorithm | depth | layer | energy (pointing) ↑ | deletion AUC ↓ | insertion AUC ↑ |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        title = ALGORITHMS[r["algorithm"]].title
        print(f"| {title} | {r['where']} ({r['depth']}) | `{r['layer']}` | "
              f"{r['energy']:.3f} | {r['deletion']:.3f} | {r['insertion']:.3f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"n": n, "accuracy": acc, "uniform_energy": uniform,
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
