"""Checking what the population's callers pass: feature matrices (N, D) and int arguments."""

from __future__ import annotations

import numpy as np
import torch


def as_features(features: object, name: str = "features") -> torch.Tensor:
    if isinstance(features, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(features))
    elif isinstance(features, torch.Tensor):
        t = features.detach()
    else:
        raise TypeError(
            f"{name}: expected a numpy array or tensor (N, D), got {type(features).__name__}"
        )
    if t.dim() != 2 or not t.is_floating_point():
        raise ValueError(
            f"{name}: expected a floating (N, D) array, got shape {tuple(t.shape)} {t.dtype}"
        )
    if t.shape[0] == 0:
        raise ValueError(f"{name}: it has no rows (N = 0)")
    finite = torch.isfinite(t).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        raise ValueError(
            f"{name}: {len(bad)} row(s) hold NaN or infinite values (first: sample "
            f"{int(bad[0])}); every sample needs finite features"
        )
    return t


def check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}"[:200])
    if value < low:
        raise ValueError(f"{name}: {value} is out of range; allowed: an int >= {low}")
    return int(value)
