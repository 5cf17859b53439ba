"""Pointing game and deletion/insertion AUC on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from samplelens_widget.cam.metrics import auc, perturbation_curves, pointing_energy


def test_pointing_energy_by_hand():
    h = np.array([[[1.0, 3.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    m = np.array([[[False, True], [True, False]], [[True, True], [True, True]]])
    np.testing.assert_allclose(pointing_energy(h, m), [0.75, 0.0])
    with pytest.raises(ValueError, match="masks: shape"):
        pointing_energy(h, m[:, :1])


def test_auc_by_hand():
    np.testing.assert_allclose(auc(np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])), [1.0, 0.25])


class PixelReader(nn.Module):
    """Two classes; class 1's logit is 10x the value of pixel (0, 0), class 0's is 0."""

    def forward(self, x):
        v = 10 * x[:, 0, 0, 0]
        return torch.stack([torch.zeros_like(v), v], dim=1)


def test_deletion_and_insertion_follow_the_salient_pixel():
    model = PixelReader()
    model.register_parameter("p", nn.Parameter(torch.zeros(1)))  # gives the model a device
    x = torch.ones(1, 1, 2, 2)
    good = np.array([[[1.0, 0.0], [0.0, 0.0]]])  # the pixel that matters ranks first
    bad = np.array([[[0.0, 0.0], [0.0, 1.0]]])  # ... ranks last (ties keep position order)
    hi, lo = 1 / (1 + np.exp(-10)), 0.5
    d_good = perturbation_curves(model, x, good, np.array([1]), "deletion", steps=4)
    d_bad = perturbation_curves(model, x, bad, np.array([1]), "deletion", steps=4)
    np.testing.assert_allclose(d_good[0], [hi, lo, lo, lo, lo], rtol=1e-6)
    # bad ranking: pixel (0,0) is removed second (after (1,1)): steps remove 1, 2, 3, 4 pixels
    np.testing.assert_allclose(d_bad[0], [hi, hi, lo, lo, lo], rtol=1e-6)
    assert auc(d_good)[0] < auc(d_bad)[0]
    i_good = perturbation_curves(model, x, good, np.array([1]), "insertion", steps=4)
    np.testing.assert_allclose(i_good[0], [lo, hi, hi, hi, hi], rtol=1e-6)
    with pytest.raises(ValueError, match="mode: 'blur' is unknown"):
        perturbation_curves(model, x, good, np.array([1]), "blur")
