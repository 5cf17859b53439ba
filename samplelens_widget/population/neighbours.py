"""Exact cosine nearest neighbours of a feature matrix, with torch on its device.

``SimilarityIndex`` normalises the rows once and answers ``nearest`` (per query) and
``similar`` (a selection's neighbours); ``nearest`` is the one-off form.

Pure torch + numpy; nothing from the widget.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from samplelens_widget.population.checks import as_features

__all__ = ["SimilarityIndex", "nearest"]


class SimilarityIndex:
    """Exact cosine nearest neighbours over a feature matrix, with torch on ``device``
    (default: the features' device; numpy arrays: the CPU). The rows are normalised once here;
    each query is one matrix product and one ``topk``."""

    def __init__(self, features: object, device: torch.device | str | None = None) -> None:
        x = as_features(features)
        if device is not None:
            x = x.to(device)
        self.vectors = F.normalize(x.float(), dim=1)
        self.n = self.vectors.shape[0]

    def __len__(self) -> int:
        return self.n

    def _ids(self, ids: object, name: str = "ids") -> torch.Tensor:
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            ids = [ids]
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple, range)) or len(ids) == 0:
            raise ValueError(
                f"{name}: expected a non-empty list of sample ids (ints 0..{self.n - 1}), "
                f"got {ids!r}"[:300]
            )
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"{name}: expected int sample ids, got {i!r}"[:200])
            if not 0 <= i < self.n:
                raise ValueError(
                    f"{name}: {i} is out of range; the slice has {self.n} sample(s), "
                    f"allowed: 0..{self.n - 1}"
                )
        return torch.as_tensor([int(i) for i in ids], dtype=torch.long, device=self.vectors.device)

    def _k(self, k: object, high: int, reason: str) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k: expected an int, got {type(k).__name__} {k!r}"[:200])
        if not 1 <= k <= high:
            allowed = f"1..{high}" if high >= 1 else "none"
            raise ValueError(f"k: {k} is out of range; {reason}, allowed: {allowed}")
        return int(k)

    def nearest(
        self, query_ids: object, k: int, *, exclude_self: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per query: its ``k`` most similar samples, ``(ids (Q, k) int64, similarities (Q, k)
        float32)``, most similar first; with ``exclude_self`` a query is not its own
        neighbour. ``k``: 1..N-1 (1..N without ``exclude_self``)."""
        q = self._ids(query_ids, "query_ids")
        high = self.n - 1 if exclude_self else self.n
        k = self._k(k, high, f"the slice has {self.n} sample(s)")
        ids_out, sims_out = [], []
        for chunk in torch.split(q, 1024):
            sims = (self.vectors @ self.vectors[chunk].T).T  # (N, Q) product: the fast layout
            if exclude_self:
                sims[torch.arange(len(chunk), device=sims.device), chunk] = -torch.inf
            top = sims.topk(k, dim=1)
            ids_out.append(top.indices)
            sims_out.append(top.values)
        return (
            torch.cat(ids_out).cpu().numpy().astype(np.int64),
            torch.cat(sims_out).cpu().numpy().astype(np.float32),
        )

    def similar(self, ids: object, k: int) -> list[tuple[int, float]]:
        """The ``k`` samples most similar to any of ``ids`` (the selection), the ids themselves
        left out: ``[(id, cosine similarity), ...]``, most similar first (each candidate ranked
        by its largest similarity to one of ``ids``). ``k``: 1..N - len(set(ids))."""
        q = torch.unique(self._ids(ids))
        high = self.n - len(q)
        reason = f"the slice has {self.n} sample(s) and {len(q)} of them are the query"
        if high == 0:
            reason += ", so none is left to fetch"
        k = self._k(k, high, reason)
        best: torch.Tensor | None = None
        for chunk in torch.split(q, 256):
            sims = (self.vectors @ self.vectors[chunk].T).amax(dim=1)  # (N,)
            best = sims if best is None else torch.maximum(best, sims)
        assert best is not None
        best[q] = -torch.inf
        top = best.topk(k)
        return [
            (int(i), float(s))
            for i, s in zip(top.indices.tolist(), top.values.tolist(), strict=True)
        ]


def nearest(
    features: object,
    query_ids: object,
    k: int,
    *,
    exclude_self: bool = True,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One-off ``SimilarityIndex(features, device).nearest(query_ids, k, ...)``; keep an index
    to query the same features repeatedly (it normalises them once)."""
    return SimilarityIndex(features, device).nearest(query_ids, k, exclude_self=exclude_self)
