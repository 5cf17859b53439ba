"""The feature cache: real files on disk, no mocks of numpy or the file system (one test makes
``os.replace`` fail to check that a failed write leaves nothing behind)."""

from __future__ import annotations

import logging
import os
import zipfile

import numpy as np
import pytest
import torch

from samplelens_widget.population import cache as cache_mod
from samplelens_widget.population import cached_features, extract_features
from samplelens_widget.population.cache import (
    FeatureCache,
    dataset_fingerprint,
    default_cache_dir,
    feature_key,
    model_hash,
    resolve_cache_dir,
)
from tests.population.test_features import Items, Tiny, image_data


class CountingTiny(Tiny):
    """Counts its forward calls: proof that a cache hit runs no model."""

    def __init__(self) -> None:
        super().__init__()
        self.forwards = 0
        self.batches: list[int] = []  # the batch size of every forward

    def forward(self, x):
        self.forwards += 1
        self.batches.append(x.shape[0])
        return super().forward(x)


def counting_model(seed: int = 0) -> CountingTiny:
    torch.manual_seed(seed)
    return CountingTiny()


def files(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_second_run_loads_from_disk_without_running_the_model(tmp_path):
    model, data = counting_model(), image_data(12)
    first = cached_features(model, data, cache_dir=tmp_path, batch_size=5)
    assert first.source == "computed" and first.layer == "relu#2"
    assert files(tmp_path) == [f"{first.key}.npz"]
    model.batches.clear()
    progress = []
    again = cached_features(  # a new cache object: nothing in memory, only the file
        model, data, cache_dir=tmp_path, progress=lambda d, t: progress.append(d)
    )
    assert again.source == "disk"
    assert progress == []
    # only the one-sample forward(s) of CamEngine.layers that resolve layer=None; no batch
    assert model.batches and set(model.batches) == {1}
    np.testing.assert_array_equal(again.features, first.features)
    expected, _ = extract_features(model, data)
    np.testing.assert_array_equal(again.features, expected)
    # the same layer by name: the same entry, and no forward at all
    model.forwards = 0
    named = cached_features(model, data, "relu#2", cache_dir=tmp_path)
    assert named.source == "disk" and named.key == first.key and model.forwards == 0


def test_memory_tier_and_read_only_arrays(tmp_path):
    model, data = counting_model(), image_data(6)
    cache = FeatureCache(tmp_path)
    a = cached_features(model, data, "conv2", cache=cache)
    b = cached_features(model, data, "conv2", cache=cache)
    assert (a.source, b.source) == ("computed", "memory")
    assert b.features is a.features
    with pytest.raises(ValueError):
        b.features[0, 0] = 1.0


def test_the_key_changes_with_weights_buffers_data_and_layer():
    model, data = counting_model(), image_data(40)
    m0, d0 = model_hash(model), dataset_fingerprint(data)
    base = feature_key(m0, d0, "relu#2")
    assert feature_key(m0, d0, "conv2") != base
    assert model_hash(counting_model()) == m0  # same weights, same hash
    with torch.no_grad():
        model.conv2.weight[0, 0, 0, 0] += 1e-3
    assert model_hash(model) != m0
    model2 = counting_model()
    with torch.no_grad():
        model2.bn.running_mean[0] += 1.0  # a buffer, not a parameter
    assert model_hash(model2) != m0
    # data: the first item's pixels, a label, the length
    changed = Items(data.items)
    changed.items[0] = (changed.items[0][0] + 1e-3, changed.items[0][1])
    assert dataset_fingerprint(changed) != d0
    relabelled = Items(data.items)
    relabelled.items[-1] = (relabelled.items[-1][0], 2 - relabelled.items[-1][1] % 3)
    assert dataset_fingerprint(relabelled) != d0
    assert dataset_fingerprint(Items(data.items[:-1])) != d0
    assert dataset_fingerprint(image_data(40)) == d0


def test_a_changed_weight_recomputes(tmp_path):
    model, data = counting_model(), image_data(6)
    a = cached_features(model, data, cache_dir=tmp_path)
    with torch.no_grad():
        model.conv1.weight.mul_(2.0)
    b = cached_features(model, data, cache_dir=tmp_path)
    assert b.source == "computed" and b.key != a.key
    assert not np.array_equal(a.features, b.features)
    assert len(files(tmp_path)) == 2


def _entry(tmp_path):
    model, data = counting_model(), image_data(8)
    first = cached_features(model, data, "conv2", cache_dir=tmp_path)
    path = FeatureCache(tmp_path).path_for(first.key)
    assert path.exists()
    return model, data, first, path


def _recomputes(model, data, first, path, caplog):
    tmp = path.parent.parent  # <cache_dir>/features/<key>.npz
    with caplog.at_level(logging.WARNING, logger="samplelens_widget.population.cache"):
        assert FeatureCache(tmp).get(first.key) is None
    assert "corrupt feature cache file" in caplog.text
    assert not path.exists()  # discarded
    model.forwards = 0
    again = cached_features(model, data, "conv2", cache_dir=tmp)
    assert again.source == "computed" and model.forwards > 0
    np.testing.assert_array_equal(again.features, first.features)
    assert FeatureCache(tmp).get(first.key) is not None  # a good file again


def test_a_truncated_file_is_detected_and_recomputed(tmp_path, caplog):
    model, data, first, path = _entry(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    _recomputes(model, data, first, path, caplog)


def test_flipped_bytes_are_detected_and_recomputed(tmp_path, caplog):
    model, data, first, path = _entry(tmp_path)
    raw = bytearray(path.read_bytes())
    # flip bytes inside the feature array's data (found by its bytes)
    start = bytes(raw).find(first.features.tobytes()[:16])
    assert start > 0
    for i in range(start, start + 8):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    _recomputes(model, data, first, path, caplog)


def test_a_consistent_zip_with_a_wrong_checksum_is_detected(tmp_path, caplog):
    """Changed features in an otherwise valid npz (zip CRCs right): the stored SHA-256 of the
    features catches it."""
    model, data, first, path = _entry(tmp_path)
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    members["features"] = members["features"] + 1.0
    with open(path, "wb") as f:
        np.savez(f, **members)
    _recomputes(model, data, first, path, caplog)


def test_a_file_of_another_key_or_shape_is_not_trusted(tmp_path, caplog):
    model, data, first, path = _entry(tmp_path)
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    members["shape"] = np.asarray([1, 2], np.int64)
    with open(path, "wb") as f:
        np.savez(f, **members)
    _recomputes(model, data, first, path, caplog)
    caplog.clear()
    other = "ab" * 32
    os.replace(path, FeatureCache(tmp_path).path_for(other))
    with caplog.at_level(logging.WARNING):
        assert FeatureCache(tmp_path).get(other) is None
    assert "the key stored in the file is another one" in caplog.text


def test_files_hold_plain_arrays_that_load_without_pickle(tmp_path):
    _, _, first, path = _entry(tmp_path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(
            f"{k}.npy" for k in ["features", "shape", "sha256", "layer", "key", "version"]
        )
    with np.load(path, allow_pickle=False) as z:
        for name in z.files:
            assert z[name].dtype.kind != "O"
        np.testing.assert_array_equal(z["features"], first.features)
        assert str(z["layer"]) == "conv2"


def test_writes_are_atomic_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch, caplog):
    cache = FeatureCache(tmp_path)
    key = "0f" * 32
    cache.put(key, np.ones((3, 2), np.float32), "x")
    assert files(tmp_path) == [f"{key}.npz"]  # no temporary file left behind

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(cache_mod.os, "replace", broken_replace)
    other = "1e" * 32
    with caplog.at_level(logging.WARNING):
        feats, layer = cache.put(other, np.zeros((2, 2), np.float32), "y")
    assert "could not write the feature cache" in caplog.text
    assert files(tmp_path) == [f"{key}.npz"]  # neither the new file nor its temporary one
    assert cache.get(other)[1] == "y"  # still served from memory


def test_cache_dir_none_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SAMPLELENS_CACHE_DIR", raising=False)
    model, data = counting_model(), image_data(5)
    a = cached_features(model, data, cache_dir=None)
    assert a.source == "computed"
    cache = FeatureCache(None)
    assert cache.path_for(a.key) is None
    cached_features(model, data, cache=cache)
    assert cached_features(model, data, cache=cache).source == "memory"
    assert files(tmp_path) == []


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("SAMPLELENS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "samplelens"
    assert FeatureCache().dir == tmp_path / "xdg" / "samplelens" / "features"
    monkeypatch.setenv("SAMPLELENS_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("SAMPLELENS_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "samplelens"
    assert resolve_cache_dir(None) is None
    with pytest.raises(TypeError, match="cache_dir: expected a path"):
        resolve_cache_dir(3)


def test_memory_lru_keeps_the_newest(tmp_path):
    cache = FeatureCache(None, max_items=2)
    keys = [f"{i:02x}" * 32 for i in range(3)]
    for k in keys:
        cache.put(k, np.zeros((1, 1), np.float32), "l")
    assert cache.get(keys[0]) is None
    assert cache.get(keys[1]) is not None and cache.get(keys[2]) is not None
    with pytest.raises(ValueError, match="key: expected a lowercase hex digest"):
        cache.get("../../etc/passwd")


def test_the_default_layer_and_its_name_share_an_entry(tmp_path):
    model, data = counting_model(), image_data(4)
    a = cached_features(model, data, cache_dir=tmp_path)
    b = cached_features(model, data, "relu#2", cache_dir=tmp_path)
    assert a.key == b.key and b.source == "disk"
    with pytest.raises(ValueError, match="layer: 'missing' does not exist"):
        cached_features(model, data, "missing", cache_dir=tmp_path)
