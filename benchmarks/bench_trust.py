"""Can I trust this map? The cost of CamEngine.faithfulness / sanity_check, and their numbers on
the demo.

    python benchmarks/bench_trust.py [--n 100] [--sanity-n 50] [--steps 20] [--reps 3]
                                     [--resnet-reps N] [--precisions float32 bfloat16]
                                     [--algorithms gradcam ...] [--skip-speed] [--skip-quality]

Speed (one sample, every depth, ``steps`` steps): the demo model (64x64) and the ResNet-18-shaped
model of ``benchmarks/resnet.py`` (random weights, 224x224); *images* is how many perturbed images
went through the model, *floor* the time of a plain ``no_grad`` forward of that many images in
batches of the same size (the model's own cost), and the sanity check's time (the model's children
re-initialised one at a time, one ``explain`` each). Each model twice: ``precision="float32"``
and ``"bfloat16"`` (autocast, channels-last), with the largest change of a depth's
insertion - deletion against float32.

Quality (the demo's validation split, the first ``--n`` samples, explaining each sample's true
class): per algorithm and depth band (the shallow, middle and deep thirds of the depths), the mean
insertion - deletion of the maps, of a random map (3 seeded draws) and of the Sobel edge map;
*beats both* is the share of (sample, depth) pairs whose map beats both baselines of that sample;
*rho* the Spearman correlation of the map with the same layer's map once the first stage (the
classifier head) and once every stage is re-initialised (the cascade's first and final stages;
mean over the first ``--sanity-n`` samples and the band's depths; lower means the map depends
more on the weights).
Prints markdown tables and writes benchmarks/results/trust.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from resnet import resnet18  # noqa: E402

from samplelens_widget import CamEngine  # noqa: E402
from samplelens_widget.cam import ALGORITHMS  # noqa: E402
from samplelens_widget.cam.faithfulness import PRECISIONS, check_batch_size  # noqa: E402
from samplelens_widget.cam.sanity import cascade  # noqa: E402
from samplelens_widget.demo import load_demo  # noqa: E402


def timed(fn, reps):
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def floor(model, x, images, batch, precision="float32"):
    """Seconds of a plain no_grad forward of ``images`` copies of ``x`` in batches (in
    bfloat16: channels-last under autocast, as faithfulness runs them)."""
    with torch.no_grad():
        t = time.perf_counter()
        for s in range(0, images, batch):
            xb = x.expand(min(batch, images - s), *x.shape[1:]).contiguous()
            if precision == "bfloat16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    model(xb.contiguous(memory_format=torch.channels_last))
            else:
                model(xb)
        return time.perf_counter() - t


def speed(steps, reps, precisions=PRECISIONS, resnet_reps=None):
    model, data, _ = load_demo()
    x_demo = data["val"].images[:1]
    torch.manual_seed(0)
    resnet = resnet18()
    x_res = torch.randn(1, 3, 224, 224)
    rows = []
    for name, m, x, r in (("demo 64x64", model, x_demo, reps),
                          ("ResNet-18 224x224", resnet, x_res,
                           resnet_reps or max(1, reps // 2))):
        engine = CamEngine(m)
        engine.explain(x)  # warm up
        t_explain, _ = timed(lambda e=engine, x=x: e.explain(x), r)
        t_s, san = timed(lambda e=engine, x=x: e.sanity_check(x), r)
        exact = None
        for precision in precisions:
            t_f, f = timed(lambda e=engine, x=x, p=precision: e.faithfulness(
                x, steps=steps, precision=p), r)
            exact = f if precision == "float32" else exact
            batch = check_batch_size(None, engine.device, precision)
            t_floor = floor(m, x, f.images, batch, precision)
            rows.append({"model": name, "precision": precision, "depths": len(f.depths),
                         "steps": steps, "images": f.images, "faithfulness_s": t_f,
                         "floor_s": t_floor, "explain_s": t_explain, "sanity_s": t_s,
                         "stages": len(san), "final_rho": san[-1][1],
                         "max_score_change": None if exact is None
                         else float(np.abs(f.score - exact.score).max())})
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def first_points(reps):
    """The Trust view's first reply: a ``trust`` request for one demo sample (the viewed one,
    nothing cached) -> its first chunk sent, and -> the whole curve and baselines, through the
    widget's own handler (``background=False``: on this thread, nothing else running)."""
    from samplelens_widget import SampleLens

    model, data, names = load_demo()
    firsts, alls = [], []
    for rep in range(reps):
        lens = SampleLens(model, data["val"], label_names=names, projection="pca",
                          cache_dir=None, background=False, selected=[rep, rep + 1], viewed=rep + 1)
        sent = []
        lens.send = lambda c, buffers=None, sent=sent: sent.append((time.perf_counter(), c))
        key = lens._key().as_dict()
        t0 = time.perf_counter()
        lens._on_msg(lens, {"type": "trust", "rid": 1, "key": key, "depth": 21}, [])
        times = [t for t, c in sent if c.get("type") == "trust"]
        firsts.append(times[0] - t0)
        alls.append(times[-1] - t0)
        lens.close()
    return {"first_chunk_s": statistics.median(firsts), "whole_curve_s": statistics.median(alls),
            "reps": reps}


def bands(depths):
    return {name: [int(d) for d in part] for name, part in
            zip(("shallow", "middle", "deep"), np.array_split(np.asarray(depths), 3),
                strict=True)}


def quality(n, sanity_n, steps, algorithms, chunk=50):
    model, data, _ = load_demo()
    val = data["val"]
    images, labels = val.images[:n], np.asarray(val.labels[:n])
    engine = CamEngine(model)
    depths = engine.explain(images[:1]).depths
    parts = bands(depths)
    rows = []
    for algorithm in algorithms:
        t = time.perf_counter()
        score, dele, ins, rand, edges = [], [], [], [], []
        for s in range(0, n, chunk):
            f = engine.faithfulness(images[s:s + chunk], target=labels[s:s + chunk].tolist(),
                                    algorithm=algorithm, steps=steps)
            score.append(f.score)
            dele.append(f.deletion)
            ins.append(f.insertion)
            rand.append(f.baseline_score("random"))
            edges.append(f.baseline_score("edges"))
        sc, ra, ed = np.concatenate(score), np.concatenate(rand), np.concatenate(edges)
        de, ip = np.concatenate(dele), np.concatenate(ins)
        cas = cascade(engine, images[:sanity_n], labels[:sanity_n].tolist(), algorithm,
                      every_depth=True)
        first, final = cas[0][1], cas[-1][1]
        for band, ds in parts.items():
            cols = [depths.index(d) for d in ds]
            s_band = sc[:, cols]
            wins = (s_band > np.maximum(ra, ed)[:, None]).mean()
            rows.append({"algorithm": algorithm, "band": band, "depths": [ds[0], ds[-1]],
                         "map": float(s_band.mean()), "deletion": float(de[:, cols].mean()),
                         "insertion": float(ip[:, cols].mean()), "random": float(ra.mean()),
                         "edges": float(ed.mean()), "beats_both": float(wins),
                         "rho_first": float(np.mean([first[d] for d in ds])),
                         "rho_final": float(np.mean([final[d] for d in ds])),
                         "first_stage": cas[0][0], "final_stage": cas[-1][0]})
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
        print(f"  {algorithm}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    acc = float((model(images).argmax(1).numpy() == labels).mean())
    return rows, acc, len(depths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="validation samples for the quality")
    ap.add_argument("--sanity-n", type=int, default=50, help="samples for the sanity check")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--algorithms", nargs="+", default=list(CamEngine.algorithms),
                    choices=list(CamEngine.algorithms))
    ap.add_argument("--resnet-reps", type=int, default=None,
                    help="runs of the ResNet-18 rows (default: --reps // 2, at least 1)")
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "trust.json"))
    args = ap.parse_args()
    env = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
           f"{platform.machine()}, cpu")
    result: dict[str, object] = {"env": env}
    if not args.skip_speed:
        rows = speed(args.steps, args.reps, args.precisions, args.resnet_reps)
        result["speed"] = rows
        print(f"\nOne sample, every depth, {args.steps} steps; medians of {args.reps} runs "
              f"(ResNet: {args.resnet_reps or max(1, args.reps // 2)}); {env}\n")
        print("| model | precision | depths | images | faithfulness s | floor s (model alone) "
              "| max change of insertion - deletion vs float32 | explain s "
              "| sanity check s (stages) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            change = "-" if r["max_score_change"] is None else f"{r['max_score_change']:.4f}"
            print(f"| {r['model']} | {r['precision']} | {r['depths']} | {r['images']} "
                  f"| {r['faithfulness_s']:.2f} | {r['floor_s']:.2f} | {change} "
                  f"| {r['explain_s']:.3f} "
                  f"| {r['sanity_s']:.2f} ({r['stages']}) |")
        fp = first_points(args.reps)
        result["trust_view"] = fp
        print(f"\nTrust view, demo sample, through the widget's handler (median of {fp['reps']}): "
              f"first points {fp['first_chunk_s']:.2f} s, whole curve and baselines "
              f"{fp['whole_curve_s']:.2f} s")
    if not args.skip_quality:
        t = time.perf_counter()
        rows, acc, top = quality(args.n, args.sanity_n, args.steps, args.algorithms)
        result["quality"] = {"n": args.n, "sanity_n": args.sanity_n, "accuracy": acc,
                             "rows": rows}
        print(f"\nDemo validation split: the first {args.n} samples (model accuracy {acc:.3f}), "
              f"true class, {args.steps} steps, {top} depths in thirds; sanity check on the "
              f"first {args.sanity_n}; {time.perf_counter() - t:.0f} s\n")
        first = rows[0]["first_stage"]
        print(f"| algorithm | depths | insertion − deletion ↑ | deletion ↓ | insertion ↑ | "
              f"random | edges | beats both | rho, `{first}` random ↓ | rho, all random ↓ |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            lo, hi = r["depths"]
            print(f"| {ALGORITHMS[r['algorithm']].title} | {r['band']} ({lo}–{hi}) | "
                  f"{r['map']:.3f} | {r['deletion']:.3f} | {r['insertion']:.3f} | "
                  f"{r['random']:.3f} | {r['edges']:.3f} | {100 * r['beats_both']:.0f}% | "
                  f"{r['rho_first']:.2f} | {r['rho_final']:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
