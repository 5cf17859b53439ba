"""UMAP through the real umap-learn (no mocks): reproducible for a seed, in the background.

Marked slow: the first fit in a process compiles numba code (tens of seconds). The data are
kept small (a few hundred points) so that later fits take a second or two."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from samplelens_widget.population import projection
from samplelens_widget.population.projection import (
    Projection,
    pca_2d,
    project,
    project_in_background,
    umap_2d,
    warm_up_umap,
)

pytestmark = pytest.mark.slow


def clusters(n_per: int = 100, k: int = 3, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * 4.0
    x = np.concatenate([c + rng.standard_normal((n_per, d)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(k), n_per)


def neighbour_agreement(coords: np.ndarray, labels: np.ndarray) -> float:
    d = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def test_umap_is_reproducible_for_a_seed_and_keeps_clusters():
    x, labels = clusters()
    a = umap_2d(x, seed=0)
    b = umap_2d(x, seed=0)
    assert a.dtype == np.float32 and a.shape == (300, 2)
    np.testing.assert_array_equal(a, b)
    assert neighbour_agreement(a, labels) > 0.95
    c = umap_2d(x, seed=1)
    assert not np.array_equal(a, c)


def test_project_umap_caps_n_neighbors_on_a_small_slice():
    x, _ = clusters(n_per=10, k=3)
    p = project(x, "umap", n_neighbors=50)
    assert p.method == "umap" and p.note is None and p.coords.shape == (30, 2)
    assert np.all(np.isfinite(p.coords))


def test_background_projection_calls_back_and_leaves_the_caller_free():
    x, labels = clusters(seed=3)
    got: list[Projection] = []
    threads: list[str] = []

    def on_done(p: Projection) -> None:
        threads.append(threading.current_thread().name)
        got.append(p)

    job = project_in_background(x, on_done, seed=0)
    preview = pca_2d(x)  # the caller goes on: the preview is available at once
    assert preview.shape == (300, 2)
    result = job.wait(timeout=600)
    assert job.done.is_set() and job.error is None
    assert result is got[0] and result.method == "umap"
    assert threads == ["samplelens-umap"]
    np.testing.assert_array_equal(result.coords, umap_2d(x, seed=0))


def test_a_cancelled_background_projection_does_not_call_back():
    x, _ = clusters(n_per=30, seed=4)
    called = []
    job = project_in_background(x, called.append)
    job.cancel()
    assert job.wait(timeout=600) is None
    job.done.wait(600)
    assert called == []


def test_warm_up_compiles_in_a_daemon_thread_and_bad_arguments_are_named():
    thread = warm_up_umap()
    assert thread.daemon
    thread.join(600)
    assert not thread.is_alive()
    x, _ = clusters(n_per=10)
    with pytest.raises(ValueError, match="n_epochs: 0 is out of range"):
        umap_2d(x, n_epochs=0)
    with pytest.raises(TypeError, match="seed: expected an int, got str"):
        umap_2d(x, seed="0")
    with pytest.raises(ValueError, match="features: UMAP needs at least 3 samples, got 2"):
        umap_2d(x[:2])


def test_the_exact_knn_graph_matches_numpy():
    x, _ = clusters(n_per=40)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    idx, dist = projection._exact_knn(torch.from_numpy(xn), 6)
    d = np.sqrt(np.maximum(((xn[:, None] - xn[None]) ** 2).sum(-1), 0))
    order = np.argsort(d, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(idx[:, 0], np.arange(len(x)))  # itself first
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_allclose(dist, np.take_along_axis(d, order, 1), atol=1e-3)


def test_larger_slices_use_umap_learns_own_neighbour_search(monkeypatch):
    x, labels = clusters()
    monkeypatch.setattr(projection, "UMAP_EXACT_KNN_MAX", 100)  # 300 samples: umap-learn's search
    a = umap_2d(x, seed=0)
    np.testing.assert_array_equal(a, umap_2d(x, seed=0))
    assert neighbour_agreement(a, labels) > 0.95
