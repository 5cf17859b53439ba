"""Features of the population engine: layer names, extraction, the model left untouched.
Expectations are computed independently: hand-written forwards without hooks. The models and
data sets here (``Tiny``, ``Items``, ``image_data``) serve test_cache.py too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from samplelens_widget.population.features import check_layer, extract_features, layer_names
from samplelens_widget.population.items import split_item
from samplelens_widget.population.projection import project


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
    raised = r"the model raised on items 4..5 \(input \(2, 2, 8, 8\)"
    with pytest.raises(RuntimeError, match=raised):
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
        split_item({"pixels": x})
    with pytest.raises(TypeError, match="dataset item is int"):
        split_item(3)
