"""Features, PCA, nearest neighbours and payloads of the population engine (UMAP itself is in
test_embed_umap.py, marked slow). Expectations are computed independently: hand-written
forwards without hooks, numpy SVD, numpy brute-force cosine similarity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from samplelens_widget.engine import embed
from samplelens_widget.engine.embed import (
    MIN_UMAP_SAMPLES,
    PCA_EXACT_DIM,
    SimilarityIndex,
    check_layer,
    encode_colors,
    extract_features,
    layer_names,
    nearest,
    pack_coords,
    pca_2d,
    project,
)
from samplelens_widget.engine.items import split_item


class Tiny(nn.Module):
    """conv1 -> in-place ReLU (changes conv1's output) -> conv2 -> BN -> ReLU (2nd call) ->
    pool -> dropout -> fc. The deepest spatial layer is ``relu#2``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6, 3)
        with torch.no_grad():  # running statistics that make eval and train mode differ
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.bn(self.conv2(x)))
        return self.fc(self.drop(self.pool(x).flatten(1)))


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.meta = nn.Linear(4, 5)
        self.fc = nn.Linear(5, 2)

    def forward(self, image, meta):
        return self.fc(self.conv(image).mean((2, 3)) + self.meta(meta))


class Items(torch.utils.data.Dataset):
    def __init__(self, items) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def images(n: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def image_data(n: int = 10, seed: int = 0) -> Items:
    x = images(n, seed)
    return Items((x[i], i % 3) for i in range(n))


def make_tiny(seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    return Tiny()


def hand_forward(m: Tiny, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The eval-mode forward written out, without hooks: what each layer's feature must be."""
    with torch.no_grad():
        c1 = torch.nn.functional.conv2d(x, m.conv1.weight, m.conv1.bias, padding=1)
        r1 = c1.clamp_min(0)
        c2 = torch.nn.functional.conv2d(r1, m.conv2.weight, m.conv2.bias, stride=2, padding=1)
        bn = m.bn
        b = (c2 - bn.running_mean[None, :, None, None]) / torch.sqrt(
            bn.running_var[None, :, None, None] + bn.eps
        ) * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
        r2 = b.clamp_min(0)
        pooled = r2.mean((2, 3))
        logits = pooled @ m.fc.weight.T + m.fc.bias
    return {
        "conv1": c1.mean((2, 3)),  # before the in-place ReLU changed it
        "relu": r1.mean((2, 3)),
        "conv2": c2.mean((2, 3)),
        "relu#2": pooled,
        "fc": logits,
    }


def snapshot(model: nn.Module):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [(name, m.training) for name, m in model.named_modules()],
        [p.requires_grad for p in model.parameters()],
    )


def assert_untouched(model: nn.Module, before) -> None:
    state, modes, flags = before
    now = model.state_dict()
    assert now.keys() == state.keys()
    for k in state:
        assert torch.equal(now[k], state[k]), k
    assert [(name, m.training) for name, m in model.named_modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


# ------------------------------------------------------------------------------ features
def test_default_layer_is_the_deepest_spatial_one_and_matches_a_hand_forward():
    model = make_tiny()
    model.train()  # extraction runs in eval mode and restores this
    model.relu.training = False  # a module with its own flag keeps it
    before = snapshot(model)
    data = image_data(10)
    calls = []
    feats, layer = extract_features(
        model, data, batch_size=4, progress=lambda d, t: calls.append((d, t))
    )
    assert layer == "relu#2"
    assert feats.dtype == np.float32 and feats.shape == (10, 6)
    expected = hand_forward(model, images(10))["relu#2"].numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)
    assert calls == [(0, 10), (4, 10), (8, 10), (10, 10)]
    assert_untouched(model, before)


@pytest.mark.parametrize("layer", ["conv1", "relu", "conv2", "relu#2", "fc"])
def test_named_layers_match_a_hand_forward(layer):
    model = make_tiny().eval()
    feats, name = extract_features(model, image_data(7), layer, batch_size=3)
    assert name == layer
    expected = hand_forward(model, images(7))[layer].numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)


def test_batch_size_does_not_change_the_features():
    model = make_tiny()
    a, _ = extract_features(model, image_data(9), batch_size=1)
    b, _ = extract_features(model, image_data(9), batch_size=64)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_dict_items_and_two_inputs():
    torch.manual_seed(0)
    model = TwoInputs()
    x = images(6)
    meta = torch.randn(6, 4)
    data = Items({"inputs": (x[i], meta[i]), "label": 0} for i in range(6))
    feats, name = extract_features(model, data, "meta")
    assert name == "meta"
    with torch.no_grad():
        np.testing.assert_allclose(feats, model.meta(meta).numpy(), rtol=1e-5, atol=1e-6)
    # default layer: the only spatial layer of input 0
    feats, name = extract_features(model, data)
    assert name == "conv"
    with torch.no_grad():
        expected = model.conv(x).mean((2, 3)).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layer, match",
    [
        ("nope", r"layer: 'nope' does not exist; allowed: .*'conv1'"),
        ("relu#3", r"layer: 'relu#3' is never computed: module 'relu' is called 2 time\(s\)"),
        ("relu#x", r"layer: 'relu#x' has a bad call suffix"),
        ("pool", r"layer: 'pool' .*"),  # (N, 6, 1, 1): pooled, allowed; checked below
    ],
)
def test_bad_layers_are_named_and_leave_the_model_untouched(layer, match):
    model = make_tiny().train()
    before = snapshot(model)
    if layer == "pool":
        feats, _ = extract_features(model, image_data(3), layer)
        assert feats.shape == (3, 6)
    else:
        with pytest.raises(ValueError, match=match):
            extract_features(model, image_data(3), layer)
    assert_untouched(model, before)


def test_bad_layer_type_and_no_spatial_layer():
    with pytest.raises(TypeError, match="layer: expected a str or None, got int 3"):
        extract_features(make_tiny(), image_data(3), 3)
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    data = Items((torch.randn(4), 0) for _ in range(5))
    with pytest.raises(ValueError, match=r"layer: None asks for the deepest spatial layer.*'0'"):
        extract_features(mlp, data)
    feats, name = extract_features(mlp, data, "1")  # a 2-D layer of an MLP is fine
    assert name == "1" and feats.shape == (5, 8)


def test_a_model_error_mid_way_leaves_the_model_untouched():
    model = make_tiny().train()
    before = snapshot(model)
    bad = [(torch.randn(2, 8, 8), 0)] * 2  # wrong number of channels
    items = [(x, 0) for x in images(4)] + bad
    with pytest.raises(ValueError, match=r"dataset: the model rejected items 4..5"):
        extract_features(model, Items(items), batch_size=4)
    assert_untouched(model, before)
    with pytest.raises(ValueError, match=r"dataset: items 0..4 cannot be batched"):
        extract_features(model, Items(items[3:] + items[:3]), batch_size=5)
    assert_untouched(model, before)


def test_empty_or_bad_datasets_and_batch_size():
    with pytest.raises(ValueError, match="dataset: it is empty"):
        extract_features(make_tiny(), Items([]))
    with pytest.raises(TypeError, match="dataset: expected a map-style data set"):
        extract_features(make_tiny(), iter([]))
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1, got 0"):
        extract_features(make_tiny(), image_data(2), batch_size=0)
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        extract_features("model", image_data(2))


def test_check_layer_names_the_callers_argument():
    model = make_tiny()
    assert check_layer(model, None) is None
    assert check_layer(model, "relu#1") == "relu"
    assert check_layer(model, "relu#2") == "relu#2"
    with pytest.raises(ValueError, match=r"embed_layer: 'conv9' does not exist; allowed: None"):
        check_layer(model, "conv9", argname="embed_layer")
    with pytest.raises(TypeError, match=r"embed_layer: expected a str or None, got list"):
        check_layer(model, ["conv1"], argname="embed_layer")


def test_layer_names_are_leaf_paths():
    assert layer_names(make_tiny()) == ["conv1", "relu", "conv2", "bn", "pool", "drop", "fc"]


def test_a_single_sample_slice():
    feats, _ = extract_features(make_tiny(), image_data(1))
    assert feats.shape == (1, 6)
    p = project(feats)
    assert p.method == "none" and p.coords.shape == (1, 2) and p.note
    assert np.all(p.coords == 0)


def test_split_item_shapes():
    x = torch.zeros(3, 2, 2)
    assert split_item((x, 1))[1] == 1
    assert len(split_item(((x, x), torch.tensor(2)))[0]) == 2
    assert split_item({"input": x})[1] is None
    with pytest.raises(TypeError, match="dataset item is a dict with keys"):
        split_item({"image": x})
    with pytest.raises(TypeError, match="dataset item is int"):
        split_item(3)


# ------------------------------------------------------------------------------------- PCA
def test_pca_matches_numpy_svd_up_to_sign():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((60, 5)) * [5.0, 3.0, 1.0, 0.5, 0.1]) @ np.linalg.qr(
        rng.standard_normal((5, 5))
    )[0] + [10.0, -3.0, 2.0, 0.0, 1.0]
    x = x.astype(np.float32)
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    expected = u[:, :2] * s[:2]
    got = pca_2d(x)
    assert got.dtype == np.float32 and got.shape == (60, 2)
    for j in range(2):
        sign = np.sign(got[:, j] @ expected[:, j])
        np.testing.assert_allclose(got[:, j], sign * expected[:, j], rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(pca_2d(x), got)  # deterministic
    # sign convention: the data mirrored gives the picture mirrored, not a random flip
    np.testing.assert_allclose(pca_2d(-x), -got, rtol=1e-4, atol=1e-3)


def test_pca_on_a_subsample_agrees_with_the_exact_one():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3000, 8)) * [6.0, 3.0, 1, 1, 1, 1, 1, 1]).astype(np.float32)
    exact = pca_2d(x)
    sub = pca_2d(x, max_fit_samples=500)
    for j in range(2):
        assert abs(np.corrcoef(exact[:, j], sub[:, j])[0, 1]) > 0.99


def test_pca_of_many_features_agrees_with_numpy_svd():
    """More than PCA_EXACT_DIM features and rows: the randomized path."""
    rng = np.random.default_rng(3)
    d = PCA_EXACT_DIM + 44
    spectrum = 10.0 * 0.8 ** np.arange(d)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    x = ((rng.standard_normal((1500, d)) * spectrum) @ basis + 1.0).astype(np.float32)
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    got = pca_2d(x)
    for j in range(2):
        expected = u[:, j] * s[j]
        sign = np.sign(got[:, j] @ expected)
        np.testing.assert_allclose(got[:, j], sign * expected, rtol=1e-3, atol=1e-2)
    np.testing.assert_array_equal(pca_2d(x), got)


def test_pca_degenerate_cases():
    assert np.all(pca_2d(np.ones((1, 4), np.float32)) == 0)
    two = pca_2d(np.array([[0.0, 0.0], [2.0, 0.0]], np.float32))
    np.testing.assert_allclose(np.abs(two[:, 0]), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(two[:, 1], 0.0, atol=1e-6)
    const = pca_2d(np.full((5, 3), 7.0, np.float32))
    assert np.all(np.isfinite(const)) and np.allclose(const, 0.0)
    one_feature = pca_2d(np.arange(6, dtype=np.float32)[:, None])
    np.testing.assert_allclose(one_feature[:, 1], 0.0)
    np.testing.assert_allclose(np.abs(one_feature[:, 0]), np.abs(np.arange(6) - 2.5), atol=1e-5)
    # more features than samples: the Gram path
    rng = np.random.default_rng(2)
    wide = rng.standard_normal((6, 40)).astype(np.float32)
    xc = wide - wide.mean(0)
    u, s, _ = np.linalg.svd(xc.astype(np.float64), full_matrices=False)
    got = pca_2d(wide)
    for j in range(2):
        assert abs(np.corrcoef(got[:, j], u[:, j] * s[j])[0, 1]) > 0.9999


def test_small_slices_fall_back_to_pca_with_a_note():
    x = np.random.default_rng(0).standard_normal((MIN_UMAP_SAMPLES - 1, 4)).astype(np.float32)
    p = project(x, "umap")
    assert p.method == "pca" and "too few for UMAP" in p.note
    np.testing.assert_array_equal(p.coords, pca_2d(x))
    assert project(x, "pca").note is None
    with pytest.raises(ValueError, match="method: 'tsne' is unknown; allowed: 'umap', 'pca'"):
        project(x, "tsne")
    with pytest.raises(ValueError, match=r"features: expected a floating \(N, D\) array"):
        project(np.zeros(5, np.float32))


def test_a_failing_umap_falls_back_to_pca_with_a_note(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(embed, "umap_2d", broken)
    x = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    p = project(x)
    assert p.method == "pca" and p.note == "UMAP failed (RuntimeError: boom): showing PCA"
    got = []
    job = embed.project_in_background(x, got.append)
    assert job.wait(60) is got[0] and got[0].method == "pca" and job.error is None


def test_non_finite_features_are_named():
    x = np.ones((5, 3), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"features: 1 row\(s\) hold NaN .*first: sample 3"):
        pca_2d(x)
    with pytest.raises(ValueError, match="features: 1 row"):
        SimilarityIndex(x)


# ------------------------------------------------------------------------------ similarity
def numpy_cosine(x: np.ndarray) -> np.ndarray:
    xn = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    return xn @ xn.T


def test_nearest_equals_a_numpy_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    sims = numpy_cosine(x)
    q = [3, 17, 150]
    ids, got = nearest(x, q, 7)
    assert ids.dtype == np.int64 and got.dtype == np.float32 and ids.shape == (3, 7)
    for row, i in enumerate(q):
        s = sims[i].copy()
        s[i] = -np.inf
        order = np.argsort(-s)[:7]
        np.testing.assert_array_equal(ids[row], order)
        np.testing.assert_allclose(got[row], s[order], atol=1e-5)
    ids, got = nearest(torch.from_numpy(x), [5], 3, exclude_self=False)
    assert ids[0, 0] == 5 and got[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_similar_is_the_union_ranked_by_best_similarity():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 8)).astype(np.float32)
    sims = numpy_cosine(x)
    q = [4, 9, 4]
    best = sims[[4, 9]].max(axis=0)
    best[[4, 9]] = -np.inf
    order = np.argsort(-best)[:10]
    got = SimilarityIndex(x).similar(q, 10)
    assert [i for i, _ in got] == order.tolist()
    np.testing.assert_allclose([s for _, s in got], best[order], atol=1e-5)
    assert all(isinstance(i, int) and isinstance(s, float) for i, s in got)


def test_k_and_ids_are_checked():
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    index = SimilarityIndex(x)
    with pytest.raises(ValueError, match=r"k: 10 is out of range; the slice has 10 .*1\.\.9"):
        index.nearest([0], 10)
    assert index.nearest([0], 10, exclude_self=False)[0].shape == (1, 10)
    with pytest.raises(ValueError, match=r"k: 0 is out of range.*allowed: 1\.\.9"):
        index.nearest([0], 0)
    with pytest.raises(ValueError, match=r"k: 9 is out of range.*2 of them are the query.*1\.\.8"):
        index.similar([0, 1], 9)
    with pytest.raises(TypeError, match="k: expected an int, got float 2.5"):
        index.similar([0], 2.5)
    with pytest.raises(TypeError, match="k: expected an int, got bool"):
        index.similar([0], True)
    with pytest.raises(ValueError, match=r"ids: 10 is out of range; .* allowed: 0\.\.9"):
        index.similar([10], 2)
    with pytest.raises(ValueError, match="ids: expected a non-empty list"):
        index.similar([], 2)
    with pytest.raises(TypeError, match="ids: expected int sample ids, got '3'"):
        index.similar(["3"], 2)
    one = SimilarityIndex(x[:1])
    with pytest.raises(ValueError, match=r"k: 1 is out of range; the slice has 1 .*allowed: none"):
        one.similar([0], 1)


# -------------------------------------------------------------------------------- payloads
def test_pack_coords_is_float32_little_endian_and_small():
    coords = np.random.default_rng(0).standard_normal((100_000, 2))
    data = pack_coords(coords)
    assert len(data) == 800_000 <= 2 * 1024 * 1024
    np.testing.assert_array_equal(
        np.frombuffer(data, "<f4").reshape(-1, 2), coords.astype(np.float32)
    )
    with pytest.raises(ValueError, match=r"coords: expected an \(N, 2\) array"):
        pack_coords(np.zeros((3, 3)))


def test_encode_colors():
    c = encode_colors(["b", "a", "b"], 3, "metadata['kind']")
    assert c["kind"] == "category" and c["categories"] == ["a", "b"] and c["dtype"] == "uint8"
    assert np.frombuffer(c["data"], np.uint8).tolist() == [1, 0, 1]
    c = encode_colors(np.array([3, 1, 3, 7]), 4)
    assert c["categories"] == [1, 3, 7]
    v = encode_colors([0.5, float("nan"), 2.0], 3)
    assert v["kind"] == "value" and v["min"] == 0.5 and v["max"] == 2.0
    assert np.isnan(np.frombuffer(v["data"], "<f4")[1])
    many = encode_colors(np.arange(1000), 1000)
    assert many["kind"] == "value"
    with pytest.raises(ValueError, match=r"metadata\['x'\]: has 2 values; the slice has 3"):
        encode_colors([1, 2], 3, "metadata['x']")
    with pytest.raises(TypeError, match=r"metadata: values of type\(s\) \['dict'\]"):
        encode_colors([{}, {}], 2, "metadata")
    with pytest.raises(ValueError, match="metadata: expected one value per sample"):
        encode_colors(np.zeros((2, 2)), 2, "metadata")
