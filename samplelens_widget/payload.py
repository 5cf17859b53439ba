"""The binary payloads the page receives: packed coordinates and colour-by columns.

Pure torch + numpy; nothing from the widget.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["encode_colors", "pack_coords"]


def pack_coords(coords) -> bytes:
    """(N, 2) coordinates as float32 little-endian bytes, x0 y0 x1 y1 ... (8 bytes a point)."""
    arr = np.asarray(coords)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"coords: expected an (N, 2) array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype="<f4").tobytes()


def encode_colors(values, n: int, name: str = "values") -> dict[str, Any]:
    """One colour-by column for the page: ``values`` (one per sample: a list, array, tensor or
    pandas Series) of numbers or of categories (str/bool/int labels).

    Returns ``{"kind": "category", "dtype": "uint8"|"uint16"|"uint32", "categories": [...],
    "data": bytes}`` (indices into the sorted categories, little-endian) for strings, bools and
    integers with at most 256 distinct values, or ``{"kind": "value", "dtype": "float32",
    "min", "max", "data"}`` for other numbers (NaN: missing). Wrong length: ``ValueError``;
    other types (objects, nested lists): ``TypeError``; both name ``name``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    elif hasattr(values, "to_numpy"):  # pandas Series / Index
        values = values.to_numpy()
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name}: cannot read it as one value per sample: {err}") from err
    if arr.ndim != 1:
        raise ValueError(
            f"{name}: expected one value per sample (a 1-D sequence of length {n}), got shape "
            f"{arr.shape}"
        )
    if len(arr) != n:
        raise ValueError(f"{name}: has {len(arr)} values; the slice has {n} samples")
    if arr.dtype == object:
        kinds = {type(v) for v in arr.tolist()}
        if kinds <= {str}:
            arr = arr.astype(str)
        elif kinds <= {int, float, bool} and not kinds <= {bool}:
            arr = arr.astype(np.float64)
        elif kinds <= {bool}:
            arr = arr.astype(bool)
        else:
            names = sorted(k.__name__ for k in kinds)
            raise TypeError(
                f"{name}: values of type(s) {names} are not supported; allowed: numbers, bools "
                f"or strings (categories)"
            )
    if arr.dtype.kind in "USb" or (arr.dtype.kind in "iu" and len(np.unique(arr)) <= 256):
        categories, codes = np.unique(arr, return_inverse=True)
        dtype = "uint8" if len(categories) <= 256 else "uint16"
        if len(categories) > 65536:
            dtype = "uint32"
        return {
            "kind": "category",
            "dtype": dtype,
            "categories": [c.item() if hasattr(c, "item") else c for c in categories],
            "data": codes.astype(f"<{np.dtype(dtype).str[1:]}").tobytes(),
        }
    if arr.dtype.kind in "iuf":
        data = arr.astype("<f4")
        finite = data[np.isfinite(data)]
        return {
            "kind": "value",
            "dtype": "float32",
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "data": data.tobytes(),
        }
    raise TypeError(
        f"{name}: values of dtype {arr.dtype} are not supported; allowed: numbers, bools or "
        f"strings (categories)"
    )
