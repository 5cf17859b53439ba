"""The demo model: architecture, the shipped weights and their accuracy."""

import numpy as np
import pytest
import torch
from torch import nn

from samplelens_widget.demo import LABEL_NAMES, WEIGHTS_PATH, DemoNet, load_demo


def test_architecture():
    model = DemoNet(num_classes=len(LABEL_NAMES)).eval()
    assert sum(p.numel() for p in model.parameters()) < 500_000
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(m.inplace for m in relus)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())

    shapes, calls = {}, {}

    def record(name):
        def hook(module, args, out):
            shapes[name] = tuple(out.shape)
            calls[name] = calls.get(name, 0) + 1

        return hook

    for name in ("conv1", "layer1", "layer2", "layer3", "layer3.0.relu", "layer1.0.relu"):
        model.get_submodule(name).register_forward_hook(record(name))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, len(LABEL_NAMES))
    assert shapes["conv1"] == (2, 16, 64, 64)
    assert shapes["layer1"] == (2, 16, 64, 64)
    assert shapes["layer2"] == (2, 32, 32, 32)
    assert shapes["layer3"] == (2, 64, 16, 16)  # the deepest map is 16x16
    # the block's one ReLU module is called twice, as in torchvision's BasicBlock
    assert calls["layer1.0.relu"] == 2 and calls["layer3.0.relu"] == 2
    assert model.layer1[0].downsample is None
    assert model.layer2[0].downsample is not None and model.layer3[0].downsample is not None


def test_weights_file_is_small_and_safe_to_load():
    assert WEIGHTS_PATH.is_file()
    assert WEIGHTS_PATH.stat().st_size < 2 * 1024 * 1024
    state = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    expected = DemoNet(num_classes=len(LABEL_NAMES)).state_dict()
    assert set(state) == set(expected)
    for k, v in state.items():
        assert v.shape == expected[k].shape, k
        assert torch.isfinite(v.float()).all(), k


@pytest.fixture(scope="module")
def demo():
    return load_demo(n_train=64)


def test_load_demo_model_is_ready(demo):
    model, _, names = demo
    assert isinstance(model, DemoNet) and names == LABEL_NAMES
    assert not any(m.training for m in model.modules())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.fc.out_features == len(LABEL_NAMES)
    # the shipped weights, not a fresh initialisation and nothing trained on the way
    state = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k].to(v.dtype), rtol=0, atol=0)


def test_shipped_model_is_accurate_on_the_validation_split(demo):
    model, data, _ = demo
    val = data["val"]
    assert len(val) == 1000
    x = val.images[:500]
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (500, len(LABEL_NAMES)) and torch.isfinite(logits).all()
    acc = float((logits.argmax(1).numpy() == val.labels[:500]).mean())
    assert acc >= 0.95, acc
    # not a constant or colour guess: every class is predicted and mostly right
    pred = logits.argmax(1).numpy()
    for c in range(len(LABEL_NAMES)):
        assert (pred[val.labels[:500] == c] == c).mean() >= 0.8, LABEL_NAMES[c]


def test_items_feed_the_model(demo):
    model, data, _ = demo
    x, y = data["train"][0]
    with torch.no_grad():
        out = model(x.unsqueeze(0))
    assert out.shape == (1, len(LABEL_NAMES))
    assert isinstance(y, int)
    assert np.isfinite(out.numpy()).all()
