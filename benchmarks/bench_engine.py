"""Speed and peak memory of CamEngine.explain (every layer, one pass) against its peers.

    python benchmarks/bench_engine.py [--batches 1 16] [--size 224] [--reps 5] [--device cpu]

A ResNet-18-shaped model with random weights. Rows, per device and batch size:
  forward+backward    a bare forward + loss.backward() (weight gradients included)
  floor               one forward + an activation-only backward (autograd.grad w.r.t. the
                      input): the least any one-pass method can cost
  samplelens          CamEngine.explain, GradCAM for every layer (conv, BN, ReLU, pool: 58)
  per-conv passes     one forward + backward per conv layer (20), what pytorch-grad-cam needs
                      for per-layer maps (emulated: its package needs torchvision)
  torchcam            torchcam's LayerCAM hooked on all 20 convs, one forward + its backward
Prints a markdown table (median seconds, ratios, peak memory) and writes
benchmarks/results/engine.json. Peak memory: on CUDA torch.cuda.max_memory_allocated, on the
CPU the process's peak resident set (VmHWM, reset before each row) above its size before.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
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
    x = x.detach().requires_grad_(True)
    out = model(x)
    torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)


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


def time_it(fn, model, x, target, reps: int, device) -> tuple[float, float]:
    fn(model, x, target)  # warm-up (and the engine's first-pass in-place detection)
    times = []
    with Peak(device) as peak:
        for _ in range(reps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn(model, x, target)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), peak.mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "engine.json"))
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = resnet18().to(device)
    engine = CamEngine(model)

    def samplelens(model, x, target):
        return engine.explain(x, label=target, algorithm="gradcam")

    methods = [
        ("forward+backward", fwd_bwd, args.reps),
        ("floor", floor, args.reps),
        ("samplelens", samplelens, args.reps),
        ("per-conv passes", per_conv, max(1, args.reps // 3)),
        ("torchcam", make_torchcam(model), args.reps),
    ]
    n_layers = len(engine.layers(torch.randn(1, 3, args.size, args.size)))
    rows = []
    for batch in args.batches:
        x = torch.randn(batch, 3, args.size, args.size, device=device)
        target = torch.randint(0, 1000, (batch,), device=device)
        results = {}
        for name, fn, reps in methods:
            seconds, mb = time_it(fn, model, x, target, reps, device)
            results[name] = (seconds, mb)
            print(f"  {device.type} batch {batch:>3} {name:<18} {seconds * 1e3:9.1f} ms "
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
