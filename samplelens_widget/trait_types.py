"""Trait types that take the values users hold: numpy and torch integers, arrays and tensors.

``lens.selected = np.array([1, 2])``, ``lens.viewed = np.int64(3)`` and
``lens.label = torch.tensor(2)`` (an argmax) are the ids and classes they look like. A float
tensor, a bool or a string is not an integer here (``"1e2"``); an integer-valued float passes,
as traitlets lets it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import traitlets as t

__all__ = ["Index", "IndexList", "LabelTrait", "as_index"]


def as_index(value: Any) -> Any:
    """``value`` as a Python ``int`` when it is an integer of numpy or torch (a scalar, a 0-d
    or one-element array or tensor of an integer dtype); otherwise ``value`` unchanged (the
    trait then refuses it, naming it)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iu":
        return int(value.reshape(()))
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not (
        value.is_floating_point() or value.is_complex() or value.dtype == torch.bool
    ):
        return int(value.item())
    return value


class Index(t.Int):  # type: ignore[type-arg]
    """An ``Int`` trait that also takes numpy and torch integers, and refuses a bool (``True``
    is no sample or class). Integer-valued floats pass, as traitlets lets them."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)):
            self.error(obj, value)
        return super().validate(obj, as_index(value))


class IndexList(t.List):  # type: ignore[type-arg]
    """A list of ints that also takes a numpy array, a tensor, a tuple or a range of them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Index(), **kwargs)

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            if value.ndim != 1:
                raise t.TraitError(
                    f"{self.name}: expected a 1-D array of ids, got shape {value.shape}"
                )
            value = value.tolist() if value.dtype.kind in "iu" else list(value)
        elif isinstance(value, (tuple, range)):
            value = list(value)
        return super().validate(obj, value)


class LabelTrait(t.Union):
    """``label``: a class (an int, numpy or torch integer), a name (``"loss"``) or None."""

    def __init__(self) -> None:
        super().__init__([Index(), t.Unicode()], default_value=None, allow_none=True)

    def validate(self, obj: Any, value: Any) -> Any:
        return super().validate(obj, as_index(value))
