"""Speed and peak memory of CamEngine.explain (every layer, one pass) against its peers.

    python benchmarks/bench_engine.py [--batches 1 16] [--size 224] [--reps 5] [--device cpu]

A ResNet-18-shaped model with random weights. Rows, per device and batch size:
  forward+backward    a bare forward + loss.backward() (weight gradients included)
  floor               one forward + an activation-only backward (autograd.grad w.r.t. the
                      first conv's output): the least any one-pass method can cost
  samplelens          CamEngine.explain, GradCAM for every layer (conv, BN, ReLU, pool: 58)
  per-conv passes     one forward + backward per conv layer (20), what pytorch-grad-cam needs
                      for per-layer maps (emulated: its package needs torchvision)
  torchcam            torchcam's LayerCAM hooked on all 20 convs, one forward + its backward
Prints a markdown table (median seconds, ratios, peak memory) and writes
benchmarks/results/engine.json. Peak memory: on CUDA torch.cuda.max_memory_allocated, on the
CPU the peak resident set (VmHWM) above its size before the call, each method in a fresh
process. The timed methods take turns within each round (medians), so that load from other
processes falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet import resnet18  # noqa: E402

from samplelens_widget import CamEngine  # noqa: E402


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Peak:
    """Peak memory of what runs inside, in MB."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM
            except OSError:
                pass
            self.base = _rss_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _rss_kb("VmHWM") * 1024
        self.mb = max(0, peak - self.base) / 2**20


def conv_names(model) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]


def fwd_bwd(model, x, target):
    out = model(x)
    out.gather(1, target[:, None]).sum().backward()
    model.zero_grad(set_to_none=True)


def floor(model, x, target):
    """One forward and an activation-only backward down to the first layer's output (the same
    extent as the engine's backward), with no hooks and no maps."""
    first = []
    handle = model.conv1.register_forward_hook(lambda m, a, o: first.append(o))
    try:
        out = model(x)
    finally:
        handle.remove()
    torch.autograd.grad(out.gather(1, target[:, None]).sum(), first[0])


def per_conv(model, x, target):
    modules = dict(model.named_modules())
    maps = {}
    for name in conv_names(model):
        saved = {}

        def hook(m, a, o, saved=saved):
            saved["a"] = o
            o.register_hook(lambda g: saved.__setitem__("g", g))

        handle = modules[name].register_forward_hook(hook)
        try:
            out = model(x)
            out.gather(1, target[:, None]).sum().backward()
        finally:
            handle.remove()
        act, grad = saved["a"].detach(), saved["g"]
        maps[name] = F.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1))
        model.zero_grad(set_to_none=True)
    return maps


def make_torchcam(model):
    from torchcam.methods import LayerCAM

    names = conv_names(model)

    def run(model, x, target):
        with LayerCAM(model, target_layer=names) as extractor:
            out = model(x)
            cams = extractor(class_idx=target.tolist(), scores=out, normalized=False)
        model.zero_grad(set_to_none=True)
        return cams

    return run


def run_interleaved(methods, model, x, target, reps: int, device) -> dict[str, float]:
    """Median seconds per method. The methods take turns within each round, so that load from
    other processes falls on all of them alike."""
    for _, fn, every in methods:
        for _ in range(1 if every > 1 else 2):  # warm-up (allocator, oneDNN primitives, and
            fn(model, x, target)  # the engine's first-pass in-place detection)
    times: dict[str, list[float]] = {name: [] for name, _, _ in methods}
    for r in range(reps):
        for name, fn, every in methods:
            if r % every:
                continue
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn(model, x, target)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_memory(method: str, batch: int, size: int, device: str) -> float:
    """Peak memory (MB) of one call of ``method``, measured in a fresh process so that memory
    an earlier method left in the allocator does not hide it."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-of", method, "--batches", str(batch), "--size",
         str(size), "--device", device],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "engine.json"))
    ap.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = resnet18().to(device)
    engine = CamEngine(model)

    def samplelens(model, x, target):
        return engine.explain(x, label=target, algorithm="gradcam")

    # (name, function, run every n-th round): the per-conv passes take 20x longer
    methods = [
        ("forward+backward", fwd_bwd, 1),
        ("floor", floor, 1),
        ("samplelens", samplelens, 1),
        ("per-conv passes", per_conv, 3),
        ("torchcam", make_torchcam(model), 1),
    ]
    if args.memory_of:
        fn = dict((name, f) for name, f, _ in methods)[args.memory_of]
        x = torch.randn(args.batches[0], 3, args.size, args.size, device=device)
        target = torch.randint(0, 1000, (args.batches[0],), device=device)
        with Peak(device) as peak:
            fn(model, x, target)
        print(peak.mb)
        return
    n_layers = len(engine.layers(torch.randn(1, 3, args.size, args.size)))
    rows = []
    for batch in args.batches:
        x = torch.randn(batch, 3, args.size, args.size, device=device)
        target = torch.randint(0, 1000, (batch,), device=device)
        medians = run_interleaved(methods, model, x, target, args.reps, device)
        results = {}
        for name, _, _ in methods:
            mb = peak_memory(name, batch, args.size, args.device)
            results[name] = (medians[name], mb)
            print(f"  {device.type} batch {batch:>3} {name:<18} {medians[name] * 1e3:9.1f} ms "
                  f"{mb:8.1f} MB", file=sys.stderr, flush=True)
        ours = results["samplelens"][0]
        for name, (seconds, mb) in results.items():
            rows.append({
                "device": device.type, "batch": batch, "method": name,
                "median_ms": round(seconds * 1e3, 1), "peak_mb": round(mb, 1),
                "samplelens_over_this": round(ours / seconds, 3),
            })

    cpu = platform.processor() or platform.machine()
    print(f"\nResNet-18-shaped, random weights, {args.size}x{args.size}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {cpu}; samplelens computes "
          f"{n_layers} layers, the peers 20 convs\n")
    print("| device | batch | method | median ms | samplelens / method | peak MB |")
    print("|---|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['device']} | {r['batch']} | {r['method']} | {r['median_ms']:.1f} | "
              f"{r['samplelens_over_this']:.2f}x | {r['peak_mb']:.0f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"layers": n_layers, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
