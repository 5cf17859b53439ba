"""Speed and peak memory of CamEngine.explain (every layer, one pass) against its peers.

    python benchmarks/bench_engine.py [--models resnet18 vit_b_16 swin_t] [--batches 1 16]
        [--size 224] [--reps 5] [--device cpu]

Three models with random weights, one table each. Rows, per device and batch size:

resnet18, a ResNet-18-shaped model (benchmarks/resnet.py):
  forward+backward    a bare forward + loss.backward() (weight gradients included)
  floor               one forward + an activation-only backward (autograd.grad w.r.t. the
                      first conv's output): the least any one-pass method can cost
  samplelens          CamEngine.explain, GradCAM for every layer (conv, BN, ReLU, pool: 58)
  samplelens, target Loss
                      the same, explaining each sample's cross-entropy loss (targets.Loss)
  per-conv passes     one forward + backward per conv layer (20), what pytorch-grad-cam needs
                      for per-layer maps (emulated with plain hooks)
  torchcam            torchcam's LayerCAM hooked on all 20 convs, one forward + its backward

vit_b_16 and swin_t, torchvision's ViT-B/16 (built with image_size=--size; its zero-initialised
head re-initialised with std 0.02, else every map is zero) and Swin-T:
  forward+backward    a bare forward + loss.backward() of the summed predicted-class logits
  floor               one forward + an activation-only backward down to the patch embedding's
                      output (conv_proj / features.0.0), no hooks, no maps
  samplelens          CamEngine.explain, GradCAM for every layer it finds (blocks and leaves)
  pytorch-grad-cam per block
                      the real pytorch-grad-cam GradCAM, one call per block (what a user does
                      for a map per block), with the reshape_transform a careful user writes:
                      ViT: the 11 first encoder layers and encoder_layer_11.ln_1 (the last
                      layer's patch tokens get no gradient: the head reads the class token),
                      tokens (N, 1 + h*w, C) -> (N, C, h, w); Swin: the 12 blocks of
                      features[1], [3], [5], [7] and norm, channels-last -> NCHW. It runs on its
                      own copy of the model (it calls model.eval() and leaves .grad on it). Each
                      GradCAM is built inside the timed call: built once up front, the hooks of
                      all the blocks would fire on every call and each object would keep its
                      retained graph alive; building one (model.eval(), two hooks) takes
                      about 0.6 ms. The timed calls include its numpy work and its resize.
The target class is random for resnet18, the predicted class for the transformers; samplelens
computes a superset of the blocks pytorch-grad-cam is run on (checked). Also prints, per
transformer, the speed-up "pytorch-grad-cam per block / samplelens".

Prints markdown tables (median seconds, ratios, peak memory) and writes
benchmarks/results/engine.json (every row, with its model). Peak memory: on CUDA
torch.cuda.max_memory_allocated, on the CPU the peak resident set (VmHWM) above its size before
the call, each method in a fresh process. The timed methods take turns within each round
(medians), so that load from other processes falls on all of them alike.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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


def make_floor(first_layer: str):
    def run(model, x, target):
        return floor(model, x, target, first_layer)

    return run


def floor(model, x, target, first_layer: str = "conv1"):
    """One forward and an activation-only backward down to the first layer's output (the same
    extent as the engine's backward), with no hooks and no maps."""
    first = []
    module = model.get_submodule(first_layer)
    handle = module.register_forward_hook(lambda m, a, o: first.append(o))
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


def samplelens(engine: CamEngine):
    def run(model, x, target):
        return engine.explain(x, label=target, algorithm="gradcam")

    return run


def samplelens_loss(engine: CamEngine):
    """The same pass explaining each sample's loss (cross entropy against ``target`` as its
    true label) instead of a class logit."""
    from samplelens_widget.targets import Loss

    def run(model, x, target):
        return engine.explain(x, Loss(target), algorithm="gradcam")

    return run


def make_grad_cam(model, blocks: list[str], reshape):
    """The real pytorch-grad-cam GradCAM, one call per block, on its own copy of ``model`` (its
    constructor calls ``model.eval()``, its call leaves ``.grad`` on the parameters). Each
    GradCAM is built inside the call and released after it: built once up front, every object's
    hooks would fire on every call and each would keep its retained graph alive (building one
    costs about 0.6 ms on a CPU: ``model.eval()`` and two hooks)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    own = copy.deepcopy(model)
    own_blocks = [own.get_submodule(name) for name in blocks]

    def run(model, x, target):
        targets = [ClassifierOutputTarget(k) for k in target.tolist()]
        maps = []
        for block in own_blocks:
            with GradCAM(own, target_layers=[block], reshape_transform=reshape) as cam:
                maps.append(cam(input_tensor=x, targets=targets))
        return maps

    return run


def random_targets(model, x):
    return torch.randint(0, 1000, (x.shape[0],), device=x.device)


def predicted(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


@dataclass
class Bench:
    """One model and the methods timed on it: (name, function, run every n-th round)."""

    title: str
    peers: str  # what the peers compute, for the table's heading
    model: nn.Module
    engine: CamEngine
    methods: list[tuple[str, Callable, int]]
    targets: Callable  # (model, x) -> the class explained per sample
    blocks: tuple[str, ...] = ()  # the peer's layers; samplelens must compute each of them
    speedup_of: str | None = None  # the peer whose time over samplelens's is printed


def bench_resnet18(size: int, device) -> Bench:
    model = resnet18().to(device)
    engine = CamEngine(model)
    # the per-conv passes take 20x longer: every 3rd round
    methods = [
        ("forward+backward", fwd_bwd, 1),
        ("floor", floor, 1),
        ("samplelens", samplelens(engine), 1),
        ("samplelens, target Loss", samplelens_loss(engine), 1),
        ("per-conv passes", per_conv, 3),
        ("torchcam", make_torchcam(model), 1),
    ]
    return Bench("ResNet-18-shaped, random weights", "the peers 20 convs", model, engine,
                 methods, random_targets)


def transformer_bench(title: str, model, blocks: list[str], reshape, first: str) -> Bench:
    engine = CamEngine(model)
    peer = "pytorch-grad-cam per block"
    methods = [
        ("forward+backward", fwd_bwd, 1),
        ("floor", make_floor(first), 1),
        ("samplelens", samplelens(engine), 1),
        (peer, make_grad_cam(model, blocks, reshape), 3),  # one pass per block: every 3rd round
    ]
    return Bench(title, f"pytorch-grad-cam {len(blocks)} blocks", model, engine, methods,
                 predicted, tuple(blocks), peer)


def bench_vit_b_16(size: int, device) -> Bench:
    from torchvision.models import vit_b_16

    model = vit_b_16(image_size=size)
    nn.init.normal_(model.heads.head.weight, std=0.02)  # zero-initialised: every map would be 0
    model = model.eval().to(device)
    side = size // 16

    def tokens(t):
        return t[:, 1:, :].reshape(t.size(0), side, side, t.size(2)).permute(0, 3, 1, 2)

    # the last encoder layer's patch tokens get no gradient (the head reads the class token):
    # its ln_1 instead, pytorch-grad-cam's docs' choice
    blocks = [f"encoder.layers.encoder_layer_{i}" for i in range(11)]
    blocks.append("encoder.layers.encoder_layer_11.ln_1")
    return transformer_bench("torchvision vit_b_16, random weights (head std 0.02)", model,
                             blocks, tokens, "conv_proj")


def bench_swin_t(size: int, device) -> Bench:
    from torchvision.models import swin_t

    model = swin_t().eval().to(device)

    def nhwc(t):
        return t.permute(0, 3, 1, 2)

    blocks = [f"features.{s}.{b}" for s in (1, 3, 5, 7) for b in range(len(model.features[s]))]
    blocks.append("norm")
    return transformer_bench("torchvision swin_t, random weights", model, blocks, nhwc,
                             "features.0.0")


BENCHES: dict[str, Callable[[int, torch.device], Bench]] = {
    "resnet18": bench_resnet18,
    "vit_b_16": bench_vit_b_16,
    "swin_t": bench_swin_t,
}


def build(name: str, size: int, device) -> Bench:
    torch.manual_seed(0)
    return BENCHES[name](size, device)


def peak_memory(model: str, method: str, batch: int, size: int, device: str) -> float:
    """Peak memory (MB) of one call of ``method`` on ``model``, measured in a fresh process so
    that memory an earlier method left in the allocator does not hide it."""
    out = subprocess.run(
        [sys.executable, __file__, "--models", model, "--memory-of", method, "--batches",
         str(batch), "--size", str(size), "--device", device],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(name: str, bench: Bench, args, device) -> tuple[list[dict], list[dict]]:
    """Rows of one model, and the peer-over-samplelens speed-ups."""
    rows, speedups = [], []
    for batch in args.batches:
        x = torch.randn(batch, 3, args.size, args.size, device=device)
        target = bench.targets(bench.model, x)
        medians = run_interleaved(bench.methods, bench.model, x, target, args.reps, device)
        results = {}
        for method, _, _ in bench.methods:
            mb = peak_memory(name, method, batch, args.size, args.device)
            results[method] = (medians[method], mb)
            print(f"  {name} {device.type} batch {batch:>3} {method:<26} "
                  f"{medians[method] * 1e3:9.1f} ms {mb:8.1f} MB", file=sys.stderr, flush=True)
        ours = results["samplelens"][0]
        for method, (seconds, mb) in results.items():
            rows.append({
                "model": name, "device": device.type, "batch": batch, "method": method,
                "median_ms": round(seconds * 1e3, 1), "peak_mb": round(mb, 1),
                "samplelens_over_this": round(ours / seconds, 3),
            })
        if bench.speedup_of:
            speedups.append({"device": device.type, "batch": batch,
                             "speedup": round(results[bench.speedup_of][0] / ours, 2)})
    return rows, speedups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "engine.json"))
    ap.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.memory_of:
        bench = build(args.models[0], args.size, device)
        fn = dict((name, f) for name, f, _ in bench.methods)[args.memory_of]
        x = torch.randn(args.batches[0], 3, args.size, args.size, device=device)
        target = bench.targets(bench.model, x)
        with Peak(device) as peak:
            fn(bench.model, x, target)
        print(peak.mb)
        return
    cpu = platform.processor() or platform.machine()
    report = {"models": {}, "rows": []}
    for name in args.models:
        bench = build(name, args.size, device)
        layers = bench.engine.layers(torch.randn(1, 3, args.size, args.size))
        computed = {n for info in layers for n in (info.name, *info.aliases)}
        missing = [b for b in bench.blocks if b not in computed]
        if missing:
            raise SystemExit(f"{name}: samplelens computes no map for {missing}")
        rows, speedups = measure(name, bench, args, device)

        print(f"\n{bench.title}, {args.size}x{args.size}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, {cpu}; samplelens computes {len(layers)} "
              f"layers, {bench.peers}\n")
        print("| device | batch | method | median ms | samplelens / method | peak MB |")
        print("|---|---:|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['device']} | {r['batch']} | {r['method']} | {r['median_ms']:.1f} | "
                  f"{r['samplelens_over_this']:.2f}x | {r['peak_mb']:.0f} |")
        if speedups:
            each = "; ".join(f"{s['device']} batch {s['batch']}: {s['speedup']:.1f}x"
                             for s in speedups)
            print(f"\n{name}: {bench.speedup_of} / samplelens (target >= 20x): {each}")
        sys.stdout.flush()
        report["models"][name] = {
            "title": bench.title, "size": args.size, "layers": len(layers),
            "peers": bench.peers, "blocks": list(bench.blocks), "speedup": speedups,
        }
        report["rows"] += rows
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
