"""Real torchvision, timm and transformers models (random weights) read right.

For every model of the zoo (``tests/zoo/models.py``):
- the maps at block outputs and at the default layer equal pytorch-grad-cam's GradCAM and
  LayerCAM, run with the ``reshape_transform`` a careful user writes for that layer;
- every layer lies on a grid of the input, from a list of grids worked out by hand from the
  architecture's strides (no attention tensor, no window partition, no transposed read);
- ``heatmap(None)`` shows the true last layer, named by hand;
- every heatmap has one map per sample at the input's resolution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from samplelens_widget import CamEngine
from tests.zoo.models import ZOO, Zoo, build

TARGETS = [1, 3]


class Logits(nn.Module):
    """What pytorch-grad-cam's Hugging Face tutorial does: hand it ``output.logits``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return out if isinstance(out, torch.Tensor) else out.logits


@pytest.fixture(scope="module", params=ZOO, ids=[z.name for z in ZOO])
def zoo(request):
    z: Zoo = request.param
    model = build(z)
    torch.manual_seed(2)
    x = torch.randn(len(TARGETS), 3, *z.size)
    results = {a: CamEngine(model).explain(x, label=TARGETS, algorithm=a)
               for a in ("gradcam", "layercam")}
    return z, model, x, results


def grad_cam_reference(model, x, module, reshape, targets=None):
    """GradCAM and LayerCAM maps of ``module`` at its own resolution, by pytorch-grad-cam
    (``targets``: its per-sample targets; default: the logits of ``TARGETS``)."""
    if targets is None:
        targets = [ClassifierOutputTarget(t) for t in TARGETS]
    with GradCAM(Logits(model), [module], reshape_transform=reshape) as cam:
        cam(input_tensor=x, targets=targets)
        acts = cam.activations_and_grads.activations[0].numpy().copy()
        grads = cam.activations_and_grads.gradients[0].numpy().copy()
        gradcam = np.maximum(cam.get_cam_image(x, module, targets, acts, grads, False), 0)
        # LayerCAM's own formula, from its class, on the same activations and gradients
        layercam = np.maximum(LayerCAM.get_cam_image(cam, x, module, targets, acts, grads,
                                                     False), 0)
    model.zero_grad(set_to_none=True)
    return {"gradcam": gradcam, "layercam": layercam}


def hand_reference(model, x, module):
    """For a block whose output is a tuple (pytorch-grad-cam cannot hook it): its first item,
    a flattened grid (N, h*w, C), and the two formulas written out."""
    kept = {}

    def keep(module, args, out) -> None:
        kept["t"] = out[0]

    handle = module.register_forward_hook(keep)
    try:
        logits = Logits(model)(x)
    finally:
        handle.remove()
    act = kept["t"]
    grad, = torch.autograd.grad(logits[torch.arange(len(TARGETS)), TARGETS].sum(), act)
    n, t, c = act.shape
    side = int(round(t ** 0.5))
    a = act.detach().reshape(n, side, side, c).numpy()
    g = grad.reshape(n, side, side, c).numpy()
    gradcam = np.maximum((g.mean(axis=(1, 2))[:, None, None, :] * a).sum(-1), 0)
    layercam = np.maximum((np.maximum(g, 0) * a).sum(-1), 0)
    return {"gradcam": gradcam, "layercam": layercam}


def assert_maps_equal(ours, ref, what):
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    scale = max(float(np.abs(ref).max()), 1e-12)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * scale, err_msg=what)


def test_block_outputs_and_the_default_layer_equal_pytorch_grad_cam(zoo):
    z, model, x, results = zoo
    names = dict(z.blocks)
    default = results["gradcam"].layer_at(None)
    for name, reshape in names.items():
        module = model.get_submodule(name)
        refs = (hand_reference(model, x, module) if reshape == "hand"
                else grad_cam_reference(model, x, module, reshape))
        for algorithm, res in results.items():
            ours = res.raw(name)
            assert_maps_equal(ours, refs[algorithm], f"{z.name} {name} {algorithm}")
            assert np.abs(refs[algorithm]).max() > 0, f"{z.name} {name}: an all-zero map"
    assert z.default in (default.name, *default.aliases)


def test_the_default_heatmap_is_the_true_last_layer(zoo):
    z, _, _, results = zoo
    for res in results.values():
        last = res.layer_at(None)
        assert z.default in (last.name, *last.aliases), (
            f"{z.name}: heatmap(None) shows {last.name} {last.aliases}, not {z.default}"
        )
        assert last.depth == res.depths[-1]
        assert res.raw(z.default).max() > 0


def test_every_layer_lies_on_a_grid_of_the_input(zoo):
    z, _, _, results = zoo
    res = results["gradcam"]
    off = [(i.name, i.shape, i.layout) for i in res.layers if tuple(i.shape[1:]) not in z.grids]
    assert not off, f"{z.name}: layers off the input's grids {sorted(z.grids)}: {off[:5]}"
    for info in res.layers:
        assert res.raw(info.name).shape == (len(TARGETS), *info.shape[1:])
    assert len(res.layers) >= 10


def test_every_depth_gives_one_heatmap_per_sample_at_the_input_size(zoo):
    z, _, _, results = zoo
    res = results["layercam"]
    for depth in res.depths:
        heat = res.heatmap(depth)
        assert heat.shape == (len(TARGETS), *z.size), (z.name, depth, heat.shape)
        assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


def test_the_models_are_left_as_they_were(zoo):
    z, model, _, _ = zoo
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_block_names_and_their_aliases_reach_the_same_map(zoo):
    z, _, _, results = zoo
    res = results["gradcam"]
    for info in res.layers:
        for alias in info.aliases:
            np.testing.assert_array_equal(res.raw(alias), res.raw(info.name))


def test_transformer_outputs_that_are_not_on_the_grid_are_left_out_and_said(zoo):
    z, _, _, results = zoo
    res = results["gradcam"]
    names = {i.name for i in res.layers} | {a for i in res.layers for a in i.aliases}
    for name, _shape, why in res.left_out:
        assert name not in names
        assert isinstance(why, str) and why
    # attention tensors (N, heads, T, d) and attention scores (N, heads, T, T) are never
    # layers, even where T x T happens to be a grid of the input (Swin-v2's last stage:
    # one window of 16 tokens on a 64x64 input, whose patch grid is 16x16)
    inside_attention = ("k_norm", "q_norm", "attn_drop", "attention.self.dropout")
    assert not [i.name for i in res.layers if any(k in i.name for k in inside_attention)]
