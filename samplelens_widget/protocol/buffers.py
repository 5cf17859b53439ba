"""The binary buffers the page receives: packed coordinates, colour-by columns, maps.

Pure torch + numpy; nothing from the widget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from samplelens_widget.protocol.messages import ColumnMeta

__all__ = ["encode_colors", "metadata_columns", "pack_coords", "slice_columns", "to_uint8"]


def to_uint8(m: np.ndarray) -> np.ndarray:
    """Min-max normalise a map to uint8 [0, 255] (a constant map gives zeros)."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = float(m.min()), float(m.max())
    if not hi > lo:
        return np.zeros(m.shape, dtype=np.uint8)
    return np.clip(np.rint((m - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def pack_coords(coords: Any) -> bytes:
    """(N, 2) coordinates as float32 little-endian bytes, x0 y0 x1 y1 ... (8 bytes a point)."""
    arr = np.asarray(coords)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"coords: expected an (N, 2) array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype="<f4").tobytes()


def encode_colors(values: Any, n: int, name: str = "values") -> dict[str, Any]:
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


def _category(
    key: str, title: str, categories: Sequence[str], palette: str | None = None
) -> ColumnMeta:
    n = len(categories)
    return {
        "key": key,
        "title": title,
        "kind": "category",
        "dtype": "uint8" if n < 255 else "uint16",
        "categories": list(categories),
        "palette": palette,
        "missing": 255 if n < 255 else 65535,
    }


def _codes(values: np.ndarray, k: int) -> bytes:
    """Category indices; anything outside 0..k-1 (no label) becomes the 'missing' code."""
    missing = 255 if k < 255 else 65535
    v = np.where((values >= 0) & (values < k), values, missing)
    return v.astype("<u1" if k < 255 else "<u2").tobytes()


def slice_columns(
    stats: Mapping[str, Any], names: Sequence[str], metadata: Mapping[str, Mapping[str, Any]]
) -> list[tuple[ColumnMeta, bytes]]:
    """(meta, data) of every colour-by column of a slice: true label, prediction, correct and
    loss from the slice's statistics (``labels``, ``predictions``, ``losses``,
    ``num_classes``, a multi-label model's ``correct``), then the user's ``metadata`` columns
    (``encode_colors``'s output)."""
    k = int(stats["num_classes"])
    labels = np.asarray(stats["labels"], dtype=np.int64)
    preds = np.asarray(stats["predictions"], dtype=np.int64)
    losses = np.asarray(stats["losses"], dtype=np.float64)
    out = [
        (_category("label", "True label", names), _codes(labels, k)),
        (_category("prediction", "Predicted", names), _codes(preds, k)),
    ]
    correct = np.where(labels < 0, 255, (labels == preds).astype(np.int64))
    if "correct" in stats:  # multi-label: the whole label set is right or not
        right = np.asarray(stats["correct"], dtype=np.int64)
        correct = np.where(right < 0, 255, right)
    out.append(
        (
            _category("correct", "Correct", ["incorrect", "correct"], palette="correct"),
            _codes(correct, 2),
        )
    )
    fin = losses[np.isfinite(losses)]
    loss: ColumnMeta = {
        "key": "loss",
        "title": "Loss",
        "kind": "value",
        "dtype": "float32",
        # the colour scale spans the 2nd..98th percentile: losses are skewed (a few large
        # ones), and the min..max would leave most dots one colour
        "min": float(np.quantile(fin, 0.02)) if fin.size else None,
        "max": float(np.quantile(fin, 0.98)) if fin.size else None,
        "clipped": bool(fin.size),
    }
    out.append((loss, losses.astype("<f4").tobytes()))
    return out + metadata_columns(metadata)


def metadata_columns(
    metadata: Mapping[str, Mapping[str, Any]],
) -> list[tuple[ColumnMeta, bytes]]:
    """(meta, data) of the user's ``metadata`` columns (``encode_colors``'s output): known
    before the slice's statistics are."""
    out: list[tuple[ColumnMeta, bytes]] = []
    for name, enc in metadata.items():
        meta: Any = {kk: v for kk, v in enc.items() if kk != "data"}
        meta.update(key=name, title=name)
        out.append((meta, enc["data"]))
    return out
