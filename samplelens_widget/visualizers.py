"""User visualizers: ``fn(sample) -> image | plotly figure | text``, turned into page payloads."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from samplelens_widget.data import png_bytes

__all__ = ["render_visual", "plotly_js_bytes"]


def _as_image(value: Any) -> np.ndarray | None:
    from PIL import Image

    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGBA" if value.mode in ("RGBA", "LA", "P") else "RGB"))
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
        if value.ndim == 3 and value.shape[0] in (1, 3, 4) and value.shape[2] not in (1, 3, 4):
            value = np.transpose(value, (1, 2, 0))
    if isinstance(value, np.ndarray):
        arr = value
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ValueError(
                f"visualizer returned an array of shape {value.shape}; expected (H, W), "
                "(H, W, 3) or (H, W, 4)"
            )
        if arr.dtype != np.uint8:
            a = arr.astype(np.float64)
            if np.issubdtype(arr.dtype, np.floating) and a.min() >= 0 and a.max() <= 1:
                a = a * 255
            elif a.max() > a.min():
                a = (a - a.min()) / (a.max() - a.min()) * 255
            arr = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr)
    return None


def render_visual(
    fn: Callable[[Any], Any], sample: Any
) -> tuple[dict[str, Any], list[bytes]]:
    """Call a visualizer and describe its output: ``({"kind": ..., ...}, buffers)``.

    kinds: ``image`` (one PNG buffer), ``plotly`` (``figure``: the figure's JSON), ``text``,
    ``error`` (``message``: the exception and the last lines of its traceback).
    """
    try:
        value = fn(sample)
        if hasattr(value, "to_plotly_json") and hasattr(value, "to_json"):
            return {"kind": "plotly", "figure": json.loads(value.to_json())}, []
        image = _as_image(value)
        if image is not None:
            h, w = image.shape[:2]
            return {"kind": "image", "width": int(w), "height": int(h)}, [png_bytes(image)]
        if isinstance(value, str):
            return {"kind": "text", "text": value}, []
        if value is None:
            return {"kind": "text", "text": "(the visualizer returned None)"}, []
        return {"kind": "text", "text": repr(value)}, []
    except Exception as exc:  # shown in the tab, never raised into the comm handler
        tb = traceback.format_exc(limit=3)
        return {"kind": "error", "message": f"{type(exc).__name__}: {exc}", "traceback": tb}, []


def plotly_js_bytes() -> bytes:
    """plotly.js as the plotly Python package ships it (sent to the page once, when needed)."""
    import plotly  # type: ignore[import-untyped]

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.exists():
        raise FileNotFoundError(f"plotly.js not found at {path}; reinstall the plotly package")
    return path.read_bytes()
