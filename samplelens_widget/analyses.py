"""The analysis store: one ``CamResult`` per ``AnalysisKey``, computed on demand, kept LRU.

It also remembers what each model's analyses showed (its depths and number of classes), so that
the widget's trait validators can check a value without running the model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

from samplelens_widget.cam import CamEngine, CamResult
from samplelens_widget.protocol.messages import AnalysisKey as KeyMessage

__all__ = ["LRU", "AnalysisKey", "AnalysisStore"]

V = TypeVar("V")


class LRU(OrderedDict[Hashable, V], Generic[V]):
    """A dict that keeps its ``size`` most recently used entries."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_item(self, key: Hashable) -> V | None:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key: Hashable, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass(frozen=True)
class AnalysisKey:
    """What one analysis depends on. ``label=None`` means the predicted class."""

    model: str
    slice: str
    id: int
    algorithm: str
    label: int | None
    connection: int

    def as_dict(self) -> KeyMessage:
        return {
            "model": self.model,
            "slice": self.slice,
            "id": self.id,
            "algorithm": self.algorithm,
            "label": self.label,
            "connection": self.connection,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AnalysisKey:
        label = d.get("label")
        return cls(
            model=str(d["model"]),
            slice=str(d["slice"]),
            id=int(d["id"]),
            algorithm=str(d["algorithm"]),
            label=None if label is None else int(label),
            connection=int(d.get("connection", 0)),
        )


Inputs = tuple[torch.Tensor, ...]


class AnalysisStore:
    """``get(key)``: the CamResult of one sample, from the LRU or computed with the model's
    engine under ``lock`` (the session's model lock). ``inputs(slice, id)`` gives a sample's
    inputs. ``depths(model)`` / ``num_classes(model)``: what an analysis of that model showed,
    ``None`` before the first one (these never compute)."""

    def __init__(
        self,
        engines: Mapping[str, CamEngine],
        inputs: Callable[[str, int], Inputs],
        lock: threading.RLock,
        size: int = 64,
    ) -> None:
        self.engines = engines
        self.inputs = inputs
        self.lock = lock
        self._cache: LRU[CamResult] = LRU(size)
        self._depths: dict[str, list[int]] = {}
        self._classes: dict[str, int] = {}

    def get(self, key: AnalysisKey) -> CamResult:
        with self.lock:
            hit = self._cache.get_item(key)
            if hit is not None:
                return hit
            inputs = self.inputs(key.slice, key.id)
            x = inputs[0] if len(inputs) == 1 else tuple(inputs)
            res = self.engines[key.model].explain(
                x, label=key.label, algorithm=key.algorithm, connection=key.connection
            )
            self._cache.put(key, res)
            self._depths.setdefault(key.model, [int(d) for d in res.depths])
            self._classes.setdefault(key.model, int(res.logits.shape[1]))
            return res

    def depths(self, model: str) -> list[int] | None:
        return self._depths.get(model)

    def num_classes(self, model: str) -> int | None:
        return self._classes.get(model)

    def __len__(self) -> int:
        return len(self._cache)
