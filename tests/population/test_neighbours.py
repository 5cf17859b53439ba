"""Exact cosine nearest neighbours. Expectations are computed independently: numpy
brute-force cosine similarity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samplelens_widget.population.neighbours import SimilarityIndex, nearest


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
