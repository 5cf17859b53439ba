"""PCA and the projection's fallbacks (UMAP itself is in test_projection_umap.py, marked
slow). Expectations are computed independently: numpy SVD."""

from __future__ import annotations

import numpy as np
import pytest

from samplelens_widget.population import projection
from samplelens_widget.population.neighbours import SimilarityIndex
from samplelens_widget.population.projection import MIN_UMAP_SAMPLES, PCA_EXACT_DIM, pca_2d, project


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

    monkeypatch.setattr(projection, "umap_2d", broken)
    x = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    p = project(x)
    assert p.method == "pca" and p.note == "UMAP failed (RuntimeError: boom): showing PCA"
    got = []
    job = projection.project_in_background(x, got.append)
    assert job.wait(60) is got[0] and got[0].method == "pca" and job.error is None


def test_non_finite_features_are_named():
    x = np.ones((5, 3), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"features: 1 row\(s\) hold NaN .*first: sample 3"):
        pca_2d(x)
    with pytest.raises(ValueError, match="features: 1 row"):
        SimilarityIndex(x)
