"""The maps equal the reference implementations (captum's LayerGradCam, torchcam's LayerCAM)
and a hand-computed case; Focus Layer CAM follows its formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import nn
from torchcam.methods import LayerCAM

from samplelens_widget import CamEngine
from tests.cam.archs import TinyDenseNet, TinyMobileNet, TinyResNet, TwoBranches, seeded

# Layers whose output no later in-place op rewrites, of modules called once: there the
# references, which hook the module's output itself, see the true activation.
CASES = [
    (TinyResNet, (3, 16, 16), ["conv1", "relu", "layer1.conv1", "layer1.conv2", "layer2.conv2",
                               "layer2.downsample.0"]),
    (TinyDenseNet, (3, 12, 12), ["stem", "layers.0.conv", "layers.2.conv", "layers.1.relu"]),
    (TinyMobileNet, (3, 16, 16), ["stem.1", "blocks.0.dw", "blocks.1.project", "blocks.1.bn3"]),
    (TwoBranches, (3, 10, 10), ["short", "long2", "merge"]),
]


def _module(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name.split("#")[0]]


@pytest.mark.parametrize("arch,shape,names", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_gradcam_equals_captum(arch, shape, names):
    model = seeded(arch)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    labels = [0, 1, 2 % 3]
    res = CamEngine(model).explain(x, label=labels, algorithm="gradcam")
    for name in names:
        ref = LayerGradCam(model, _module(model, name)).attribute(
            x, target=labels, relu_attributions=True
        )
        np.testing.assert_allclose(res.raw(name), ref[:, 0].detach().numpy(), rtol=1e-4,
                                   atol=1e-6, err_msg=name)


@pytest.mark.parametrize("arch,shape,names", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_layercam_equals_torchcam(arch, shape, names):
    model = seeded(arch)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(2))
    labels = [1, 0]
    res = CamEngine(model).explain(x, label=labels, algorithm="layercam")
    with LayerCAM(model, target_layer=list(names)) as extractor:
        scores = model(x)
        refs = extractor(class_idx=labels, scores=scores, normalized=False)
    for name, ref in zip(names, refs, strict=True):
        np.testing.assert_allclose(res.raw(name), ref.detach().numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)


def test_second_call_of_a_module_matches_a_hand_hook():
    """``act#2`` is the second call of ``act``; compare with a hook that keeps that call."""
    model = seeded(TwoBranches)
    x = torch.randn(2, 3, 10, 10, generator=torch.Generator().manual_seed(3))
    res = CamEngine(model).explain(x, label=1, algorithm="gradcam")
    outs = []
    handle = model.act.register_forward_hook(lambda m, a, o: outs.append(o))
    try:
        y = model(x)[:, 1].sum()
    finally:
        handle.remove()
    act = outs[1]
    (grad,) = torch.autograd.grad(y, act)
    expected = F.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1))
    np.testing.assert_allclose(res.raw("act#2"), expected.detach().numpy(), rtol=1e-5, atol=1e-7)


class LinearHead(nn.Module):
    """conv (identity weights) -> global mean -> linear: dy_c/dA_k = W[c, k] / (h*w)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(2)[:, :, None, None])
        self.fc = nn.Linear(2, w.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(w)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_hand_computed_gradcam_and_layercam():
    w = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    model = LinearHead(w).eval()
    a = torch.tensor([[[1.0, 2.0], [0.0, 4.0]], [[1.0, 0.0], [1.0, 0.0]]])  # (2, 2, 2)
    # class 0: grads are W[0]/4 = (0.25, -0.5) everywhere
    grad_cam = np.maximum(0.25 * a[0].numpy() - 0.5 * a[1].numpy(), 0)
    layer_cam = np.maximum(0.25 * a[0].numpy(), 0)  # ReLU drops the negative channel weight
    eng = CamEngine(model)
    np.testing.assert_allclose(eng.explain(a, label=0).raw("conv")[0], grad_cam, atol=1e-7)
    got = eng.explain(a, label=0, algorithm="layercam").raw("conv")[0]
    np.testing.assert_allclose(got, layer_cam, atol=1e-7)


def test_inplace_and_out_of_place_models_give_the_same_maps_everywhere():
    """In-place ReLUs and ``out += identity`` rewrite module outputs after their hooks ran; the
    engine must still see each module's true output (the out-of-place twin is the reference)."""
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    a = seeded(TinyResNet, inplace=True, seed=5)
    b = seeded(TinyResNet, inplace=False, seed=5)
    for algorithm in CamEngine.algorithms:
        ra = CamEngine(a).explain(x, label=[0, 3], algorithm=algorithm)
        rb = CamEngine(b).explain(x, label=[0, 3], algorithm=algorithm)
        assert [i.name for i in ra.layers] == [i.name for i in rb.layers]
        for info in ra.layers:
            np.testing.assert_allclose(ra.raw(info.name), rb.raw(info.name), rtol=1e-5,
                                       atol=1e-6, err_msg=f"{algorithm} {info.name}")


def test_focus_layercam_is_layercam_gated_by_the_deepest_map():
    model = seeded(TinyResNet)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    eng = CamEngine(model)
    lc = eng.explain(x, algorithm="layercam")
    fl = eng.explain(x, algorithm="focus_layercam")
    deepest = lc.layer_at(None)
    d = lc.raw(deepest.name)
    lo = d.reshape(2, -1).min(1)[:, None, None]
    hi = d.reshape(2, -1).max(1)[:, None, None]
    gate = torch.from_numpy((d - lo) / (hi - lo))
    for info in lc.layers:
        if info.depth == deepest.depth:
            np.testing.assert_allclose(fl.raw(info.name), lc.raw(info.name), rtol=1e-6)
            continue
        h, w = info.shape[1:]
        g = F.interpolate(gate[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        np.testing.assert_allclose(fl.raw(info.name), lc.raw(info.name) * g.numpy(),
                                   rtol=1e-5, atol=1e-7, err_msg=info.name)


def test_every_map_is_non_negative_and_finite():
    model = seeded(TinyMobileNet)
    x = torch.randn(2, 3, 16, 16)
    for algorithm in CamEngine.algorithms:
        res = CamEngine(model).explain(x, algorithm=algorithm)
        for info in res.layers:
            m = res.raw(info.name)
            assert m.dtype == np.float32 and m.shape == (2, *info.shape[1:])
            assert np.isfinite(m).all() and (m >= 0).all()
