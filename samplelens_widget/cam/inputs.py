"""Checking and shaping what the caller passes: inputs, algorithm, connection (targets and
outputs: ``targets.py``, ``outputs.py``)."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def to_tensors(
    inputs: object, model: nn.Module | None = None, stacklevel: int = 2
) -> list[torch.Tensor]:
    """What ``explain`` takes, as one tensor per input of ``model`` (``model(*tensors)``).

    One tensor is one input (a sample (C,H,W) or a batch (N,C,H,W)). A tuple/list whose length
    fits the positional parameters of ``model.forward`` (``inspect.signature``: the required
    ones up to all of them) is one tensor per input. One that does not fit, for a model that
    takes one input, is read as users hold batches:

    - ``(inputs, labels)`` as a DataLoader gives it (``labels`` a 1-D integer tensor or a list
      of ints, one per sample of ``inputs``; or a sample and its int label): ``inputs`` is
      explained and a warning says so. The labels are never taken as the target: ``target=None``
      still explains each sample's predicted class (pass ``target=labels`` or
      ``targets.Loss(labels)`` for them). Using the inputs rather than refusing: the meaning is
      unambiguous (the model cannot take the labels) and it is the batch the user holds;
    - same-shaped samples ``[x1, x2, ...]`` (C,H,W) are stacked into one batch (N,C,H,W).

    Anything else (ragged samples, a count that fits no reading, a forward that needs more
    inputs than given) is an ``inputs:`` error naming the shapes and what is allowed, raised
    before the model is called. Without a readable signature (``*args``, a scripted module),
    a tuple/list is one tensor per input, as given.
    """
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        items: list[object] = [inputs]
    elif isinstance(inputs, (tuple, list)) and inputs:
        items = list(inputs)
    else:
        raise TypeError(
            f"inputs: expected a tensor (C,H,W) or (N,C,H,W), or a non-empty tuple/list of "
            f"tensors, got {_describe(inputs)}"
        )
    items = [torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in items]
    span = positional(model) if model is not None else None
    if span is not None and not span.fits(len(items)):
        items = _as_batch(items, span, isinstance(inputs, (tuple, list)), stacklevel + 1)
    tensors = []
    for i, x in enumerate(items):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"inputs[{i}]: expected a tensor or numpy array, got {_describe(x)}")
        tensors.append(x)
    return tensors


@dataclass(frozen=True)
class Positional:
    """The positional parameters of a forward: ``names``, how many are ``required``, and
    ``most`` (``None``: any number, ``*args``)."""

    names: tuple[str, ...]
    required: int
    most: int | None

    def fits(self, count: int) -> bool:
        return self.required <= count and (self.most is None or count <= self.most)

    def takes(self) -> str:
        """``"1 input (x)"``, ``"2 inputs (a, b)"``, ``"1 to 2 inputs (x, mask)"``."""
        lo, hi = self.required, self.most
        count = f"{lo}" if hi == lo else f"{lo} or more" if hi is None else f"{lo} to {hi}"
        plural = "input" if hi == lo == 1 else "inputs"
        return f"{count} {plural} ({', '.join(self.names)})"


def positional(model: nn.Module) -> Positional | None:
    """``model.forward``'s positional parameters, or None where its signature is unknown or
    takes ``*args`` with nothing required."""
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return None
    names, required, most = [], 0, 0
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for p in sig.parameters.values():
        if p.kind in kinds:
            names.append(p.name)
            most += 1
            required += p.default is inspect.Parameter.empty
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            names.append(f"*{p.name}")
            if not required:
                return None
            return Positional(tuple(names), required, None)
    return Positional(tuple(names), required, most)


def _as_batch(
    items: list[object], span: Positional, is_list: bool, stacklevel: int
) -> list[object]:
    """A tuple/list whose length does not fit the forward, read as a batch (``to_tensors``)."""
    shapes = ", ".join(
        str(tuple(x.shape)) if isinstance(x, torch.Tensor) else _describe(x) for x in items
    )
    forward = f"a model whose forward takes {span.takes()}"
    if not is_list:  # one tensor for a forward that needs several
        raise ValueError(
            f"inputs: one tensor {shapes} for {forward}; allowed: a tuple of "
            f"{span.required} tensors, one per input"
        )
    one_input = span.fits(1)
    if one_input and _labels_pair(items):
        x = items[0]
        assert isinstance(x, torch.Tensor)
        warnings.warn(
            f"inputs: read as an (inputs, labels) pair from a DataLoader ({shapes}) for "
            f"{forward}: explaining inputs[0] {tuple(x.shape)}; the labels are not the target "
            f"(target=None explains each sample's predicted class; pass target=labels or "
            f"targets.Loss(labels) to explain them). Pass x alone to silence this warning",
            UserWarning,
            stacklevel=stacklevel,
        )
        return [x]
    tensors = [x for x in items if isinstance(x, torch.Tensor)]
    if len(tensors) < len(items):
        return items  # not tensors: to_tensors names the first one that is not
    samples = all(t.dim() == 3 for t in tensors)
    if one_input and samples:
        if len({tuple(t.shape) for t in tensors}) > 1:
            raise ValueError(
                f"inputs: {len(items)} samples of different shapes ({shapes}) for {forward}; a "
                f"list of samples is stacked into one batch, so they need one shape (C, H, W); "
                f"resize them to one size, or explain them one at a time"
            )
        return [torch.stack(tensors)]
    allowed = f"one tensor per input (a tuple of {span.required})"
    if one_input:
        allowed = (
            "one tensor (C,H,W) or (N,C,H,W), a list of same-shaped samples (C,H,W) (a batch), "
            "or an (inputs, labels) pair from a DataLoader"
        )
    raise ValueError(f"inputs: {len(items)} items ({shapes}) for {forward}; allowed: {allowed}")


def _labels_pair(items: list[object]) -> bool:
    """``(inputs (N, ...), labels)`` with one integer label per sample, or ``(sample, int)``."""
    x = items[0]
    if len(items) != 2 or not isinstance(x, torch.Tensor) or x.dim() < 2:
        return False
    y = items[1]
    if x.dim() == 3 and _is_int(y):  # a dataset item: one sample and its class
        return True
    n = x.shape[0]
    if isinstance(y, torch.Tensor):
        integer = not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool)
        return integer and y.dim() == 1 and y.shape[0] == n
    return isinstance(y, (list, tuple)) and len(y) == n and all(_is_int(v) for v in y)


def _is_int(v: object) -> bool:
    if isinstance(v, torch.Tensor) and v.dim() == 0:
        return not (v.is_floating_point() or v.is_complex() or v.dtype == torch.bool)
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def add_batch_dim(tensors: list[torch.Tensor], connection: int) -> list[torch.Tensor]:
    """A 3-D connection input is one sample: give every input a batch dimension of one."""
    x = tensors[connection]
    if x.dim() == 3:
        return [t.unsqueeze(0) for t in tensors]
    if x.dim() == 4:
        return tensors
    raise ValueError(
        f"inputs: input {connection} (the connection) has shape {tuple(x.shape)}; the heatmap "
        f"needs an image, (C,H,W) for one sample or (N,C,H,W) for a batch"
    )


def check_batch(tensors: list[torch.Tensor], connection: int) -> None:
    """Every input's first dimension is its batch (after ``add_batch_dim``): one size for all
    (0-d inputs aside)."""
    n = tensors[connection].shape[0]
    for i, t in enumerate(tensors):
        if t.dim() and t.shape[0] != n:
            raise ValueError(
                f"inputs: input {i} {tuple(t.shape)} has batch size {t.shape[0]} but input "
                f"{connection} (the connection) {tuple(tensors[connection].shape)} has {n}; "
                f"allowed: one batch size for every input (the first dimension; a 3-D "
                f"connection input is one sample of each input)"
            )


def check_connection(connection: object, n_inputs: int) -> int:
    if isinstance(connection, bool) or not isinstance(connection, (int, np.integer)):
        raise TypeError(f"connection: expected an int input index, got {connection!r}")
    if not 0 <= connection < n_inputs:
        raise ValueError(
            f"connection: {connection} is out of range; the model takes {n_inputs} input(s), "
            f"allowed: 0..{n_inputs - 1}"
        )
    return int(connection)


def check_algorithm(algorithm: object, allowed: Sequence[str]) -> str:
    if not isinstance(algorithm, str) or algorithm not in allowed:
        raise ValueError(f"algorithm: {algorithm!r} is unknown; allowed: {list(allowed)}")
    return algorithm


def _describe(x: object) -> str:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return f"{type(x).__name__} of shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}"[:200]
