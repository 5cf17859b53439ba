"""SampleLens on the Python side: traits, validation, messages, payloads, export."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import NAMES, Blobs, PairData, TinyNet, TwoInputNet, broken, histogram_text, red_image
from PIL import Image

from samplelens_widget import SampleLens
from samplelens_widget.analyses import AnalysisKey

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data():
    return {"train": Blobs(40, seed=1), "val": Blobs(30)}


@pytest.fixture(scope="module")
def net():
    return TinyNet()


@pytest.fixture
def lens(net, data):
    w = SampleLens(net, data["val"], slices=data, label_names=NAMES, background=False)
    w.sent = []
    w.send = lambda content, buffers=None: w.sent.append((content, list(buffers or [])))
    yield w
    w.close()


def msgs(w, kind):
    return [(c, b) for c, b in w.sent if c.get("type") == kind]


# ------------------------------------------------------------------------------ construction
def test_defaults_follow_the_slice_given_as_data(lens, data):
    assert lens.slice == "val"
    assert lens.selected == list(range(12))
    assert lens.viewed == 0
    assert lens.algorithm == "gradcam" and lens.label is None and lens.depth is None
    assert lens.connection == 0 and lens.model_name == "model"
    info = lens._info
    assert info["slices"] == {"train": 40, "val": 30}
    assert info["label_names"] == NAMES and info["num_classes"] == 5
    assert info["n_inputs"] == {"train": 1, "val": 1}


def test_data_without_slices_and_dict_items():
    class DictData(torch.utils.data.Dataset):
        def __init__(self):
            self.b = Blobs(5)

        def __len__(self):
            return 5

        def __getitem__(self, i):
            x, y = self.b[i]
            return {"inputs": x, "label": y}

    w = SampleLens(TinyNet(), DictData(), background=False)
    assert w.slice == "data" and w.selected == [0, 1, 2, 3, 4]
    assert w._info["label_names"] == [f"class {i}" for i in range(5)]
    assert w.result.logits.shape == (1, 5)


def test_bad_constructor_arguments(data):
    with pytest.raises(TypeError, match="model"):
        SampleLens("not a model", data["val"])
    with pytest.raises(ValueError, match="reserved"):
        SampleLens(TinyNet(), data["val"], visualizers={"CAM": red_image})
    with pytest.raises(TypeError, match="visualizers"):
        SampleLens(TinyNet(), data["val"], visualizers={"x": 3})


def test_missing_bundle_says_how_to_build(monkeypatch, data):
    import samplelens_widget.widget as wmod

    monkeypatch.setattr(wmod, "_ESM_PATH", ROOT / "nowhere" / "widget.js")
    with pytest.raises(RuntimeError, match="npm install && npm run build"):
        SampleLens(TinyNet(), data["val"])


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "trait, value, pattern",
    [
        ("selected", [1, 99], r"selected: sample id 99 is out of range 0\.\.29 for slice 'val'"),
        ("viewed", -1, r"viewed: sample id -1 is out of range"),
        ("algorithm", "gradcam++", r"algorithm: 'gradcam\+\+' is not one of"),
        ("label", 5, r"label: 5 is not a class of the model; expected 0\.\.4"),
        ("connection", 1, r"connection: 1 is not an input of slice 'val'; expected 0\.\.0"),
        ("depth", 99, r"depth: 99 is not a depth of model 'model'; expected 1\.\.\d+"),
        ("depth", 0, r"depth: 0"),
        ("slice", "test", r"slice: 'test' is not one of \['train', 'val'\]"),
        ("model_name", "other", r"model_name: 'other' is not one of \['model'\]"),
        ("compare", "other", r"compare: 'other'"),
        ("colormap", "rainbow", r"colormap: 'rainbow' is not one of"),
        ("opacity", 1.5, r"opacity: 1.5 is outside \[0, 1\]"),
        ("tab", "Nope", r"tab: 'Nope' is not one of \['CAM', 'Input'\]"),
    ],
)
def test_invalid_values_name_the_trait_and_keep_the_old_value(lens, trait, value, pattern):
    old = getattr(lens, trait)
    with pytest.raises(Exception, match=pattern):
        setattr(lens, trait, value)
    assert getattr(lens, trait) == old


def test_valid_values_are_accepted(lens):
    lens.algorithm = "LayerCAM"  # titles are accepted and normalised
    assert lens.algorithm == "layercam"
    lens.label = 4
    lens.depth = 2
    lens.colormap = "viridis"
    lens.opacity = 0.0
    assert (lens.label, lens.depth, lens.colormap, lens.opacity) == (4, 2, "viridis", 0.0)
    lens.depth = None
    lens.label = None


def test_selected_and_viewed_stay_consistent(lens):
    lens.selected = [3, 7, 3]
    assert lens.selected == [3, 7]
    assert lens.viewed == 3
    lens.viewed = 9
    assert lens.selected == [3, 7, 9]
    lens.selected = []
    assert lens.viewed is None and lens.result is None
    lens.selected = [5]
    assert lens.viewed == 5


def test_switching_the_slice_resets_the_selection(lens):
    lens.selected = [25, 26]
    lens.slice = "train"
    assert lens.selected == list(range(12)) and lens.viewed == 0
    with pytest.raises(Exception, match="out of range 0..39"):
        lens.selected = [40]


# ------------------------------------------------------------------------------ results
def test_result_is_the_engine_result_for_the_viewed_sample(lens, net, data):
    from samplelens_widget import CamEngine

    lens.selected = [4]
    lens.label = 2
    lens.algorithm = "layercam"
    res = lens.result
    x, _ = data["val"][4]
    ref = CamEngine(net).explain(x, label=2, algorithm="layercam")
    assert res.targets.tolist() == [2]
    np.testing.assert_allclose(res.heatmap(None), ref.heatmap(None), atol=1e-5)
    assert lens.result is res  # cached


def test_export_writes_the_blended_overlay(lens, data, tmp_path):
    lens.selected = [6]
    lens.depth = 2
    lens.colormap = "inferno"
    lens.opacity = 0.4
    path = lens.export(tmp_path / "overlay.png")
    got = np.asarray(Image.open(path).convert("RGB")).astype(int)
    # independent expectation: the colormap table straight from the JSON file, the engine's heatmap
    tables = json.loads((ROOT / "samplelens_widget" / "colormaps.json").read_text())
    lut = np.frombuffer(bytes.fromhex(tables["inferno"]), dtype=np.uint8).reshape(256, 3)
    heat = lens.result.heatmap(2)[0]
    image = data["val"].to_display(6).astype(float)
    want = np.rint(0.6 * image + 0.4 * lut[np.rint(heat * 255).astype(int)]).astype(int)
    assert got.shape == (64, 64, 3)
    assert np.abs(got - want).max() <= 1


# ------------------------------------------------------------------------------ messages
def test_analyze_message_sends_uint8_maps_per_depth_and_the_image(lens):
    lens.selected = [2]
    key = lens._key().as_dict()
    lens._on_msg(lens, {"type": "analyze", "rid": 7, "keys": [key], "images": [True]}, [])
    ((meta, buffers),) = msgs(lens, "analysis")
    res = lens.result
    assert meta["rid"] == 7 and meta["key"] == key
    assert [m["depth"] for m in meta["layers"]] == res.depths
    assert len(buffers) == len(res.depths) + 1
    for layer, buf in zip(meta["layers"], buffers, strict=False):
        raw = res.raw(res.layer_at(layer["depth"]).name)[0]
        arr = np.frombuffer(buf, dtype=np.uint8).reshape(layer["h"], layer["w"])
        assert arr.shape == raw.shape
        if raw.max() > raw.min():
            assert arr.min() == 0 and arr.max() == 255
            # the brightest pixel is where the raw map peaks
            assert arr.flat[int(np.argmax(raw))] == 255
    png = Image.open(io.BytesIO(buffers[-1]))
    assert png.size == (64, 64)
    assert meta["prediction"] == int(res.predictions[0])
    probs = res.probabilities[0]
    assert meta["topk"][0][0] == int(np.argmax(probs))
    y = lens.sample.label
    assert meta["true_label"] == y
    assert meta["loss"] == pytest.approx(-np.log(probs[y]), rel=1e-5)
    assert sum(len(b) for b in buffers[:-1]) == sum(m["h"] * m["w"] for m in meta["layers"])


def test_analyze_without_image_and_bad_key_reports_error(lens):
    key = lens._key().as_dict()
    lens._on_msg(lens, {"type": "analyze", "rid": 1, "keys": [key], "images": [False]}, [])
    meta, buffers = msgs(lens, "analysis")[-1]
    assert meta["image"] is False and len(buffers) == len(meta["layers"])
    bad = {**key, "algorithm": "nope"}
    lens._on_msg(lens, {"type": "analyze", "rid": 2, "keys": [bad]}, [])
    err = msgs(lens, "error")[-1][0]
    assert "algorithm" in err["message"] and err["key"] == bad


def test_add_sample_validates_the_id(lens):
    lens.selected = [0]
    lens._on_msg(lens, {"type": "add", "id": "17"}, [])
    assert lens.selected == [0, 17] and lens.viewed == 17
    lens._on_msg(lens, {"type": "add", "id": "99999"}, [])
    ((err, _),) = msgs(lens, "error")
    assert err["message"] == "ValueError: sample id 99999 is out of range 0..29 for slice 'val'"
    lens._on_msg(lens, {"type": "add", "id": "abc"}, [])
    assert "sample id 'abc' is not an integer" in msgs(lens, "error")[-1][0]["message"]
    assert lens.selected == [0, 17]


def test_select_all_and_rows(lens, data, net):
    lens._on_msg(lens, {"type": "select_all"}, [])
    assert lens.selected == list(range(30))
    lens._on_msg(lens, {"type": "rows", "model": "model", "slice": "val", "ids": [3, 4]}, [])
    ((meta, buffers),) = msgs(lens, "rows")
    with torch.no_grad():
        logits = net(torch.stack([data["val"][i][0] for i in (3, 4)]))
    for row, i, lg in zip(meta["rows"], (3, 4), logits, strict=True):
        y = data["val"][i][1]
        assert row["id"] == i and row["label"] == y
        assert row["prediction"] == int(lg.argmax())
        assert row["loss"] == pytest.approx(float(-torch.log_softmax(lg, 0)[y]), rel=1e-4)
    assert [Image.open(io.BytesIO(b)).size for b in buffers] == [(40, 40), (40, 40)]


def test_slice_stats_match_the_model(lens, data, net):
    lens._on_msg(lens, {"type": "stats", "model": "model", "slice": "val"}, [])
    ((meta, _),) = msgs(lens, "stats")
    xs = torch.stack([data["val"][i][0] for i in range(30)])
    ys = np.array([data["val"][i][1] for i in range(30)])
    with torch.no_grad():
        preds = net(xs).argmax(1).numpy()
    assert meta["n"] == 30
    assert meta["accuracy"] == pytest.approx(float((preds == ys).mean()))
    conf = np.array(meta["confusion"])
    assert conf.sum() == 30
    for t, p in zip(ys, preds, strict=True):
        assert conf[t, p] == int(((ys == t) & (preds == p)).sum())


def test_visualizers_render_every_kind(net, data):
    import plotly.graph_objects as go

    vis = {
        "text": histogram_text,
        "red": red_image,
        "float": lambda s: np.linspace(0, 1, 12).reshape(3, 4),
        "pil": lambda s: Image.new("RGB", (5, 4), (0, 255, 0)),
        "plot": lambda s: go.Figure(go.Bar(x=[1, 2], y=[3, 4])),
        "broken": broken,
    }
    w = SampleLens(net, data["val"], visualizers=vis, background=False)
    sent = []
    w.send = lambda c, buffers=None: sent.append((c, list(buffers or [])))
    for name in vis:
        w._on_msg(w, {"type": "visual", "name": name, "slice": "data", "id": 2}, [])
    out = {c["name"]: (c, b) for c, b in sent}
    assert out["text"][0]["kind"] == "text" and out["text"][0]["text"].startswith("sample 2: label")
    img = np.asarray(Image.open(io.BytesIO(out["red"][1][0])))
    assert img.shape == (16, 16, 3) and (img[..., 0] == 255).all() and (img[..., 1] == 0).all()
    f = np.asarray(Image.open(io.BytesIO(out["float"][1][0])))
    assert f.shape == (3, 4) and f.min() == 0 and f.max() == 255
    assert np.asarray(Image.open(io.BytesIO(out["pil"][1][0]))).shape == (4, 5, 3)
    assert out["plot"][0]["kind"] == "plotly"
    assert out["plot"][0]["figure"]["data"][0]["type"] == "bar"
    assert out["broken"][0]["kind"] == "error"
    assert "this visualizer is broken on purpose" in out["broken"][0]["message"]
    w._on_msg(w, {"type": "plotly_js"}, [])
    c, b = sent[-1]
    assert c["type"] == "plotly_js" and b[0][:200].find(b"plotly.js") >= 0


def test_multi_input_models_have_connections():
    w = SampleLens(TwoInputNet(), PairData(), background=False)
    assert w._info["n_inputs"] == {"data": 2}
    w.connection = 1
    assert w.result.input_size == (48, 48)
    assert w.overlay().shape == (48, 48, 3)
    with pytest.raises(Exception, match="connection: 2"):
        w.connection = 2


def test_several_models_and_compare(data):
    a, b = TinyNet(seed=0), TinyNet(seed=1)
    w = SampleLens(None, data["val"], models={"baseline": a, "candidate": b}, background=False)
    assert w.model_name == "baseline" and w._info["models"] == ["baseline", "candidate"]
    w.compare = "candidate"
    ra = w.result
    w.model_name = "candidate"
    rb = w.result
    assert not np.allclose(ra.logits, rb.logits)
    w2 = SampleLens(b, data["val"], models={"baseline": a, "candidate": b}, background=False)
    assert w2.model_name == "candidate"


def test_unknown_message_type_is_reported(lens):
    lens._on_msg(lens, {"type": "frobnicate"}, [])
    assert "unknown request type 'frobnicate'" in msgs(lens, "error")[0][0]["message"]


def test_key_round_trip():
    k = AnalysisKey("m", "val", 3, "gradcam", None, 0)
    assert AnalysisKey.from_dict(k.as_dict()) == k


def test_out_of_range_values_from_the_page_are_clamped_not_raised(lens):
    # a slider value or label meant for another model arrives late: never an exception
    deepest = lens.result.depths[-1]
    lens.set_state({"depth": deepest + 10})
    assert lens.depth == deepest
    lens.set_state({"label": 99})
    assert lens.label is None
    with pytest.raises(Exception, match="depth"):
        lens.depth = deepest + 10  # from Python it is an error


def test_the_users_model_is_left_as_it_was(data):
    """A mixed train/eval model (a frozen BatchNorm in a model being fine-tuned, say) keeps each
    module's own flag, its weights, its requires_grad flags, no .grad and no hooks, after the
    widget analysed samples, predicted the slice and computed the population."""
    net = TinyNet()
    net.train()
    first = next(m for m in net.modules() if m is not net and next(m.children(), None) is None)
    first.eval()
    flags = {name: m.training for name, m in net.named_modules()}
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    grads = {k: p.requires_grad for k, p in net.named_parameters()}
    w = SampleLens(net, data["val"], slices=data, label_names=NAMES, background=False,
                   cache_dir=None, projection="pca")
    w.send = lambda content, buffers=None: None
    try:
        w.selected = [0, 1, 2]
        w.viewed = 1
        _ = w.result
        w._on_msg(w, {"type": "rows", "model": "model", "slice": "val", "ids": [0, 1]}, [])
        w._on_msg(w, {"type": "stats", "model": "model", "slice": "val"}, [])
        w.similar([0], k=3)
        w.wait()
    finally:
        w.close()
    assert {name: m.training for name, m in net.named_modules()} == flags
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())
    assert {k: p.requires_grad for k, p in net.named_parameters()} == grads
    assert all(p.grad is None for p in net.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
