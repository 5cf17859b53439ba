"""Dataset items as the widget sees them: inputs, label, display image, PNG bytes, colormaps.

A dataset is map-style (``len(ds)``, ``ds[i]``); an item is ``(input, label)``,
``((input_a, input_b, ...), label)`` or a dict with ``"inputs"`` (or ``"input"``) and ``"label"``.
A dataset may offer ``ds.to_display(i) -> uint8 (H, W, 3)`` for a human-readable image of input 0;
how the picture is chosen otherwise (``display=``, an inverted ``Normalize``, the input's own
range) is ``display.py``'s.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from samplelens_widget.population.items import split_item

__all__ = ["Sample", "split_item", "tensor_to_image", "png_bytes", "colormap_lut", "COLORMAPS"]


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` picture of one input ``(C, H, W)`` or ``(H, W)`` (min-max scaled)."""
    t = x.detach().float().cpu()
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"input of shape {tuple(x.shape)} is not an image; expected (C, H, W)")
    if t.shape[0] not in (1, 3):
        t = t.mean(dim=0, keepdim=True)
    lo, hi = float(t.min()), float(t.max())
    t = (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)
    arr = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def png_bytes(image: np.ndarray | Image.Image, size: tuple[int, int] | None = None) -> bytes:
    """PNG bytes of an image; ``size`` (w, h) resizes it (box filter, for thumbnails)."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if size is not None:
        im = im.resize(size, Image.Resampling.BOX)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False, compress_level=3)
    return buf.getvalue()


@lru_cache(maxsize=1)
def _colormaps() -> dict[str, np.ndarray]:
    raw = json.loads((Path(__file__).parent / "colormaps.json").read_text())
    return {
        name: np.frombuffer(bytes.fromhex(hexs), dtype=np.uint8).reshape(256, 3)
        for name, hexs in raw.items()
    }


COLORMAPS = ("jet", "viridis", "inferno", "turbo", "gray")


def colormap_lut(name: str) -> np.ndarray:
    """The 256x3 uint8 lookup table of a colormap (the same table the page uses)."""
    maps = _colormaps()
    if name not in maps:
        raise ValueError(f"colormap {name!r} is unknown; expected one of {sorted(maps)}")
    return maps[name]


def blend(image: np.ndarray, heat: np.ndarray, colormap: str, opacity: float) -> np.ndarray:
    """Overlay a heatmap ``(H, W)`` in [0, 1] on a uint8 image ``(H, W, 3)``.

    ``index = round(heat * 255)``; ``out = round((1 - opacity) * image + opacity * lut[index])``:
    the same arithmetic as the page's canvas.
    """
    lut = colormap_lut(colormap)
    idx = np.clip(np.rint(np.asarray(heat, dtype=np.float64) * 255), 0, 255).astype(np.intp)
    color = lut[idx].astype(np.float64)
    out = (1.0 - opacity) * image.astype(np.float64) + opacity * color
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class Sample:
    """What a visualizer receives: one sample of the current slice.

    Attributes:
        id: index in the slice; slice: the slice's name.
        inputs: tuple of input tensors (one per model input); input: ``inputs[connection]``.
        label: the true label (``None`` if the dataset has none).
        item: the dataset item as the dataset returned it.
        image: uint8 ``(H, W, 3)`` picture of ``input`` (the one the viewer shows).
    ``x, y = sample`` unpacks like a dataset item ``(input, label)``.
    """

    id: int
    slice: str
    inputs: tuple[torch.Tensor, ...]
    label: int | None
    item: Any = field(repr=False)
    image: np.ndarray = field(repr=False)
    connection: int = 0

    @property
    def input(self) -> torch.Tensor:
        return self.inputs[self.connection]

    def __iter__(self) -> Iterator[Any]:
        yield self.input if len(self.inputs) == 1 else self.inputs
        yield self.label
