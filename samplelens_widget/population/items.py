"""Dataset items as the engine reads them.

A dataset is map-style (``len(ds)``, ``ds[i]``); an item is ``(input, label)``,
``((input_a, input_b, ...), label)`` or a dict with ``"inputs"`` (or ``"input"``) and ``"label"``.
This is the one item splitter of the project: the widget imports it from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["dataset_length", "split_item"]


Label = int | float | torch.Tensor | None


def split_item(item: Any) -> tuple[tuple[torch.Tensor, ...], Label]:
    """``(inputs, label)`` of one dataset item; ``inputs`` is a tuple of tensors, one per input.

    Arrays (numpy, lists of numbers) become tensors. The label is an ``int`` (a number, or a
    tensor or array of one element), a tensor (a label of several values: a segmentation mask,
    multi-hot labels) or ``None`` (a dict without ``"label"``, a ``None`` label or an empty
    label tensor).
    """
    if isinstance(item, dict):
        if "inputs" in item:
            x = item["inputs"]
        elif "input" in item:
            x = item["input"]
        else:
            raise TypeError(
                f"dataset item is a dict with keys {sorted(map(str, item))!r}; expected 'inputs' "
                "(or 'input') and 'label'"
            )
        y = item.get("label")
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        x, y = item
    else:
        raise TypeError(
            f"dataset item is {type(item).__name__}; expected (input, label), "
            "((input_a, input_b, ...), label) or a dict with 'inputs' and 'label'"
        )
    xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    if not xs:
        raise TypeError("dataset item has no inputs (an empty tuple/list of inputs)")
    out = []
    for t in xs:
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(np.asarray(t))
        out.append(t)
    label: Label
    if y is None:
        label = None
    else:
        if not isinstance(y, torch.Tensor) and not isinstance(y, (int, float, np.generic)):
            y = torch.as_tensor(np.asarray(y))
        if isinstance(y, torch.Tensor):
            if not y.numel():
                return tuple(out), None
            if y.numel() > 1:
                return tuple(out), y
            y = y.item()
        value = float(y)
        label = int(value) if value.is_integer() else value  # a regression's target stays a float
    return tuple(out), label


def dataset_length(dataset: Any) -> int:
    """``len(dataset)``, or a ``TypeError`` naming the argument when it is not a map-style one."""
    try:
        return len(dataset)
    except TypeError as err:
        raise TypeError(
            f"dataset: expected a map-style data set (len(ds), ds[i]), got {type(dataset).__name__}"
        ) from err
