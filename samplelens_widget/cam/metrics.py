"""Quality measures of heatmaps: the energy-based pointing game and deletion/insertion AUC."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from samplelens_widget.cam.capture import eval_mode


def pointing_energy(heatmaps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each heatmap's mass inside its ground-truth mask, ``(N,)`` in [0, 1].

    Energy-based pointing game (Wang et al., Score-CAM, 2020). A heatmap with no mass scores 0.
    """
    h = np.asarray(heatmaps, dtype=np.float64).reshape(len(heatmaps), -1)
    m = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    if h.shape != m.shape:
        raise ValueError(f"masks: shape {m.shape} does not match the heatmaps' {h.shape}")
    total = h.sum(axis=1)
    inside = (h * m).sum(axis=1)
    share: np.ndarray = np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
    return share


def perturbation_curves(
    model: nn.Module,
    images: torch.Tensor,
    heatmaps: np.ndarray,
    targets: np.ndarray,
    mode: str = "deletion",
    steps: int = 20,
    baseline: float = 0.0,
    batch_size: int = 2048,
) -> np.ndarray:
    """Probability of ``targets`` as the most salient pixels are removed (``deletion``: from the
    image towards ``baseline``) or revealed (``insertion``: from ``baseline`` towards the
    image), ``steps`` equal steps of the pixel count; returns ``(N, steps + 1)``.

    Pixels are ranked by heatmap value, highest first (ties by position). All channels of a
    pixel change together. The model runs in eval mode under ``torch.no_grad`` and its mode
    is restored.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode: {mode!r} is unknown; allowed: ['deletion', 'insertion']")
    n, c, h, w = images.shape
    device = next(iter(model.parameters())).device
    order = np.argsort(-np.asarray(heatmaps).reshape(n, -1), axis=1, kind="stable")
    rank = np.empty_like(order)
    rank[np.arange(n)[:, None], order] = np.arange(h * w)[None, :]
    rank_t = torch.from_numpy(rank).reshape(n, 1, h, w)
    counts = [round(k * h * w / steps) for k in range(steps + 1)]
    out = np.zeros((n, steps + 1), dtype=np.float64)
    per_batch = max(1, batch_size // (steps + 1))
    with eval_mode(model), torch.no_grad():
        for start in range(0, n, per_batch):
            sl = slice(start, min(n, start + per_batch))
            x = images[sl]
            r = rank_t[sl]
            batch = []
            for k in counts:
                changed = r < k  # the k most salient pixels
                keep = ~changed if mode == "deletion" else changed
                batch.append(torch.where(keep, x, torch.full_like(x, baseline)))
            stacked = torch.stack(batch, dim=1).reshape(-1, c, h, w).to(device)
            probs = torch.softmax(model(stacked).float(), dim=1)
            values = probs.reshape(x.shape[0], steps + 1, -1).cpu().numpy()
            t = np.asarray(targets)[sl]
            out[sl] = values[np.arange(len(t)), :, t]
    return out


def auc(curves: np.ndarray) -> np.ndarray:
    """Area under each curve over the fraction of pixels changed, [0, 1] (trapezoid rule)."""
    curves = np.asarray(curves, dtype=np.float64)
    steps = curves.shape[1] - 1
    area: np.ndarray = (curves[:, :-1] + curves[:, 1:]).sum(axis=1) / (2 * steps)
    return area
