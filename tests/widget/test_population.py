"""The population state behind the scatter: features, colour columns, similar samples,
selections from the page and bad input. Expectations are computed independently here (forward
hooks, numpy brute force, the data sets' own labels)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from fakes import NAMES, Blobs, TinyNet

import samplelens_widget.population.features as features_mod
import samplelens_widget.population_view as population
from samplelens_widget import SampleLens
from samplelens_widget.population import Projection


def make(n=40, **kw):
    kw.setdefault("label_names", NAMES)
    kw.setdefault("background", False)
    kw.setdefault("projection", "pca")
    kw.setdefault("cache_dir", None)
    lens = SampleLens(TinyNet(), Blobs(n), **kw)
    lens.sent = []
    lens.send = lambda content, buffers=None: lens.sent.append((content, list(buffers or [])))
    return lens


def msg(lens, content, buffers=()):
    lens._on_msg(lens, content, list(buffers))


def of_type(lens, kind):
    return [(c, b) for c, b in lens.sent if c.get("type") == kind]


def hooked_features(model, ds, module):
    """Global-average-pooled output of ``module`` for every sample, via a forward hook."""
    out = []
    h = module.register_forward_hook(lambda m, a, o: out.append(o.mean(dim=(2, 3))))
    with torch.no_grad():
        model.eval()
        for i in range(len(ds)):
            model(ds[i][0][None])
    h.remove()
    return torch.cat(out).numpy()


def test_population_message_carries_coordinates_and_every_colour_column():
    lens = make(40, metadata={"brightness": np.linspace(0, 1, 40), "group": ["a", "b"] * 20})
    msg(lens, {"type": "population", "rid": 3, "model": lens.model_name, "slice": lens.slice})
    progress = of_type(lens, "population_progress")
    assert progress[0][0]["done"] == 0 and progress[-1][0]["done"] == 40
    [(meta, bufs)] = of_type(lens, "population")
    assert meta["rid"] == 3 and meta["n"] == 40 and meta["method"] == "pca"
    coords = np.frombuffer(bufs[0], "<f4").reshape(40, 2)
    np.testing.assert_allclose(coords, lens.population()["coords"])
    cols = {c["key"]: (c, b) for c, b in zip(meta["columns"], bufs[1:], strict=True)}
    assert list(cols) == ["label", "prediction", "correct", "loss", "brightness", "group"]
    ds = lens._session.slices[lens.slice]
    labels = ds.y.numpy()
    assert cols["label"][0]["categories"] == NAMES
    np.testing.assert_array_equal(np.frombuffer(cols["label"][1], "u1"), labels)
    # predictions and losses from an independent forward pass
    model = lens._session.models[lens.model_name]
    with torch.no_grad():
        logits = model(ds.x)
    preds = logits.argmax(1).numpy()
    np.testing.assert_array_equal(np.frombuffer(cols["prediction"][1], "u1"), preds)
    np.testing.assert_array_equal(np.frombuffer(cols["correct"][1], "u1"), preds == labels)
    loss = torch.nn.functional.cross_entropy(logits, ds.y, reduction="none").numpy()
    np.testing.assert_allclose(np.frombuffer(cols["loss"][1], "<f4"), loss, rtol=1e-4)
    assert cols["loss"][0]["min"] == pytest.approx(np.quantile(loss, 0.02), rel=1e-4)
    assert cols["loss"][0]["max"] == pytest.approx(np.quantile(loss, 0.98), rel=1e-4)
    np.testing.assert_allclose(np.frombuffer(cols["brightness"][1], "<f4"), np.linspace(0, 1, 40))
    assert cols["group"][0]["categories"] == ["a", "b"]
    np.testing.assert_array_equal(np.frombuffer(cols["group"][1], "u1"), [0, 1] * 20)


def test_features_come_from_the_embed_layer_and_the_default_is_the_deepest_map():
    lens = make(30)
    model = lens._session.models[lens.model_name]
    ds = lens._session.slices[lens.slice]
    pop = lens.population()
    # the Sequential ``features`` returns features.7's very tensor: one layer, the block's name
    assert pop["layer"] == "features"
    np.testing.assert_allclose(
        pop["features"], hooked_features(model, ds, model.features[7]), rtol=1e-5, atol=1e-6
    )
    lens2 = make(30, embed_layer="features.2")
    pop2 = lens2.population()
    assert pop2["layer"] == "features.2" and pop2["features"].shape == (30, 12)
    model2 = lens2._session.models[lens2.model_name]
    np.testing.assert_allclose(
        pop2["features"], hooked_features(model2, ds, model2.features[2]), rtol=1e-5, atol=1e-6
    )


def test_similar_matches_numpy_brute_force_cosine():
    lens = make(50, embed_layer="features.2")
    feats = lens.population()["features"].astype(np.float64)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    for ids, k in (([3], 5), ([0, 7, 9], 10)):
        got = lens.similar(ids, k)
        sims = (unit @ unit[ids].T).max(1)
        sims[ids] = -np.inf
        want = np.argsort(-sims, kind="stable")[:k]
        assert [i for i, _ in got] == want.tolist()
        np.testing.assert_allclose([s for _, s in got], sims[want], atol=1e-5)
    lens.selected = [4]
    assert [i for i, _ in lens.similar(k=3)] == [i for i, _ in lens.similar([4], 3)]


def test_fetch_similar_from_the_page_answers_with_neighbours_and_similarities():
    lens = make(30)
    lens.selected = [1, 2]
    msg(lens, {"type": "similar", "rid": 4, "ids": [1, 2], "k": 3})
    [(m, _)] = of_type(lens, "similar")
    want = lens.similar([1, 2], 3)
    assert m["ids"] == [i for i, _ in want] and m["query"] == [1, 2]
    assert m["similarities"] == pytest.approx([s for _, s in want])
    # k out of range: a message naming k, nothing else changes
    lens.sent.clear()
    msg(lens, {"type": "similar", "rid": 5, "ids": [1, 2], "k": 29})
    [(err, _)] = of_type(lens, "error")
    assert "k: 29 is out of range" in err["message"] and "allowed: 1..28" in err["message"]
    assert lens.selected == [1, 2]
    with pytest.raises(ValueError, match=r"k: 0 is out of range"):
        lens.similar([1], 0)
    with pytest.raises(ValueError, match=r"sample id 99 is out of range 0..29"):
        lens.similar([99], 2)


def test_lasso_selection_arrives_as_one_uint32_buffer():
    lens = make(40)
    ids = np.array([5, 17, 3, 39], dtype="<u4")
    msg(lens, {"type": "select_ids", "mode": "replace", "slice": lens.slice}, [ids.tobytes()])
    assert lens.selected == [5, 17, 3, 39] and lens.viewed == 5
    msg(lens, {"type": "select_ids", "mode": "add"}, [np.array([3, 8], "<u4").tobytes()])
    assert lens.selected == [5, 17, 3, 39, 8] and lens.viewed == 5
    msg(lens, {"type": "select_ids", "mode": "replace", "slice": "elsewhere"}, [ids.tobytes()])
    assert lens.selected == [5, 17, 3, 39, 8]  # a stale selection of another slice: ignored
    msg(lens, {"type": "select_ids", "mode": "replace"}, [np.array([1, 40], "<u4").tobytes()])
    [(err, _)] = of_type(lens, "error")
    assert "sample id 40 is out of range 0..39" in err["message"]
    assert lens.selected == [5, 17, 3, 39, 8]


def test_a_big_selection_is_validated_quickly_and_deduplicated():
    lens = make(40)
    lens._session.slice_len = lambda name: 100_000  # the validation alone, at scale
    ids = list(range(100_000)) + [5, 7]
    lens.selected = ids
    assert len(lens.selected) == 100_000


def test_clicking_a_dot_adds_and_views_the_sample():
    lens = make(40)
    msg(lens, {"type": "pick", "id": 33})
    assert lens.selected[-1] == 33 and lens.viewed == 33
    msg(lens, {"type": "pick", "id": 2})
    assert lens.viewed == 2 and lens.selected.count(2) == 1


def test_hover_thumbnail():
    lens = make(20)
    msg(lens, {"type": "thumb", "rid": 1, "slice": lens.slice, "id": 4})
    [(m, [png])] = of_type(lens, "thumb")
    assert m["id"] == 4 and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_colour_by_is_a_validated_trait():
    lens = make(20, metadata={"site": ["x"] * 20})
    lens.color_by = "site"
    with pytest.raises(
        Exception, match=r"color_by: 'nope' is not one of \['label', 'prediction', "
    ):
        lens.color_by = "nope"
    assert lens._info["columns"][lens.slice][-1] == ["site", "site"] or tuple(
        lens._info["columns"][lens.slice][-1]
    ) == ("site", "site")


class FakeFrame:
    """Duck-typed DataFrame: .columns, [name] -> a Series-like with to_numpy, to_dict."""

    def __init__(self, cols):
        self.cols = cols
        self.columns = list(cols)

    def __getitem__(self, k):
        return type("S", (), {"to_numpy": lambda s, v=self.cols[k]: np.asarray(v)})()

    def to_dict(self):
        return dict(self.cols)


def test_metadata_validation_names_the_argument():
    with pytest.raises(ValueError, match=r"metadata\['a'\]: has 3 values; the slice has 20"):
        make(20, metadata={"a": [1, 2, 3]})
    with pytest.raises(TypeError, match=r"metadata\['a'\]: values of type\(s\) \['dict'\]"):
        make(20, metadata={"a": [{}] * 20})
    with pytest.raises(TypeError, match=r"metadata: expected a dict of arrays .* got int"):
        make(20, metadata=5)
    with pytest.raises(ValueError, match=r"'loss' is reserved"):
        make(20, metadata={"loss": np.zeros(20)})
    lens = make(20, metadata=FakeFrame({"w": np.arange(20.0), "tag": ["p", "q"] * 10}))
    assert [k for k, _ in lens._population.columns(lens.slice)][-2:] == ["w", "tag"]
    # per slice
    slices = {"a": Blobs(10), "b": Blobs(12)}
    lens = SampleLens(
        TinyNet(),
        slices["a"],
        slices=slices,
        cache_dir=None,
        projection="pca",
        metadata={"b": {"z": np.arange(12)}},
    )
    assert [k for k, _ in lens._population.columns("b")][-1] == "z"
    assert [k for k, _ in lens._population.columns("a")] == [
        "label",
        "prediction",
        "correct",
        "loss",
    ]
    with pytest.raises(
        ValueError, match=r"metadata\['b'\]\['z'\]: has 10 values; the slice has 12"
    ):
        SampleLens(
            TinyNet(),
            slices["a"],
            slices=slices,
            cache_dir=None,
            metadata={"b": {"z": np.arange(10)}},
        )


def test_bad_arguments_raise_with_clear_messages():
    with pytest.raises(ValueError, match=r"embed_layer: 'nope' does not exist; allowed"):
        make(10, embed_layer="nope")
    with pytest.raises(TypeError, match=r"embed_layer: expected a layer name"):
        make(10, embed_layer=3)
    with pytest.raises(
        ValueError, match=r"projection: 'tsne' is unknown; allowed: \['umap', 'pca'\]"
    ):
        make(10, projection="tsne")
    with pytest.raises(TypeError, match=r"cache_dir"):
        make(10, cache_dir=3.5)


def test_a_one_sample_slice_shows_a_note_and_similar_explains_why_not():
    lens = make(1)
    msg(lens, {"type": "population", "model": lens.model_name, "slice": lens.slice})
    [(meta, bufs)] = of_type(lens, "population")
    assert meta["method"] == "none" and "one sample" in meta["note"]
    assert np.frombuffer(bufs[0], "<f4").tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"k: 1 is out of range; .* allowed: none"):
        lens.similar([0], 1)


def test_a_small_slice_falls_back_to_pca_with_a_note_when_umap_is_asked_for(monkeypatch):
    monkeypatch.setattr(population, "warm_up_umap", lambda: None)
    lens = make(8, projection="umap")
    msg(lens, {"type": "population", "model": lens.model_name, "slice": lens.slice})
    [(meta, _)] = of_type(lens, "population")
    assert meta["method"] == "pca" and "too few for UMAP" in meta["note"]
    assert meta["umap_pending"] is False


def test_a_population_error_is_reported_to_page_and_python():
    lens = make(10)
    lens._population.embed_layer = "features.99"  # e.g. a model without that layer
    msg(lens, {"type": "population", "rid": 2, "model": lens.model_name, "slice": lens.slice})
    [(err, _)] = of_type(lens, "population_error")
    assert err["message"].startswith("ValueError: embed_layer: 'features.99'")
    assert of_type(lens, "error")
    with pytest.raises(ValueError, match="embed_layer"):
        lens.population()


def test_the_background_map_replaces_the_preview(monkeypatch):
    done = {}

    def fake(features, on_done, **kw):
        n = len(features)
        coords = np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float32)
        t = threading.Thread(target=on_done, args=(Projection(coords, "umap"),))
        t.start()
        done["t"] = t
        return type("B", (), {"cancel": lambda self: None})()

    monkeypatch.setattr(population, "project_in_background", fake)
    monkeypatch.setattr(population, "warm_up_umap", lambda: None)
    lens = make(30, projection="umap")
    msg(lens, {"type": "population", "model": lens.model_name, "slice": lens.slice})
    done["t"].join(5)
    [(first, _)] = of_type(lens, "population")
    assert first["method"] == "pca" or first["method"] == "umap"
    [(m, [buf])] = of_type(lens, "population_coords")
    assert m["method"] == "umap" and m["umap_pending"] is False
    np.testing.assert_array_equal(np.frombuffer(buf, "<f4").reshape(30, 2)[:, 0], np.arange(30))
    assert lens.population()["method"] == "umap"


def test_features_are_cached_on_disk_and_not_recomputed(tmp_path, monkeypatch):
    ds = Blobs(30)
    lens = SampleLens(TinyNet(), ds, cache_dir=tmp_path, projection="pca", background=False)
    first = lens.population()["features"]
    files = list(tmp_path.rglob("*.npz"))
    assert files, "no cache file written"
    calls = []
    monkeypatch.setattr(features_mod, "extract_features", lambda *a, **k: calls.append(1))
    again = SampleLens(TinyNet(), ds, cache_dir=tmp_path, projection="pca", background=False)
    np.testing.assert_array_equal(again.population()["features"], first)
    assert calls == [] and again._population.state(again.model_name, again.slice).source == "disk"
    # other weights: a new entry
    monkeypatch.undo()
    other = SampleLens(TinyNet(seed=3), ds, cache_dir=tmp_path, projection="pca", background=False)
    assert other._population.ensure(other.model_name, other.slice).source == "computed"


@pytest.mark.slow
def test_real_umap_in_the_background_reaches_the_page():
    lens = make(60, projection="umap")
    msg(lens, {"type": "population", "model": lens.model_name, "slice": lens.slice})
    assert lens.wait_umap(300)
    [(m, [buf])] = of_type(lens, "population_coords")
    coords = np.frombuffer(buf, "<f4").reshape(60, 2)
    assert m["method"] == "umap" and np.isfinite(coords).all()
    again = make(60, projection="umap")
    msg(again, {"type": "population", "model": again.model_name, "slice": again.slice})
    assert again.wait_umap(300)
    np.testing.assert_allclose(again.population()["coords"], coords, atol=1e-4)  # seeded
