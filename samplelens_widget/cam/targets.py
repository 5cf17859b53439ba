"""What a map explains: a class's score, the loss, a contrast, a region, or any score.

``explain(inputs, target)`` takes one of:

- ``None`` (each sample's predicted class), an int, or one int per sample: that class's score
  (``outputs.Output.class_scores``: the logit; a binary logit negated for class 0; for a
  segmentation the class's scores over the pixels predicted as that class);
- :class:`Loss`: each sample's own loss against its true label;
- :class:`Contrast`: score ``a`` minus score ``b``, why ``a`` rather than ``b``;
- :class:`Region`: for dense outputs ``(N, K, H, W)``, the class's scores summed over a mask;
- any callable ``f(output) -> (N,)``, given the model's output as it came (a tensor, a dict, a
  tuple or an output object).

The map shows what in the input raises the score: for ``Loss``, what pushes the model toward
its mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from samplelens_widget.cam.outputs import Output, region_scores

__all__ = ["Class", "Contrast", "Loss", "Region", "Score", "Target", "as_target"]


def _ints(value: object, n: int, argname: str) -> list[int]:
    """One int, or one per sample, as ``n`` ints."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.tolist()
    items = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(items) != n:
        raise ValueError(
            f"{argname}: got {len(items)} labels for a batch of {n} samples; give one int or "
            f"one per sample"
        )
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{argname}: expected an int class index, got {v!r}")
        out.append(int(v))
    return out


class Target:
    """Base of the targets: ``scores(output) -> (N,)`` differentiable scores, ``classes`` the
    class each sample's map is about (``-1``: none), ``title`` a short description."""

    title = "score"

    def scores(self, out: Output) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def classes(self, out: Output) -> torch.Tensor:
        return torch.full((out.n,), -1, dtype=torch.long)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.title})"


@dataclass(repr=False)
class Class(Target):
    """The score of ``label`` (an int, one per sample, or ``None``: each sample's prediction)."""

    label: Any = None
    argname: str = "label"

    @property
    def title(self) -> str:  # type: ignore[override]
        return "predicted class" if self.label is None else f"class {self.label}"

    def classes(self, out: Output) -> torch.Tensor:
        if self.label is None:
            return out.predictions()
        labels = _ints(self.label, out.n, self.argname)
        out.check_classes(labels, self.argname)
        return torch.as_tensor(labels, dtype=torch.long, device=out.scores.device)

    def scores(self, out: Output) -> torch.Tensor:
        return out.class_scores(self.classes(out).to(out.scores.device))


@dataclass(repr=False)
class Loss(Target):
    """Each sample's loss against its true label ``labels`` (one per sample: class indices, a
    binary 0/1, multi-hot rows for multi-label, values for a regression, ``(N, H, W)`` masks
    for a segmentation). ``loss_fn(output, labels) -> (N,)`` replaces the default: cross
    entropy for multi-class logits and segmentations (the pixels' mean), binary cross entropy
    with logits for one logit or multi-label outputs, squared error for a regression."""

    labels: Any
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None
    title = "loss (true label)"

    def _labels(self, out: Output) -> torch.Tensor:
        y = self.labels
        if y is None:
            raise ValueError("Loss: labels is None; the loss needs each sample's true label")
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        y = y.to(out.scores.device)
        if y.dim() == 0:
            y = y[None].expand(out.n)
        if y.shape[0] != out.n:
            raise ValueError(
                f"Loss: labels has {y.shape[0]} rows for a batch of {out.n} samples; give one "
                f"label per sample"
            )
        return y

    def classes(self, out: Output) -> torch.Tensor:
        y = self._labels(out)
        if out.task in ("multiclass", "binary") and y.dim() == 1:
            return y.long().cpu()
        return super().classes(out)

    def scores(self, out: Output) -> torch.Tensor:
        y = self._labels(out)
        if self.loss_fn is not None:
            return self.loss_fn(out.raw, y)
        s = out.scores
        if out.task == "multiclass":
            if y.dim() != 1 or y.is_floating_point():
                raise ValueError(
                    f"Loss: labels of a multi-class model are class indices (N,), got "
                    f"{tuple(y.shape)} {y.dtype}"
                )
            out.check_classes([int(v) for v in y.tolist()], "Loss: labels")
            return F.cross_entropy(s, y.long(), reduction="none")
        if out.task == "binary":
            return F.binary_cross_entropy_with_logits(s[:, 0], y.float().reshape(out.n),
                                                      reduction="none")
        if out.task == "multilabel":
            if tuple(y.shape) != tuple(s.shape):
                raise ValueError(
                    f"Loss: labels of a multi-label model are multi-hot rows {tuple(s.shape)}, "
                    f"got {tuple(y.shape)}"
                )
            return F.binary_cross_entropy_with_logits(s, y.float(), reduction="none").mean(1)
        if out.task == "regression":
            return ((s - y.float().reshape(s.shape)) ** 2).mean(dim=1)
        if tuple(y.shape) != (out.n, *s.shape[2:]):
            raise ValueError(
                f"Loss: labels of a segmentation are masks {(out.n, *s.shape[2:])} of class "
                f"indices, got {tuple(y.shape)}"
            )
        return F.cross_entropy(s, y.long(), reduction="none").flatten(1).mean(dim=1)


@dataclass(repr=False)
class Contrast(Target):
    """Score ``a`` minus score ``b`` (ints, or one per sample; ``a=None``: each sample's
    predicted class): why ``a`` rather than ``b``."""

    a: Any
    b: Any

    @property
    def title(self) -> str:  # type: ignore[override]
        a = "the predicted class" if self.a is None else f"class {self.a}"
        return f"{a} rather than class {self.b}"

    def classes(self, out: Output) -> torch.Tensor:
        if self.a is None:
            return out.predictions().cpu()
        a = _ints(self.a, out.n, "Contrast: a")
        out.check_classes(a, "Contrast: a")
        return torch.as_tensor(a, dtype=torch.long)

    def scores(self, out: Output) -> torch.Tensor:
        dev = out.scores.device
        b = _ints(self.b, out.n, "Contrast: b")
        out.check_classes(b, "Contrast: b")
        ta = self.classes(out).to(dev)
        tb = torch.as_tensor(b, dtype=torch.long, device=dev)
        return out.class_scores(ta) - out.class_scores(tb)


@dataclass(repr=False)
class Region(Target):
    """For dense outputs ``(N, K, H, W)``: the scores of ``class_index`` summed over ``mask``
    (``(H, W)`` or ``(N, H, W)``, bool or weights; ``None``: the pixels predicted as that
    class). pytorch-grad-cam's ``SemanticSegmentationTarget``."""

    class_index: Any
    mask: Any = None

    @property
    def title(self) -> str:  # type: ignore[override]
        where = "predicted pixels" if self.mask is None else "mask"
        return f"class {self.class_index} over its {where}"

    def classes(self, out: Output) -> torch.Tensor:
        c = _ints(self.class_index, out.n, "Region: class_index")
        return torch.as_tensor(c, dtype=torch.long)

    def scores(self, out: Output) -> torch.Tensor:
        s = out.scores
        if s.dim() != 4:
            raise ValueError(
                f"Region: needs dense outputs (N, K, H, W), the model's output is "
                f"{tuple(s.shape)}; for a classifier explain a class (an int) or a Contrast"
            )
        k = int(s.shape[1])
        c = _ints(self.class_index, out.n, "Region: class_index")
        for v in c:
            if not 0 <= v < k:
                raise ValueError(
                    f"Region: class_index {v} is out of range; the model has {k} classes, "
                    f"allowed: 0..{k - 1}"
                )
        classes = torch.as_tensor(c, dtype=torch.long, device=s.device)
        if self.mask is None:
            mask = (out.pixel_predictions() == classes[:, None, None]).to(s.dtype)
        else:
            m = self.mask
            mask = torch.as_tensor(np.asarray(m) if not isinstance(m, torch.Tensor) else m)
            mask = mask.to(s.device, s.dtype)
            if mask.dim() == 2:
                mask = mask[None].expand(out.n, -1, -1)
            if tuple(mask.shape) != (out.n, *s.shape[2:]):
                raise ValueError(
                    f"Region: mask has shape {tuple(mask.shape)}; the output's grid is "
                    f"{tuple(s.shape[2:])}, allowed: {tuple(s.shape[2:])} or "
                    f"{(out.n, *s.shape[2:])}"
                )
        return region_scores(s, classes, mask)


@dataclass(repr=False)
class Score(Target):
    """Any score: ``fn(output) -> (N,)``, given the model's output as it came."""

    fn: Callable[[Any], torch.Tensor]

    @property
    def title(self) -> str:  # type: ignore[override]
        return getattr(self.fn, "__name__", "score")

    def scores(self, out: Output) -> torch.Tensor:
        s = self.fn(out.raw)
        if not isinstance(s, torch.Tensor):
            raise TypeError(
                f"target: the callable returned {type(s).__name__}; it must return a tensor "
                f"(N,) of scores, one per sample"
            )
        if s.dim() == 2 and s.shape[1] == 1:
            s = s[:, 0]
        if tuple(s.shape) != (out.n,):
            raise ValueError(
                f"target: the callable returned shape {tuple(s.shape)}; it must return (N,) = "
                f"({out.n},), one score per sample"
            )
        return s


def as_target(target: object, label: object = None) -> Target:
    """``explain``'s ``target`` (or its older ``label=``) as a :class:`Target`."""
    if target is not None and label is not None:
        raise ValueError("label: give target= or label=, not both (label= is target= for a class)")
    if target is None:
        return Class(label, "label")
    if isinstance(target, Target):
        return target
    if isinstance(target, (int, np.integer, list, tuple, torch.Tensor, np.ndarray)) and not (
        isinstance(target, bool)
    ):
        return Class(target, "target")
    if callable(target):
        return Score(target)
    raise TypeError(
        f"target: expected None, a class index (int or one per sample), Loss, Contrast, Region "
        f"or a callable output -> (N,), got {type(target).__name__} {target!r}"[:300]
    )
