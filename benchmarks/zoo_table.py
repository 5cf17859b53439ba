"""The zoo table: for every model of tests/zoo, the layers the engine finds, their layouts,
what it leaves out, its default layer, and how many of its maps equal pytorch-grad-cam's.

    python benchmarks/zoo_table.py [--models SUBSTRING ...]

Every layer that pytorch-grad-cam can be pointed at (a module called once per forward, whose
output is a tensor no later operation rewrites in place) is compared, GradCAM and LayerCAM,
with the ``reshape_transform`` a user who knows the architecture writes (tests/zoo/models.py,
``user_reshape``), in one forward and one backward of pytorch-grad-cam's own capture
(``ActivationsAndGradients``) and its own formulas. A *misread* is a compared layer whose map
differs. Needs torchvision, timm, transformers and grad-cam (scripts/test.sh installs them).
Prints a markdown table and writes benchmarks/results/zoo.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytorch_grad_cam import GradCAM, LayerCAM  # noqa: E402
from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients  # noqa: E402

from samplelens_widget import CamEngine  # noqa: E402
from tests.zoo.models import ZOO, build, user_reshape  # noqa: E402

TARGETS = [1, 3]


def _logits(out):
    return out if isinstance(out, torch.Tensor) else out.logits


def _probe(model, x, modules):
    """How often each module runs in one forward, and its output (for rank and version)."""
    calls, outputs = collections.Counter(), {}

    def hook_for(name):
        def hook(m, a, out):
            calls[name] += 1
            if isinstance(out, torch.Tensor):
                outputs[name] = (out, out._version)

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in modules.items()]
    return calls, outputs, handles


def references(z, model, x, names):
    """pytorch-grad-cam's maps of every named module, from one shared forward and backward."""
    modules = {n: model.get_submodule(n) for n in names}
    calls, outputs, handles = _probe(model, x, modules)
    try:
        with torch.no_grad():
            _logits(model(x))
    finally:
        for h in handles:
            h.remove()
    ranks = {n: t.dim() for n, (t, _) in outputs.items() if calls[n] == 1}
    grabbers = {
        n: ActivationsAndGradients(model, [modules[n]], user_reshape(z, n, modules[n], r))
        for n, r in ranks.items()
    }
    calls, outputs, handles = _probe(model, x, modules)
    try:
        out = _logits(model(x))
        out[torch.arange(len(TARGETS)), TARGETS].sum().backward()
    finally:
        for h in handles:
            h.remove()
        for g in grabbers.values():  # release() would also clear what they captured
            for handle in g.handles:
                handle.remove()
        model.zero_grad(set_to_none=True)
    # pytorch-grad-cam's own formulas, from instances that hook nothing
    gradcam_of, layercam_of = object.__new__(GradCAM), object.__new__(LayerCAM)
    refs = {}
    for n, g in grabbers.items():
        t, v = outputs[n]
        if t._version != v or len(g.gradients) != 1 or len(g.activations) != 1:
            continue  # rewritten in place after it ran, or no gradient reached it
        acts, grads = g.activations[0].numpy(), g.gradients[0].numpy()
        if acts.ndim != 4:
            continue
        gradcam = gradcam_of.get_cam_image(x, modules[n], None, acts, grads, False)
        layercam = layercam_of.get_cam_image(x, modules[n], None, acts, grads, False)
        refs[n] = {"gradcam": np.maximum(gradcam, 0), "layercam": np.maximum(layercam, 0)}
    return refs


def equal(ours, ref) -> bool:
    if ours.shape != ref.shape:
        return False
    scale = max(float(np.abs(ref).max()), 1e-12)
    # an all but zero map (1e-13: a key projection in a window of one) is zero on both sides
    return bool(np.allclose(ours, ref, rtol=1e-3, atol=max(1e-4 * scale, 1e-8)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=None, help="substrings of model names")
    args = ap.parse_args()
    rows = []
    for z in ZOO:
        if args.models and not any(s in z.name for s in args.models):
            continue
        t0 = time.perf_counter()
        model = build(z)
        torch.manual_seed(2)
        x = torch.randn(len(TARGETS), 3, *z.size)
        res = {a: CamEngine(model).explain(x, label=TARGETS, algorithm=a)
               for a in ("gradcam", "layercam")}
        r = res["gradcam"]
        single = [i.name for i in r.layers if "#" not in i.name]
        refs = references(z, model, x, single)
        same = sum(
            all(equal(res[a].raw(n), refs[n][a]) for a in res) for n in refs
        )
        off = [i.name for i in r.layers if tuple(i.shape[1:]) not in z.grids]
        layouts = collections.Counter(i.layout.split(" (")[0] for i in r.layers)
        last = r.layer_at(None)
        rows.append({
            "model": z.name, "input": f"{z.size[0]}x{z.size[1]}", "layers": len(r.layers),
            "layouts": dict(layouts), "left_out": len(r.left_out), "depths": r.depths[-1],
            "off_grid": len(off), "compared": len(refs), "equal": same,
            "misread": len(refs) - same, "default": last.name,
            "seconds": round(time.perf_counter() - t0, 1),
        })
        print(f"{z.name}: {rows[-1]}", file=sys.stderr)
    print("| model | input | layers (layouts) | left out | compared with pytorch-grad-cam | "
          "equal | misread | off the grid | default layer |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        lay = ", ".join(f"{k} {v}" for k, v in r["layouts"].items())
        print(f"| {r['model']} | {r['input']} | {r['layers']} ({lay}) | {r['left_out']} | "
              f"{r['compared']} | {r['equal']} | {r['misread']} | {r['off_grid']} | "
              f"`{r['default']}` |")
    out = Path(__file__).resolve().parent / "results" / "zoo.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
