"""What a model's output is, by its shape and the ``task``: scores, probabilities, predictions.

``read_output(output, task)`` finds the scores in what the model returned (a tensor, a tuple
or list whose first item is one, a mapping's ``"logits"`` or ``"out"`` entry or first value,
an object's ``.logits``) and says which task they serve:

============  ==============================  ====================  ========================
task          scores                          probabilities         class ``c`` explained as
============  ==============================  ====================  ========================
multiclass    ``(N, K)``, K >= 2 (default)    softmax               logit ``c``
multilabel    ``(N, K)`` (``task=`` only)     sigmoid per class     logit ``c``
binary        ``(N,)`` or ``(N, 1)`` (default) ``[1 - s, s]``, s =   1: the logit; 0: minus
                                              sigmoid               the logit
regression    ``(N,)`` or ``(N, K)``          none                  output ``c``
              (``task=`` only)
segmentation  ``(N, K, H, W)`` (default)      softmax per pixel,    the class's scores over
                                              averaged              the pixels predicted as
                                                                    ``c``
============  ==============================  ====================  ========================

The engine never guesses between softmax and sigmoid beyond this table: ``(N, K)`` is read as
multi-class unless ``task="multilabel"``; one score per sample as a binary logit unless
``task="regression"``. The result says which it used (``CamResult.task``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TASKS", "Output", "check_task", "read_output"]

TASKS = ("multiclass", "multilabel", "binary", "regression", "segmentation")
_ALLOWED = {  # (rank of the scores, one score per sample) -> tasks, the default first
    (2, False): ("multiclass", "multilabel", "regression"),
    (2, True): ("binary", "regression"),
    (4, False): ("segmentation",),
    (4, True): ("segmentation",),
}


def check_task(task: object) -> str | None:
    if task is None:
        return None
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(f"task: {task!r} is unknown; allowed: {list(TASKS)} or None (by shape)")
    return task


def _describe(x: object) -> str:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return f"{type(x).__name__} of shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}"[:200]


def main_tensor(output: object) -> torch.Tensor | None:
    """The score tensor in what a model returned (nested containers unwrap in turn)."""
    for _ in range(3):
        if isinstance(output, (tuple, list)) and output:
            output = output[0]
        elif isinstance(output, Mapping) and output:
            key = next((k for k in ("logits", "out") if k in output), None)
            output = output[key] if key is not None else next(iter(output.values()))
        elif not isinstance(output, torch.Tensor) and hasattr(output, "logits"):
            output = output.logits
        else:
            break
    return output if isinstance(output, torch.Tensor) else None


@dataclass
class Output:
    """The model's output read for a task: ``scores`` ``(N, K)`` or ``(N, K, H, W)`` (one score
    per sample is ``(N, 1)``), ``raw`` as the model returned it."""

    scores: torch.Tensor
    task: str
    raw: object

    @property
    def n(self) -> int:
        return int(self.scores.shape[0])

    @property
    def num_classes(self) -> int:
        """Classes a label can name: 2 for a binary logit, the outputs of a regression."""
        return 2 if self.task == "binary" else int(self.scores.shape[1])

    # ------------------------------------------------------------------ reading
    def probabilities(self) -> torch.Tensor | None:
        """``(N, num_classes)``, or ``None`` for a regression."""
        s = self.scores.detach().float()
        if self.task == "multiclass":
            return torch.softmax(s, dim=1)
        if self.task == "multilabel":
            return torch.sigmoid(s)
        if self.task == "binary":
            p = torch.sigmoid(s[:, 0])
            return torch.stack([1 - p, p], dim=1)
        if self.task == "segmentation":
            return torch.softmax(s, dim=1).mean(dim=(2, 3))
        return None

    def pixel_predictions(self) -> torch.Tensor:
        """``(N, H, W)`` class per pixel (segmentation only)."""
        return self.scores.detach().argmax(dim=1)

    def predictions(self) -> torch.Tensor:
        """``(N,)`` the predicted class: the arg-max (binary: logit > 0; multi-label: the
        top-scoring label; segmentation: the class of the most pixels; regression: output 0)."""
        s = self.scores.detach()
        if self.task == "binary":
            return (s[:, 0] > 0).long()
        if self.task == "regression":
            return torch.zeros(self.n, dtype=torch.long, device=s.device)
        if self.task == "segmentation":
            k = s.shape[1]
            px = self.pixel_predictions().flatten(1)
            counts = F.one_hot(px, k).sum(dim=1)
            return counts.argmax(dim=1)
        return s.argmax(dim=1)

    def predicted_sets(self) -> list[list[int]]:
        """A multi-label model's predicted classes per sample: those of sigmoid >= 0.5 (a
        logit >= 0), sorted."""
        on = self.scores.detach() >= 0
        return [[int(c) for c in torch.nonzero(row).flatten().tolist()] for row in on]

    def class_scores(self, classes: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the score that stands for class ``classes[i]`` of each sample (see the
        module's table)."""
        s = self.scores
        if self.task == "binary":
            logit = s[:, 0]
            return torch.where(classes == 1, logit, -logit)
        if self.task == "segmentation":
            mask = (self.pixel_predictions() == classes[:, None, None]).to(s.dtype)
            return region_scores(s, classes, mask)
        return s.gather(1, classes[:, None])[:, 0]

    def check_classes(self, classes: list[int], argname: str) -> None:
        k = self.num_classes
        for c in classes:
            if not 0 <= c < k:
                what = {"binary": "a binary logit has classes 0 (negative) and 1 (positive)",
                        "regression": f"the model has {k} output(s)"}.get(
                    self.task, f"the model has {k} classes")
                raise ValueError(
                    f"{argname}: {c} is out of range; {what}, allowed: 0..{k - 1}"
                    + (" or None (the predicted class)" if argname == "label" else "")
                )


def region_scores(scores: torch.Tensor, classes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the scores of class ``classes[i]`` summed over ``mask[i]`` (``(N, H, W)``)."""
    picked = scores.gather(1, classes[:, None, None, None].expand(-1, 1, *scores.shape[2:]))[:, 0]
    return (picked * mask).flatten(1).sum(dim=1)


def read_output(output: object, task: str | None = None) -> Output:
    """Find the scores in the model's output and check them against ``task`` (see above)."""
    scores = main_tensor(output)
    if scores is None or scores.dim() not in (1, 2, 4) or not scores.is_floating_point():
        raise ValueError(
            f"model: its output is {_describe(scores if scores is not None else output)}; the "
            f"engine reads logits (N, K), one score per sample (N,) or (N, 1), or dense scores "
            f"(N, K, H, W); for another output, explain a callable target "
            f"(target=lambda output: ... -> (N,))"
        )
    if scores.dim() == 1:
        scores = scores[:, None]
    one = scores.shape[1] == 1
    allowed = _ALLOWED[(scores.dim(), one)]
    if task is None:
        task = allowed[0]
    elif task not in allowed:
        shape = tuple(scores.shape)
        raise ValueError(
            f"task: {task!r} does not fit an output of shape {shape}; allowed for it: "
            f"{list(allowed)}"
        )
    return Output(scores, task, output)
