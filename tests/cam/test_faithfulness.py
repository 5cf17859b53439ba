"""CamEngine.faithfulness: hand-computed curves, a slow per-step reference, properties, errors.

The reference libraries do not measure the same thing: pytorch-grad-cam's ``ROADMostRelevantFirst``
imputes removed pixels from their neighbours and thresholds the map at a percentile (ties all go
at once), its ``DropInConfidence`` is one perturbation, and captum has no deletion/insertion
curve. So the batched pass is checked against a straightforward loop written here (one image at
a time, numpy ranking, scipy's Sobel where scipy is installed), for every depth.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from samplelens_widget import CamEngine
from samplelens_widget.cam import Faithfulness
from samplelens_widget.cam.metrics import auc, perturbation_curves
from samplelens_widget.cam.targets import Contrast, Loss
from tests.cam.archs import TinyResNet, TwoInputs, seeded
from tests.cam.test_cam_engine import assert_untouched, mixed_mode_model, snapshot


class LinearPixels(nn.Module):
    """Two classes: logit 0 is 0, logit 1 is ``sum(w * conv(x)) - offset`` with a 1x1 conv
    of weight 1 (one channel): a known linear function of the pixels. LayerCAM at the conv is
    ``ReLU(w) * x``, each pixel's true contribution (for ``w, x >= 0`` and baseline 0)."""

    def __init__(self, w: torch.Tensor, offset: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.register_buffer("w", w.reshape(1, 1, *w.shape[-2:]).float())
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (self.conv(x) * self.w).flatten(1).sum(1) - self.offset
        return torch.stack([torch.zeros_like(s), s], dim=1)


def sigmoid(v):
    return 1 / (1 + np.exp(-np.asarray(v, dtype=np.float64)))


def trapezoid(y, x):
    y, x = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2)


X = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (1, 2, 2): one sample, one channel
# contributions w * x: 0.5, 2, 3, 1, so the order is (1,0), (0,1), (1,1), (0,0)
W = torch.tensor([[0.5, 1.0], [1.0, 0.25]])


def test_deletion_and_insertion_by_hand():
    f = CamEngine(LinearPixels(W)).faithfulness(X, target=1, algorithm="layercam", steps=4,
                                                baseline=0.0)
    assert isinstance(f, Faithfulness)
    assert f.depths == [1] and f.layers == ["conv"] and f.deletion.shape == (1,)
    np.testing.assert_allclose(f.fractions, [0, 0.25, 0.5, 0.75, 1])
    deletion = sigmoid([6.5, 3.5, 1.5, 0.5, 0.0])  # the largest contribution goes first
    insertion = sigmoid([0.0, 3.0, 5.0, 6.0, 6.5])
    np.testing.assert_allclose(f.curves["deletion"][0], deletion, rtol=1e-6)
    np.testing.assert_allclose(f.curves["insertion"][0], insertion, rtol=1e-6)
    # trapezoid by hand: 0.25 * (y0/2 + y1 + y2 + y3 + y4/2)
    by_hand = 0.25 * (deletion[0] / 2 + deletion[1:4].sum() + deletion[4] / 2)
    np.testing.assert_allclose(f.deletion, [by_hand], rtol=1e-6)
    np.testing.assert_allclose(f.insertion, [trapezoid(insertion, f.fractions)], rtol=1e-6)
    np.testing.assert_allclose(f.score, f.insertion - f.deletion)
    assert "softmax probability" in f.measure


def test_the_default_baseline_is_each_channels_mean_by_hand():
    # removed pixels take 2.5: the logit moves by w * (2.5 - x) per removed pixel
    f = CamEngine(LinearPixels(W)).faithfulness(X, target=1, algorithm="layercam", steps=4)
    np.testing.assert_allclose(f.curves["deletion"][0],
                               sigmoid([6.5, 6.0, 6.5, 6.125, 6.875]), rtol=1e-6)
    np.testing.assert_allclose(f.curves["insertion"][0],
                               sigmoid([6.875, 7.375, 6.875, 7.25, 6.5]), rtol=1e-6)
    # two steps of two pixels: 0, 2, 4 pixels removed
    f2 = CamEngine(LinearPixels(W)).faithfulness(X, target=1, algorithm="layercam", steps=2,
                                                 baseline=torch.zeros(1, 2, 2))
    np.testing.assert_allclose(f2.curves["deletion"][0], sigmoid([6.5, 1.5, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(f2.fractions, [0, 0.5, 1])


def test_ties_rank_by_position():
    # w constant: the map is x itself, with three equal pixels
    x = torch.tensor([[[2.0, 2.0], [1.0, 2.0]]])
    f = CamEngine(LinearPixels(torch.ones(2, 2))).faithfulness(
        x, target=1, algorithm="layercam", steps=4, baseline=0.0)
    # ties (the three 2s) go in reading order: (0,0), (0,1), (1,1), then (1,0)
    np.testing.assert_allclose(f.curves["deletion"][0], sigmoid([7, 5, 3, 1, 0]), rtol=1e-6)


def test_a_perfect_map_beats_random_and_edges():
    g = torch.Generator().manual_seed(3)
    w = torch.rand(12, 12, generator=g) ** 3 + 0.01
    x = torch.rand(4, 1, 12, 12, generator=g)
    offset = float((w * x).sum(dim=(1, 2, 3)).mean()) * 0.6
    f = CamEngine(LinearPixels(w, offset)).faithfulness(x, target=1, algorithm="layercam",
                                                        baseline=0.0)
    assert f.deletion.shape == (4, 1)
    for name in ("random", "edges"):
        assert f.baselines[name]["deletion"].shape == (4,)
        assert np.all(f.score[:, 0] > f.baseline_score(name) + 0.05), name
    assert f.beating() == [1]
    line = f.summary()
    assert "\n" not in line and "beats both baselines" in line and "1 of 1 depths: 1" in line


def test_the_endpoints_are_the_input_and_the_baseline():
    model = seeded(TinyResNet)
    x = torch.randn(3, 3, 16, 16)
    base = torch.tensor([0.1, -0.2, 0.3])
    f = CamEngine(model).faithfulness(x, baseline=base, steps=4)
    with torch.no_grad():
        p_in = torch.softmax(model(x), 1)
        p_base = torch.softmax(model(base.reshape(1, 3, 1, 1).expand(3, 3, 16, 16)), 1)
    cls = p_in.argmax(1)
    want_in = p_in[torch.arange(3), cls].numpy()
    want_base = p_base[torch.arange(3), cls].numpy()
    for d in range(len(f.depths)):
        np.testing.assert_allclose(f.curves["deletion"][:, d, 0], want_in, rtol=1e-5)
        np.testing.assert_allclose(f.curves["deletion"][:, d, -1], want_base, rtol=1e-5)
        np.testing.assert_allclose(f.curves["insertion"][:, d, 0], want_base, rtol=1e-5)
        np.testing.assert_allclose(f.curves["insertion"][:, d, -1], want_in, rtol=1e-5)


# ------------------------------------------------------------------ the slow reference
def sobel_magnitude(img: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W): per channel hypot of the Sobel derivatives, summed (replicate)."""
    try:
        from scipy import ndimage
    except ImportError:
        ndimage = None
    out = np.zeros(img.shape[1:])
    for ch in img.astype(np.float64):
        if ndimage is not None:
            gy, gx = ndimage.sobel(ch, axis=0, mode="nearest"), ndimage.sobel(ch, axis=1,
                                                                               mode="nearest")
        else:
            p = np.pad(ch, 1, mode="edge")
            gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2]
                                                               + p[2:, :-2])
            gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1]
                                                               + p[:-2, 2:])
        out += np.hypot(gx, gy)
    return out


def reference_curves(model, x, saliency, cls, steps, base):
    """Step by step: the class's softmax probability as the most salient pixels go (deletion)
    or come (insertion); the images of one curve go through the model together."""
    c, h, w = x.shape
    order = np.argsort(-saliency.reshape(-1), kind="stable")
    fractions, gone, come = [], [], []
    for i in range(steps + 1):
        k = int(math.floor(i * h * w / steps + 0.5))
        changed = np.zeros(h * w, dtype=bool)
        changed[order[:k]] = True
        changed = torch.from_numpy(changed.reshape(1, h, w))
        gone.append(torch.where(changed, base, x))
        come.append(torch.where(changed, x, base))
        fractions.append(k / (h * w))
    with torch.no_grad():
        dele = torch.softmax(model(torch.stack(gone)), 1)[:, cls].double().numpy()
        ins = torch.softmax(model(torch.stack(come)), 1)[:, cls].double().numpy()
    return trapezoid(dele, fractions), trapezoid(ins, fractions), dele, ins


@pytest.mark.parametrize("algorithm", ["gradcam", "focus_layercam"])
def test_matches_a_per_step_loop_at_every_depth(algorithm):
    model = seeded(TinyResNet)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    engine = CamEngine(model)
    f = engine.faithfulness(x, algorithm=algorithm, steps=5, batch_size=37)
    res = engine.explain(x, algorithm=algorithm)
    assert f.depths == res.depths
    for j, d in enumerate(res.depths):
        maps = res.heatmap(d)
        for i in range(2):
            base = x[i].mean(dim=(1, 2), keepdim=True).expand_as(x[i])
            de, ins, dc, ic = reference_curves(model, x[i], maps[i], int(res.targets[i]), 5,
                                               base)
            np.testing.assert_allclose(f.curves["deletion"][i, j], dc, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(f.curves["insertion"][i, j], ic, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(f.deletion[i, j], de, rtol=1e-5)
            np.testing.assert_allclose(f.insertion[i, j], ins, rtol=1e-5)
    for i in range(2):  # the edge map, from an independent Sobel
        base = x[i].mean(dim=(1, 2), keepdim=True).expand_as(x[i])
        edges = sobel_magnitude(x[i].numpy())
        de, ins, _, _ = reference_curves(model, x[i], edges, int(res.targets[i]), 5, base)
        np.testing.assert_allclose(f.baselines["edges"]["deletion"][i], de, rtol=1e-5)
        np.testing.assert_allclose(f.baselines["edges"]["insertion"][i], ins, rtol=1e-5)


def test_agrees_with_metrics_perturbation_curves():
    # metrics.py's older one-map-at-a-time code, with its scalar baseline and softmax
    model = seeded(TinyResNet)
    x = torch.randn(2, 3, 16, 16)
    engine = CamEngine(model)
    f = engine.faithfulness(x, steps=4, baseline=0.0)
    res = engine.explain(x)
    for j, d in enumerate(res.depths):
        for mode in ("deletion", "insertion"):
            want = perturbation_curves(model, x, res.heatmap(d), res.targets, mode, steps=4)
            np.testing.assert_allclose(f.curves[mode][:, j], want, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(getattr(f, mode)[:, j], auc(want), rtol=1e-5)


def test_batching_and_the_random_draws():
    model = seeded(TinyResNet)
    x = torch.randn(2, 3, 16, 16)
    engine = CamEngine(model)
    a = engine.faithfulness(x, depths=[1, 5], steps=3, batch_size=1)
    b = engine.faithfulness(x, depths=[1, 5], steps=3, batch_size=1000)
    np.testing.assert_allclose(a.deletion, b.deletion, rtol=1e-5)
    np.testing.assert_allclose(a.baselines["random"]["insertion"],
                               b.baselines["random"]["insertion"], rtol=1e-5)
    c = engine.faithfulness(x, depths=[1, 5], steps=3, seed=1)
    assert not np.allclose(a.baselines["random"]["deletion"], c.baselines["random"]["deletion"])
    np.testing.assert_allclose(a.deletion, c.deletion, rtol=1e-6)  # the seed: random maps only


class CountingRows(nn.Module):
    """A conv, a ReLU module and a weighted sum: for positive inputs the ReLU's map is the
    conv's (two depths, one ranking). Counts the rows of the perturbation passes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.relu = nn.ReLU()
        self.register_buffer("w", torch.linspace(0.1, 1.0, 36).reshape(1, 1, 6, 6))
        self.rows = 0

    def forward(self, x):
        if not torch.is_grad_enabled():  # the perturbation passes, not explain's
            self.rows += x.shape[0]
        s = (self.relu(self.conv(x)) * self.w).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(s), s - 5], dim=1)


def test_endpoints_shared_and_equal_rankings_run_once():
    model = CountingRows()
    x = torch.rand(2, 1, 6, 6) + 0.1
    steps, draws = 4, 3
    engine = CamEngine(model)
    res = engine.explain(x, target=1)
    assert res.depths == [1, 2]
    np.testing.assert_array_equal(res.heatmap(1), res.heatmap(2))
    f = engine.faithfulness(x, target=1, steps=steps, draws=draws)
    # the distinct rankings of each sample, counted here: depth maps and edges, + the draws
    distinct = 0
    for i in range(2):
        maps = [res.heatmap(d)[i] for d in res.depths] + [sobel_magnitude(x[i].numpy())]
        distinct += len({np.argsort(-m.reshape(-1), kind="stable").tobytes()
                         for m in maps}) + draws
    assert distinct == 2 * (1 + 1 + draws)
    # each sample's input and baseline once, then the inner steps of each distinct ranking
    assert model.rows == 2 * 2 + distinct * 2 * (steps - 1) == f.images
    assert f.deletion.shape == (2, 2)
    np.testing.assert_array_equal(f.deletion[:, 0], f.deletion[:, 1])


def test_one_sample_shapes_and_depth_selection():
    model = seeded(TinyResNet)
    x = torch.randn(3, 16, 16)
    f = CamEngine(model).faithfulness(x, depths=[3, 1, 3], steps=3)
    assert f.depths == [3, 1] and f.deletion.shape == (2,) and f.insertion.shape == (2,)
    assert f.curves["deletion"].shape == (2, 4)
    assert f.baselines["random"]["deletion"].shape == ()
    g = CamEngine(model).faithfulness(x, depths=1, steps=3)
    assert g.depths == [1]
    np.testing.assert_allclose(g.deletion[0], f.deletion[1])


def test_the_model_is_left_as_it_was():
    model = mixed_mode_model()
    before = snapshot(model)
    CamEngine(model).faithfulness(torch.randn(2, 3, 16, 16), steps=3)
    assert_untouched(model, before)


def test_targets_and_what_is_measured():
    model = seeded(TinyResNet)
    x = torch.randn(2, 3, 16, 16)
    engine = CamEngine(model)
    with torch.no_grad():
        logits = model(x)
    p = torch.softmax(logits, 1)
    labels = [1, 3]
    f = engine.faithfulness(x, target=Loss(labels), depths=[1], steps=2)
    assert "1 - probability of the true label" in f.measure
    np.testing.assert_allclose(f.curves["deletion"][:, 0, 0],
                               (1 - p[[0, 1], labels]).numpy(), rtol=1e-5)
    f = engine.faithfulness(x, target=Contrast(2, 4), depths=[1], steps=2)
    np.testing.assert_allclose(f.curves["deletion"][:, 0, 0],
                               (p[:, 2] / (p[:, 2] + p[:, 4])).numpy(), rtol=1e-5)
    f = engine.faithfulness(x, target=lambda out: out[:, 4] * 2, depths=[1], steps=2)
    assert "own score" in f.measure
    np.testing.assert_allclose(f.curves["deletion"][:, 0, 0], (2 * logits[:, 4]).numpy(),
                               rtol=1e-5)
    f = engine.faithfulness(x, target=[0, 4], depths=[1], steps=2)
    np.testing.assert_allclose(f.curves["insertion"][:, 0, -1], p[[0, 1], [0, 4]].numpy(),
                               rtol=1e-5)
    multi = CamEngine(model, task="multilabel").faithfulness(x, target=3, depths=[1], steps=2)
    assert "sigmoid" in multi.measure
    np.testing.assert_allclose(multi.curves["deletion"][:, 0, 0],
                               torch.sigmoid(logits[:, 3]).numpy(), rtol=1e-5)


def test_predicted_class_is_fixed_from_the_input():
    # deleting everything changes the prediction; the curve still follows the input's class
    model = seeded(TinyResNet)
    x = torch.randn(1, 3, 16, 16) * 3
    f = CamEngine(model).faithfulness(x, depths=[1], steps=2, baseline=0.0)
    with torch.no_grad():
        cls = int(model(x).argmax())
        p0 = float(torch.softmax(model(torch.zeros_like(x)), 1)[0, cls])
    np.testing.assert_allclose(f.curves["deletion"][0, 0, -1], p0, rtol=1e-5)


def test_a_second_input_goes_along():
    model = seeded(TwoInputs)
    rgb, aux = torch.randn(2, 3, 8, 8), torch.randn(2, 1, 8, 8)
    f = CamEngine(model).faithfulness((rgb, aux), steps=4, depths=[1])
    with torch.no_grad():
        p = torch.softmax(model(rgb, aux), 1).max(1).values.numpy()
    np.testing.assert_allclose(f.curves["deletion"][:, 0, 0], p, rtol=1e-5)
    g = CamEngine(model).faithfulness((rgb, aux), connection=1, steps=4)
    assert g.deletion.shape[0] == 2


def test_bad_arguments_say_what_is_allowed():
    model = seeded(TinyResNet)
    engine = CamEngine(model)
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"steps: 1 is out of range; allowed: 2\.\.16"):
        engine.faithfulness(x, steps=1)
    with pytest.raises(ValueError, match=r"steps: 17 is out of range; allowed: 2\.\.16"):
        engine.faithfulness(x, steps=17)
    with pytest.raises(TypeError, match="steps: expected an int"):
        engine.faithfulness(x, steps=2.5)
    top = engine.explain(x).depths[-1]
    with pytest.raises(ValueError, match=rf"depths: 99 is not a depth of this model; its "
                                         rf"depths are 1\.\.{top}"):
        engine.faithfulness(x, depths=[1, 99], steps=4)
    with pytest.raises(TypeError, match="depths: expected ints"):
        engine.faithfulness(x, depths=["deep"], steps=4)
    with pytest.raises(ValueError, match=r"baseline: shape \(4,\) is not allowed; allowed: a "
                                         r"number, \(C,\) = \(3,\), \(C, H, W\) = \(3, 4, 4\) or "
                                         r"\(N, C, H, W\) = \(2, 3, 4, 4\)"):
        engine.faithfulness(x, baseline=torch.zeros(4), steps=4)
    with pytest.raises(ValueError, match=r"baseline: shape \(3, 4, 5\)"):
        engine.faithfulness(x, baseline=np.zeros((3, 4, 5)), steps=4)
    with pytest.raises(TypeError, match="baseline: expected None"):
        engine.faithfulness(x, baseline="black", steps=4)
    with pytest.raises(ValueError, match="baseline: has NaN"):
        engine.faithfulness(x, baseline=float("nan"), steps=4)
    with pytest.raises(ValueError, match="batch_size: 0 is out of range"):
        engine.faithfulness(x, batch_size=0, steps=4)
    with pytest.raises(ValueError, match="algorithm: 'nope' is unknown"):
        engine.faithfulness(x, algorithm="nope", steps=4)
    # baselines of every allowed shape agree
    ref = engine.faithfulness(x, baseline=0.5, depths=[1], steps=2).deletion
    for b in (torch.full((3,), 0.5), np.full((3, 4, 4), 0.5), torch.full((2, 3, 4, 4), 0.5)):
        np.testing.assert_allclose(engine.faithfulness(x, baseline=b, depths=[1],
                                                       steps=2).deletion, ref)


def test_steps_where_maps_change_the_same_pixels_share_their_images():
    """A step's deletion and insertion images depend only on the sample and the pixels changed:
    maps (depths, baselines) that agree on their top pixels at a step share that step's images.
    The count is checked against the distinct pixel sets found here with numpy, and against the
    rows the model saw."""
    model = seeded(TinyResNet)
    x = torch.randn(2, 3, 16, 16)
    steps, draws = 5, 2
    engine = CamEngine(model)
    res = engine.explain(x, algorithm="layercam")
    rows = []
    hook = model.register_forward_pre_hook(
        lambda _m, args: rows.append(args[0].shape[0]) if not torch.is_grad_enabled() else None
    )
    try:
        f = engine.faithfulness(x, algorithm="layercam", steps=steps, draws=draws)
    finally:
        hook.remove()
    pixels = 16 * 16
    counts = [math.floor(i * pixels / steps + 0.5) for i in range(steps + 1)]
    gen = torch.Generator().manual_seed(0)  # the documented seeded draws (seed=0)
    rand = [torch.rand((2, 16, 16), generator=gen) for _ in range(draws)]
    sets = set()
    per_map = 0
    for i in range(2):
        maps = [res.heatmap(d)[i] for d in res.depths]
        maps += [r[i].numpy() for r in rand] + [sobel_magnitude(x[i].numpy())]
        per_map += len(maps)
        for m in maps:
            order = np.argsort(-m.reshape(-1), kind="stable")
            for c in counts[1:-1]:
                sets.add((i, c, np.sort(order[:c]).tobytes()))
    assert f.images == 2 * 2 + 2 * len(sets) == sum(rows)
    assert len(sets) < per_map * (steps - 1)  # some steps were shared
    # (the values stay each map's own: test_matches_a_per_step_loop_at_every_depth)


def test_bfloat16_scores_stay_close_to_float32_on_a_trained_model():
    """precision="bfloat16" runs the perturbed images under autocast (channels-last): the demo's
    trained model scores every depth within 0.02 of float32, from the same images, and is left
    as it was (weights, memory format, modes, no hooks)."""
    from samplelens_widget.demo import load_demo

    model, data, _ = load_demo()
    x = data["val"].images[:2]
    before = snapshot(model)
    engine = CamEngine(model)
    exact = engine.faithfulness(x, steps=8)
    fast = engine.faithfulness(x, steps=8, precision="bfloat16")
    assert fast.images == exact.images and fast.depths == exact.depths
    assert np.abs(fast.score - exact.score).max() <= 0.02
    for name in ("random", "edges"):
        assert np.abs(fast.baseline_score(name) - exact.baseline_score(name)).max() <= 0.02
    assert (fast.score != exact.score).any()  # it did run in another precision
    assert_untouched(model, before)
    assert all(p.is_contiguous() for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


class FlatView(nn.Module):
    """Reads its input with .view, which a channels-last tensor refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(3 * 8 * 8, 3)

    def forward(self, x):
        flat = x.view(x.shape[0], -1)
        return self.head(flat) + self.conv(x).mean(dim=(1, 2, 3))[:, None]


def test_bfloat16_falls_back_to_contiguous_images_for_a_model_that_needs_them():
    model = seeded(FlatView)
    x = torch.randn(2, 3, 8, 8)
    engine = CamEngine(model)
    exact = engine.faithfulness(x, steps=4)
    fast = engine.faithfulness(x, steps=4, precision="bfloat16")
    assert np.abs(fast.score - exact.score).max() <= 0.02


@pytest.mark.parametrize("bad", ["fp16", "float64", None, 16, "BFLOAT16"])
def test_an_unknown_precision_is_refused(bad):
    model = seeded(TinyResNet)
    allowed = r"precision: .* is not allowed; allowed: \['float32', 'bfloat16'\]"
    with pytest.raises(ValueError, match=allowed):
        CamEngine(model).faithfulness(torch.randn(3, 16, 16), steps=3, precision=bad)
