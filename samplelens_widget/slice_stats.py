"""Predictions of whole slices: accuracy, confusion, the sample list's rows, the colour columns.

A whole slice's statistics come from its one pass (``slice_pass.py``, which also gives the
population its features), in batches, each under the session's model lock, so that an
interactive analysis never waits long behind them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from samplelens_widget.cam import CamEngine
from samplelens_widget.cam.capture import eval_mode
from samplelens_widget.cam.errors import model_raised
from samplelens_widget.cam.outputs import Output, read_output
from samplelens_widget.cam.targets import Loss
from samplelens_widget.model_lock import ModelLock
from samplelens_widget.protocol.messages import Row
from samplelens_widget.slice_pass import SlicePass

__all__ = [
    "SliceStats", "class_label", "class_mask", "class_set", "loss_label", "pixel_accuracies",
    "sample_losses",
]

Item = Callable[[str, int], tuple[tuple[torch.Tensor, ...], Any, Any]]


class SliceStats:
    """``predict`` some samples, ``of_slice`` a whole slice (its one pass, ``passes``: run once
    per (model, slice), even when two threads ask at once), ``rows`` for the sample list.
    ``item(slice, id)`` gives ``(inputs, label, raw item)``."""

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        engines: Mapping[str, CamEngine],
        item: Item,
        slice_len: Callable[[str], int],
        lock: ModelLock,
        batch_size: int = 16,
    ) -> None:
        self.models = models
        self.engines = engines
        self.item = item
        self.slice_len = slice_len
        self.lock = lock
        self.batch_size = batch_size
        self.slice_batch_size = max(batch_size, 128)
        self._num_classes: dict[str, int] = {}
        #: the one pass over each (model, slice): its statistics and the population's features
        self.passes = SlicePass(self)

    # -------------------------------------------------------------- classes
    def num_classes(self, model_name: str, slice_name: str) -> int:
        """The model's number of classes (one forward of the slice's first sample if unknown)."""
        if model_name not in self._num_classes:
            stats = self.known(model_name, slice_name)
            if stats is not None:
                self._num_classes[model_name] = int(stats["num_classes"])
            else:
                inputs, _, _ = self.item(slice_name, 0)
                out = self.outputs([inputs], model_name, ids=[0])
                self._num_classes[model_name] = out.num_classes
        return self._num_classes[model_name]

    def known_num_classes(self, model_name: str) -> int | None:
        return self._num_classes.get(model_name)

    # ---------------------------------------------------------- predictions
    def outputs(
        self, batch_inputs: list[tuple[torch.Tensor, ...]], model_name: str,
        ids: Sequence[int] | None = None,
    ) -> Output:
        """The model's output for some samples' inputs, read for its task (no gradient). A
        sample the model raises on is named in the error (``ids``: the samples' ids)."""
        model = self.models[model_name]
        engine = self.engines[model_name]
        device = engine.device
        n_in = len(batch_inputs[0])
        with self.lock, eval_mode(model), torch.no_grad():
            try:
                xs = [torch.stack([b[j] for b in batch_inputs]).to(device) for j in range(n_in)]
                outs = [model(*xs)]
            except Exception:  # ragged sizes, or a sample the model raises on: one at a time
                outs = [
                    _call(model, [t[None].to(device) for t in b], None if ids is None else ids[r])
                    for r, b in enumerate(batch_inputs)
                ]
        read = [read_output(o, engine.task) for o in outs]
        scores = torch.cat([r.scores.detach().float().cpu() for r in read])
        return Output(scores, read[0].task, None)

    def predict(
        self, model_name: str, slice_name: str, ids: list[int], batch_size: int | None = None
    ) -> dict[str, np.ndarray]:
        """Predictions, true labels and losses of some samples (batched). A sample without a
        class label (``None``, or a label that is not a class index) has label ``-1`` and loss
        NaN; the loss is ``targets.Loss``'s (cross entropy, or binary cross entropy for one
        logit). A multi-label model adds ``label_sets`` and ``prediction_sets`` (class lists;
        a label that is no multi-hot row: None) and ``correct`` (1 where the two sets are equal,
        0 where they differ, -1 without a label)."""
        preds, labels, losses, confs = [], [], [], []
        label_sets: list[list[int] | None] = []
        pred_sets: list[list[int]] = []
        pixel_acc: list[float] = []
        bs = batch_size or self.batch_size
        for start in range(0, len(ids), bs):
            chunk = ids[start : start + bs]
            items = [self.item(slice_name, i) for i in chunk]
            out = self.outputs([it[0] for it in items], model_name, ids=chunk)
            k = out.num_classes
            # a regression's targets are values, not classes: no class label, no accuracy
            ys = [None if out.task == "regression" else class_label(it[1], k, out.task)
                  for it in items]
            preds += out.predictions().tolist()
            confs += _confidences(out)
            labels += [-1 if y is None else y for y in ys]
            losses += sample_losses(out, [it[1] for it in items])
            if out.task == "multilabel":
                label_sets += [class_set(it[1], k) for it in items]
                pred_sets += out.predicted_sets()
            if out.task == "segmentation":
                pixel_acc += pixel_accuracies(out, [it[1] for it in items])
            self._num_classes.setdefault(model_name, k)
        p: dict[str, Any] = {
            "predictions": np.asarray(preds, dtype=np.int64),
            "labels": np.asarray(labels, dtype=np.int64),
            "losses": np.asarray(losses, dtype=np.float64),
            "confidences": np.asarray(confs, dtype=np.float64),
        }
        if pixel_acc:
            p["pixel_accuracy"] = np.asarray(pixel_acc, dtype=np.float64)
        if label_sets or pred_sets:
            p["label_sets"], p["prediction_sets"] = label_sets, pred_sets
        if len(label_sets) == len(ids) and ids:
            p["correct"] = np.asarray(
                [-1 if y is None else int(y == q) for y, q in zip(label_sets, pred_sets,
                                                                  strict=True)],
                dtype=np.int64,
            )
        return p

    # ---------------------------------------------------------------- slices
    def of_slice(self, model_name: str, slice_name: str) -> dict[str, Any]:
        """Predictions of the whole slice (its one pass, kept per (model, slice)):
        ``predictions``, ``labels``, ``losses``, ``confusion``, ``accuracy``, ``num_classes``
        (see ``slice_pass.summary``)."""
        return self.passes.result(model_name, slice_name).stats

    def known(self, model_name: str, slice_name: str) -> dict[str, Any] | None:
        """The slice's statistics if already computed (never computes)."""
        found = self.passes.known(model_name, slice_name)
        return None if found is None else found.stats

    def rows(self, model_name: str, slice_name: str, ids: list[int]) -> list[Row]:
        """Sample-list rows: id, true label, prediction, loss, and a multi-label model's label
        and prediction sets (from the slice's statistics when they are computed; one bad sample
        leaves its own row empty, not the others)."""
        stats = self.known(model_name, slice_name)
        if stats is not None:
            return [_row(stats, i, i) for i in ids]
        try:
            p = self.predict(model_name, slice_name, ids)
            return [_row(p, i, r) for r, i in enumerate(ids)]
        except Exception:  # one bad sample must not hide the others: one at a time
            out: list[Row] = []
            for i in ids:
                try:
                    out.append(_row(self.predict(model_name, slice_name, [i]), i, 0))
                except Exception:
                    out.append({"id": int(i), "label": None, "prediction": None, "loss": None})
            return out


def _call(model: nn.Module, xs: list[torch.Tensor], sample: int | None) -> Any:
    """``model(*xs)`` of one sample; its error as the model's on that sample (``errors``)."""
    try:
        return model(*xs)
    except torch.OutOfMemoryError:
        raise
    except Exception as err:
        where = "the inputs" if sample is None else f"sample {sample}"
        raise model_raised(err, xs, where) from err


def _confidences(out: Output) -> list[float]:
    """The probability of each sample's predicted class (NaN for a regression)."""
    probs = out.probabilities()
    if probs is None:
        return [math.nan] * out.n
    pred = out.predictions().to(probs.device)
    return probs.gather(1, pred[:, None])[:, 0].double().tolist()


def _row(p: Mapping[str, Any], i: int, at: int) -> Row:
    """The row of sample ``i``, at index ``at`` of ``predict``'s arrays ``p`` (``at == i`` in
    a slice's statistics)."""
    y, pred, loss = int(p["labels"][at]), int(p["predictions"][at]), float(p["losses"][at])
    conf = float(p["confidences"][at]) if "confidences" in p else math.nan
    row: Row = {
        "id": int(i),
        "label": None if y < 0 else y,
        "prediction": None if pred < 0 else pred,
        "loss": None if math.isnan(loss) else loss,
        "confidence": None if math.isnan(conf) else conf,
    }
    if "label_sets" in p:
        row["label_set"] = p["label_sets"][at]
        row["prediction_set"] = p["prediction_sets"][at]
    return row


def class_label(y: Any, k: int, task: str | None = None) -> int | None:
    """A dataset label as a class index in ``0..k-1``, or None (no label, or not a class).

    An int (a tensor or numpy scalar of one) is itself; a one-hot or probability row (1-D,
    ``k`` values ``>= 0`` summing to 1 within 1e-3) is its argmax, the first of equal ones (a
    soft label's loss is then the cross entropy against that class, not a soft cross entropy).
    A multi-label model's (``task="multilabel"``) rows stay rows: None here, see ``class_set``.
    """
    if isinstance(y, torch.Tensor) and y.numel() == 1:
        y = y.item()
    if isinstance(y, np.generic):
        y = y.item()
    if isinstance(y, (torch.Tensor, np.ndarray)) and task != "multilabel":
        row = torch.as_tensor(y).detach().cpu().double()
        if (
            row.dim() == 1 and row.shape[0] == k and bool((row >= 0).all())
            and abs(float(row.sum()) - 1.0) <= 1e-3
        ):
            return int(row.argmax())
        return None
    if isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < k:
        return None
    return y


def loss_label(y: Any, out: Output) -> Any:
    """The label ``targets.Loss`` gets for a sample labelled ``y``: a multi-class or binary
    model's one-hot or probability row as its class (``class_label``), any other label as it
    is (so that the loss, the truth shown and "correct" agree)."""
    if out.task in ("multiclass", "binary"):
        c = class_label(y, out.num_classes, out.task)
        if c is not None:
            return c
    return y


def _label_tensor(y: Any) -> torch.Tensor | None:
    """A label of several values as a tensor, or None (no label, a scalar, not numbers)."""
    if y is None or isinstance(y, (int, float, str, bool)):
        return None
    try:
        return torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    except (TypeError, ValueError):
        return None


def class_set(y: Any, k: int) -> list[int] | None:
    """A multi-label dataset label (a multi-hot row of ``k`` values in ``[0, 1]``, read at 0.5)
    as its sorted classes, or None (no label, or not such a row)."""
    t = _label_tensor(y)
    if t is None:
        return None
    if t.dim() != 1 or t.shape[0] != k:
        return None
    t = t.float()
    if t.numel() and (float(t.min()) < 0 or float(t.max()) > 1):
        return None
    return [int(c) for c in torch.nonzero(t >= 0.5).flatten().tolist()]


def class_mask(y: Any, grid: tuple[int, ...], k: int) -> torch.Tensor | None:
    """A dataset label as a segmentation mask ``(H, W)`` of class indices on ``grid``, or None
    (no mask, another size, or values that are not classes)."""
    t = _label_tensor(y)
    if t is None:
        return None
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if tuple(t.shape) != tuple(grid) or t.is_floating_point() and not bool((t == t.round()).all()):
        return None
    t = t.long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
        return None
    return t


def pixel_accuracies(out: Output, labels: Sequence[Any]) -> list[float]:
    """A segmentation's share of pixels predicted as their true mask's class, per sample (NaN
    where the label is no mask)."""
    grid = tuple(out.scores.shape[2:])
    px = out.pixel_predictions().cpu()
    acc = []
    for r, y in enumerate(labels):
        mask = class_mask(y, grid, out.num_classes)
        acc.append(math.nan if mask is None else float((px[r] == mask).float().mean()))
    return acc


def sample_losses(out: Output, labels: Sequence[Any]) -> list[float]:
    """Each sample's loss (``targets.Loss``) against its dataset label: cross entropy, or binary
    cross entropy for one logit, where the label is a class; a segmentation's mean pixel loss
    where it is a mask; the mean binary cross entropy over the classes where a multi-label
    model's label is a multi-hot row; NaN where there is no such label (or the task has no
    class labels)."""
    loss = [math.nan] * out.n
    k = out.num_classes
    if out.task in ("multiclass", "binary"):
        ys = [class_label(y, k, out.task) for y in labels]
        rows = [r for r, y in enumerate(ys) if y is not None]
        if rows:
            sub = Output(out.scores[rows], out.task, None)
            values = Loss([ys[r] for r in rows]).scores(sub).tolist()
            for r, v in zip(rows, values, strict=True):
                loss[r] = float(v)
    elif out.task == "multilabel":
        for r, y in enumerate(labels):
            if class_set(y, k) is not None:
                hot = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
                sub = Output(out.scores[r : r + 1], out.task, None)
                loss[r] = float(Loss(hot.float()[None]).scores(sub)[0])
    elif out.task == "segmentation":
        grid = tuple(out.scores.shape[2:])
        for r, y in enumerate(labels):
            mask = class_mask(y, grid, k)
            if mask is not None:
                sub = Output(out.scores[r : r + 1], out.task, None)
                loss[r] = float(Loss(mask[None]).scores(sub)[0])
    return loss
