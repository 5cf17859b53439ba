"""The selection edits the page asks for (*Add*, a clicked dot, a box or lasso), as pure
functions of the current selection: the widget applies what they return to its traits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["added", "boxed", "typed_id"]


def typed_id(raw: Any, check_id: Callable[[Any], int]) -> int:
    """An id as the user typed it in the *Add* box (``" 17 "``), checked by ``check_id``."""
    text = str(raw).strip() if raw is not None else ""
    try:
        value: Any = int(text)
    except ValueError:
        value = text
    return check_id(value)


def added(selected: Sequence[int], sample_id: int) -> list[int]:
    """The selection with ``sample_id`` at its end (unchanged if it is there already)."""
    return list(selected) if sample_id in selected else [*selected, sample_id]


def boxed(
    selected: Sequence[int], buffers: Sequence[Any], ids: Sequence[int] | None, mode: str, n: int
) -> list[int]:
    """The selection after a box or lasso: its ids from ONE uint32 buffer (else ``ids``),
    replacing the selection or (``mode="add"``) appended to it. An id outside ``0..n-1`` is a
    ``ValueError``."""
    if buffers:
        new: list[int] = np.frombuffer(memoryview(buffers[0]).tobytes(), dtype="<u4").tolist()
    else:
        new = list(ids or [])
    bad = [i for i in new if not 0 <= i < n]
    if bad:
        raise ValueError(f"selection: sample id {bad[0]} is out of range 0..{n - 1}")
    if mode == "add":
        have = set(selected)
        new = [*selected, *[i for i in new if i not in have]]
    return new
