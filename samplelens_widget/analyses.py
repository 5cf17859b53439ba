"""The analysis store: one ``CamResult`` per ``AnalysisKey``, computed on demand, kept LRU.

It also remembers what each model's analyses showed (its depths and number of classes), so that
the widget's trait validators can check a value without running the model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import torch

from samplelens_widget.cam import CamEngine, CamResult
from samplelens_widget.cam.errors import said_of
from samplelens_widget.cam.outputs import Output
from samplelens_widget.cam.targets import Class, Contrast, Loss, Target
from samplelens_widget.model_lock import ModelLock
from samplelens_widget.protocol.messages import AnalysisKey as KeyMessage
from samplelens_widget.slice_stats import loss_label

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
    """What one analysis depends on. ``label``: a class, ``None`` (the predicted class) or
    ``"loss"``; ``contrast``: a second class (the map explains ``label`` rather than it)."""

    model: str
    slice: str
    id: int
    algorithm: str
    label: int | str | None
    connection: int
    contrast: int | None = None

    def as_dict(self) -> KeyMessage:
        return {
            "model": self.model,
            "slice": self.slice,
            "id": self.id,
            "algorithm": self.algorithm,
            "label": "loss" if self.label == "loss" else self.label,  # type: ignore[typeddict-item]
            "connection": self.connection,
            "contrast": self.contrast,
        }

    def target(self, true_label: Any) -> Target:
        """What this key's map explains, for a sample whose true label is ``true_label``."""
        if self.label == "loss":
            if true_label is None:
                raise ValueError(
                    f"label: 'loss' needs the sample's true label; sample {self.id} of slice "
                    f"{self.slice!r} has none"
                )
            return SampleLoss([true_label])
        if self.contrast is not None:
            return Contrast(self.label, self.contrast)
        return Class(self.label)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AnalysisKey:
        label = d.get("label")
        contrast = d.get("contrast")
        return cls(
            model=str(d["model"]),
            slice=str(d["slice"]),
            id=int(d["id"]),
            algorithm=str(d["algorithm"]),
            label=label if label is None or label == "loss" else int(label),
            connection=int(d.get("connection", 0)),
            contrast=None if contrast is None else int(contrast),
        )


class SampleLoss(Loss):
    """``targets.Loss`` against a dataset label read as the sample list reads it
    (``slice_stats.loss_label``: a multi-class model's one-hot or probability row is its
    argmax), so that the loss map, the loss shown and the truth agree."""

    def _read(self, out: Output) -> Loss:
        return Loss([loss_label(y, out) for y in self.labels], self.loss_fn)

    def scores(self, out: Output) -> torch.Tensor:
        return self._read(out).scores(out)

    def classes(self, out: Output) -> torch.Tensor:
        return self._read(out).classes(out)


Inputs = tuple[torch.Tensor, ...]
Item = Callable[[str, int], tuple[Inputs, Any, Any]]


class AnalysisStore:
    """``get(key)``: the CamResult of one sample, from the LRU or computed with the model's
    engine under ``lock`` (the session's model lock). ``item(slice, id)`` gives a sample's
    ``(inputs, label, raw item)``. ``depths(model)`` / ``num_classes(model)``: what an
    analysis of that model showed, ``None`` before the first one (these never compute)."""

    def __init__(
        self,
        engines: Mapping[str, CamEngine],
        item: Item,
        lock: ModelLock,
        size: int = 64,
    ) -> None:
        self.engines = engines
        self.item = item
        self.lock = lock
        self._cache: LRU[CamResult] = LRU(size)
        self._depths: dict[str, list[int]] = {}
        self._classes: dict[str, int] = {}
        self._tasks: dict[str, str] = {}

    def get(self, key: AnalysisKey) -> CamResult:
        with self.lock:
            hit = self._cache.get_item(key)
            if hit is None and isinstance(key.label, int) and key.contrast is None:
                # the predicted class's map is the map of label None when that is the class
                pred = self._cache.get_item(replace(key, label=None))
                if pred is not None and int(pred.predictions[0]) == key.label:
                    hit = pred
                    self._cache.put(key, hit)
            if hit is not None:
                return hit
            inputs, true_label, _ = self.item(key.slice, key.id)
            x = inputs[0] if len(inputs) == 1 else tuple(inputs)
            target = key.target(true_label)
            try:
                res = self.engines[key.model].explain(
                    x, target, algorithm=key.algorithm, connection=key.connection
                )
            except Exception as exc:  # the model's error, said of the sample it raised on
                said = said_of(exc, f"sample {key.id}")
                if said is None:
                    raise
                raise said from exc.__cause__
            self._cache.put(key, res)
            self._depths.setdefault(key.model, [int(d) for d in res.depths])
            self._classes.setdefault(key.model, int(res.num_classes))
            self._tasks.setdefault(key.model, res.task)
            return res

    def depths(self, model: str) -> list[int] | None:
        return self._depths.get(model)

    def num_classes(self, model: str) -> int | None:
        return self._classes.get(model)

    def task(self, model: str) -> str | None:
        """What the model's output was read as (``cam.outputs``), once analysed."""
        return self._tasks.get(model)

    def __len__(self) -> int:
        return len(self._cache)
