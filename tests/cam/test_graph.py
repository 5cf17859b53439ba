"""Layers and depths read off the autograd graph."""

from __future__ import annotations

import pytest
import torch

from samplelens_widget import CamEngine
from tests.cam.archs import (
    IdentityShortcuts,
    ThreeConvs,
    TinyDenseNet,
    TinyResNet,
    TwoBranches,
    TwoInputs,
    seeded,
)


def depths(model, inputs, connection=0) -> dict[str, int]:
    """Depth by every name a layer goes by (its own and its aliases)."""
    layers = CamEngine(model).layers(inputs, connection=connection)
    return {name: i.depth for i in layers for name in (i.name, *i.aliases)}


def test_sequential_of_three_convs_has_depths_1_2_3():
    layers = CamEngine(seeded(ThreeConvs)).layers(torch.randn(3, 9, 9))
    assert [(i.name, i.depth) for i in layers] == [
        ("features.0", 1), ("features.1", 2), ("features", 3),
    ]
    # the Sequential returns its last conv's very tensor: one layer, named by the block
    assert layers[-1].aliases == ("features.2",)


def test_merge_sits_one_deeper_than_the_deeper_branch_and_reused_module_is_named_per_call():
    d = depths(seeded(TwoBranches), torch.randn(1, 3, 8, 8))
    assert d == {"short": 1, "long1": 1, "long2": 2, "act": 3, "merge": 4, "act#2": 5}


def test_layers_are_sorted_by_depth_with_shapes_per_sample():
    layers = CamEngine(seeded(TwoBranches)).layers(torch.randn(2, 3, 8, 8))
    assert [i.depth for i in layers] == sorted(i.depth for i in layers)
    assert all(i.shape == (4, 8, 8) for i in layers)
    # ties keep execution order: short runs before long1
    assert [i.name for i in layers[:2]] == ["short", "long1"]


def test_two_inputs_each_connection_sees_only_its_own_layers():
    model = seeded(TwoInputs)
    x = (torch.randn(2, 3, 8, 8), torch.randn(2, 1, 8, 8))
    assert depths(model, x, connection=0) == {"rgb1": 1, "rgb2": 2, "fuse": 3}
    assert depths(model, x, connection=1) == {"aux1": 1, "fuse": 2}


def test_resnet_residual_depths_follow_the_longest_path():
    d = depths(seeded(TinyResNet), torch.randn(1, 3, 16, 16))
    # stem: conv1 1, bn1 2, relu 3; block 1: conv1 4, bn1 5, relu 6, conv2 7, bn2 8, relu#2 9
    assert [d[n] for n in ["conv1", "bn1", "relu"]] == [1, 2, 3]
    assert d["layer1.relu"] == 6 and d["layer1.relu#2"] == 9
    # the downsample shortcut (2 layers) is shorter than the main path (5 layers)
    assert d["layer2.downsample.0"] == 10 and d["layer2.downsample.1"] == 11
    assert d["layer2.relu#2"] == 15
    assert "avgpool" not in d  # a 1x1 output is not a spatial map
    assert max(d.values()) == 15


@pytest.mark.parametrize("empty_sequential", [False, True])
def test_identity_shortcuts_keep_every_layer(empty_sequential):
    """A shortcut module that returns its input unchanged is captured at a node made before it
    ran; the block's convs, which run before it, must still find their way to the input."""
    d = depths(seeded(IdentityShortcuts, empty_sequential=empty_sequential),
               torch.randn(1, 3, 8, 8))
    # stem 1; block 1: conv1 2, conv2 3, shortcut (the stem's functional relu output, one
    # layer on) 2, the block's output F.relu(out + shortcut) 4; block 2's shortcut hands that
    # very tensor on (an alias of b1, depth 4): conv1 5, conv2 6, the block 7
    assert d == {"stem": 1, "b1.conv1": 2, "b1.conv2": 3, "b1.shortcut": 2, "b1": 4,
                 "b2.shortcut": 4, "b2.conv1": 5, "b2.conv2": 6, "b2": 7}


def test_dense_concatenations():
    d = depths(seeded(TinyDenseNet), torch.randn(1, 3, 8, 8))
    # stem 1; layer i: norm, relu, conv; layer 1 sees stem and layer 0's conv (depth 4)
    assert d["stem"] == 1
    assert [d[f"layers.0.{n}"] for n in ("norm", "relu", "conv")] == [2, 3, 4]
    assert [d[f"layers.1.{n}"] for n in ("norm", "relu", "conv")] == [5, 6, 7]
    assert d["layers.2.conv"] == 10


def test_a_single_sample_and_a_batch_give_the_same_layers():
    model = seeded(TinyResNet)
    x = torch.randn(3, 16, 16)
    assert CamEngine(model).layers(x) == CamEngine(model).layers(x[None])


@pytest.mark.parametrize("bad", [2, -1])
def test_layers_rejects_a_connection_out_of_range(bad):
    with pytest.raises(ValueError, match=r"connection: .* allowed: 0\.\.1"):
        CamEngine(seeded(TwoInputs)).layers(
            (torch.randn(1, 3, 8, 8), torch.randn(1, 1, 8, 8)), connection=bad
        )
