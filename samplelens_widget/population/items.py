"""Dataset items as the engine reads them.

A dataset is map-style (``len(ds)``, ``ds[i]``: a ``torch`` dataset, a Hugging Face
``datasets.Dataset`` with ``.with_format("torch")`` or ``.set_transform(fn)``, a list); an item
is ``(input, label)``, ``((input_a, input_b, ...), label)`` or a dict with one of the input keys
``INPUT_KEYS`` (``"inputs"``, ``"input"``, ``"pixel_values"``, ``"image"``, ``"img"``, the first
found) and optionally one of ``LABEL_KEYS`` (``"label"``, ``"labels"``). Each input is a tensor,
a numpy array, a PIL image or a list of numbers; pictures (PIL images, ``uint8`` arrays) become
``(C, H, W)`` floats in ``[0, 1]`` as torchvision's ``ToTensor`` gives them
(``population/pictures.py``). This is the one item splitter of the project: the widget imports
it from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from samplelens_widget.population.pictures import as_input

__all__ = ["INPUT_KEYS", "LABEL_KEYS", "dataset_length", "split_item"]


Label = int | float | str | torch.Tensor | None
#: a dict item's keys, in the order they are looked for (Hugging Face's names after ours)
INPUT_KEYS = ("inputs", "input", "pixel_values", "image", "img")
LABEL_KEYS = ("label", "labels")


def split_item(item: Any) -> tuple[tuple[torch.Tensor, ...], Label]:
    """``(inputs, label)`` of one dataset item; ``inputs`` is a tuple of tensors, one per input.

    Inputs: see ``pictures.as_input`` (a ``TypeError`` naming the field when one cannot be an
    input). The label is an ``int`` (a number, or a tensor or array of one element), a ``str``
    (a class name: the session maps it through ``label_names``), a tensor (a label of several
    values: a one-hot or probability row, multi-hot labels, a segmentation mask) or ``None`` (a
    dict without a label key, a ``None`` label or an empty label tensor). Whether a row is one
    class or a set depends on the model: ``slice_stats.class_label`` / ``class_set``.
    """
    if isinstance(item, dict):
        key = next((k for k in INPUT_KEYS if k in item), None)
        if key is None:
            label_keys = " or ".join(map(repr, LABEL_KEYS))
            pairs = ", ".join(f"({k!r}, {label_keys})" for k in INPUT_KEYS)
            raise TypeError(
                f"dataset item is a dict with keys {sorted(map(str, item))!r}; expected an input "
                f"key and a label key, one of the pairs {pairs} (the label may be left out)"
            )
        x, field = item[key], repr(key)
        y = next((item[k] for k in LABEL_KEYS if k in item), None)
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        (x, y), field = item, "input"
    else:
        raise TypeError(
            f"dataset item is {type(item).__name__}; expected (input, label), "
            "((input_a, input_b, ...), label) or a dict such as {'inputs': x, 'label': y} or "
            "{'pixel_values': x, 'labels': y}"
        )
    xs = tuple(x) if isinstance(x, (tuple, list)) and not _nested_numbers(x) else (x,)
    if not xs:
        raise TypeError(f"dataset item: {field} is empty (no inputs)")
    many = len(xs) > 1 or xs[0] is not x
    out = [as_input(t, f"{field}[{j}]" if many else field) for j, t in enumerate(xs)]
    label: Label
    if y is None:
        label = None
    elif isinstance(y, str):
        label = y
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


def _nested_numbers(x: tuple[Any, ...] | list[Any]) -> bool:
    """A list of numbers or of lists (a ``datasets`` array column without a format): one input,
    not a list of inputs (those are tensors, arrays or images)."""
    return isinstance(x, list) and bool(x) and all(isinstance(v, (int, float, list)) for v in x)


def dataset_length(dataset: Any) -> int:
    """``len(dataset)``, or a ``TypeError`` naming the argument when it is not a map-style one."""
    try:
        return len(dataset)
    except TypeError as err:
        raise TypeError(
            f"dataset: expected a map-style data set (len(ds), ds[i]), got {type(dataset).__name__}"
        ) from err
