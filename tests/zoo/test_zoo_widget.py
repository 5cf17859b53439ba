"""The widget and the population view on real transformer and ConvNeXt models (random
weights): the slider walks their blocks, the maps the page gets are the engine's, at the
layers' own grids, and the population features pool over the grid (patch tokens), not over the
channels. Expectations come from forward hooks written here and from the models' strides."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from samplelens_widget import CamEngine, SampleLens
from tests.zoo.models import ZOO, Images, build

N = 10


def zoo(name):
    return next(z for z in ZOO if z.name == name)


# the grid of each model's default layer and how to pool its output by hand
CASES = {
    "timm vit_tiny_patch16_224": lambda t: t[:, 1:, :].mean(dim=1),  # tokens: skip the class
    "transformers Swin": lambda t: t.mean(dim=1),  # flattened grid (N, h*w, C)
    "torchvision convnext_tiny": lambda t: t.mean(dim=(2, 3)),  # NCHW stage output
    "torchvision swin_t": lambda t: t.mean(dim=(1, 2)),  # channels last (N, h, w, C)
}


def make(name):
    z = zoo(name)
    model = build(z)
    data = Images(z.size, N)
    lens = SampleLens(model, data, background=False, projection="pca", cache_dir=None)
    lens.sent = []
    lens.send = lambda content, buffers=None: lens.sent.append((content, list(buffers or [])))
    return z, model, data, lens


@pytest.mark.parametrize("name", list(CASES))
def test_the_page_gets_every_depth_of_the_engine_at_the_layers_own_grids(name):
    z, model, data, lens = make(name)
    lens.selected = [3]
    key = lens._key().as_dict()
    lens._on_msg(lens, {"type": "analyze", "rid": 1, "keys": [key], "images": [True]}, [])
    [(meta, buffers)] = [(c, b) for c, b in lens.sent if c.get("type") == "analysis"]
    ref = CamEngine(model).explain(data[3][0])
    assert [m["depth"] for m in meta["layers"]] == ref.depths
    names = [m["name"] for m in meta["layers"]]
    assert names[-1] == ref.layer_at(None).name
    assert z.default in (names[-1], *meta["layers"][-1]["aliases"])
    for m, buf in zip(meta["layers"], buffers, strict=False):
        assert (m["h"], m["w"]) in z.grids, (name, m)
        info = ref.layer_at(m["depth"])
        assert m["shape"] == list(info.shape) and m["layout"] == info.layout
        raw = ref.raw(info.name)[0]
        arr = np.frombuffer(buf, np.uint8).reshape(m["h"], m["w"])
        if raw.max() > raw.min():
            assert arr.flat[int(np.argmax(raw))] == 255
    # the blocks are on the slider, by their module paths
    blocks = [n for n in z.blocks if not n.endswith((".fc1", ".pwconv1", ".block.3"))]
    on_slider = set(names) | {a for m in meta["layers"] for a in m["aliases"]}
    assert any(b in on_slider for b in blocks), (blocks, names[-10:])
    png = Image.open(io.BytesIO(buffers[-1]))
    assert png.size == (z.size[1], z.size[0])
    np.testing.assert_allclose(lens.result.heatmap(None), ref.heatmap(None), atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_population_features_pool_over_the_grid_of_the_default_layer(name):
    z, model, data, lens = make(name)
    pop = lens.population()
    ref = CamEngine(model).explain(data[0][0]).layer_at(None)
    assert pop["layer"] == ref.name
    module = model.get_submodule(ref.name.split("#")[0])
    out = []

    def keep(m, args, o):
        out.append(CASES[name](o if isinstance(o, torch.Tensor) else o[0]))

    handle = module.register_forward_hook(keep)
    try:
        with torch.no_grad():
            for i in range(len(data)):
                model(data[i][0][None])
    finally:
        handle.remove()
    want = torch.cat(out).numpy()
    assert pop["features"].shape == (N, ref.shape[0])
    np.testing.assert_allclose(pop["features"], want, rtol=1e-4, atol=1e-5)


def test_the_depth_trait_walks_every_block_of_a_vit():
    z, model, data, lens = make("timm vit_tiny_patch16_224")
    lens.selected = [1]
    res = lens.result
    seen = set()
    for depth in res.depths:
        lens.depth = depth
        seen.add(res.layer_at(depth).name)
    for b in range(11):
        assert f"blocks.{b}" in seen
    assert "blocks.11.attn.qkv" in seen
