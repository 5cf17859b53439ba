"""One model input of a dataset item as a tensor: pictures become CHW floats in ``[0, 1]``.

``as_input(value, field)`` takes what a dataset item holds where the model's input is:

- a float (or other non-``uint8``) tensor or numpy array, a number or a (nested) list of
  numbers: taken as it is (a picture's is ``(C, H, W)``: nothing is transposed; an array keeps
  its dtype, Python floats become torch's default dtype, float32);
- a PIL image: as ``torchvision.transforms.functional.to_tensor`` gives it, ``(C, H, W)`` float
  in ``[0, 1]``; mode ``"L"`` (and ``"1"``) one channel, ``"RGB"`` three; every other mode is
  converted to RGB first (``RGBA``: the alpha channel is dropped, a palette is expanded), since
  a picture's alpha is no part of what an image model sees; 16/32-bit grey (``"I"``, ``"F"``):
  one channel, the values as they are;
- a ``uint8`` numpy array, a picture in ToTensor's layout: ``(H, W)`` -> one channel,
  ``(H, W, 1 | 3 | 4)`` -> ``(C, H, W)``, divided by 255; other shapes are taken as channels
  first (divided by 255);
- a ``uint8`` tensor, a picture in torchvision's layout (``torchvision.io.decode_image``, a
  ``datasets`` image column in the ``"torch"`` format): ``(C, H, W)`` divided by 255; ``(H, W)``
  -> one channel; ``(H, W, 1 | 3 | 4)`` (channels last, where the first axis is no channel
  count) -> ``(C, H, W)``.

A 4-channel ``uint8`` picture loses its alpha channel everywhere, as a PIL ``RGBA`` image does.
A model that reads raw bytes should get them as another dtype (``int64``, ``float``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["as_input"]

CHANNELS = (1, 3, 4)
ALLOWED = (
    "a tensor, a numpy array of numbers, a PIL image, a number or a (nested) list of numbers"
)


def as_input(value: Any, field: str) -> torch.Tensor:
    """The tensor of one model input (see the module's docstring); a ``TypeError`` naming the
    item's ``field``, the value's type and what is allowed when it cannot be one."""
    if isinstance(value, torch.Tensor):
        return _from_uint8(value, channels_last=False) if value.dtype == torch.uint8 else value
    if isinstance(value, Image.Image):
        return _from_pil(value)
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise TypeError(_bad(value, field))
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise TypeError(_bad(value, field)) from err
    if arr.dtype == np.uint8:  # a copy: the array may be read-only (np.asarray of a PIL image)
        return _from_uint8(torch.from_numpy(np.array(arr)), channels_last=True)
    if arr.dtype.kind not in "biuf":
        raise TypeError(_bad(value, field, f" of dtype {arr.dtype}"))
    if arr.dtype.kind == "f" and not isinstance(value, np.ndarray):  # Python floats: as torch
        return torch.as_tensor(arr, dtype=torch.get_default_dtype())  # reads them (float32)
    return torch.as_tensor(arr)


def _bad(value: Any, field: str, extra: str = "") -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return (
        f"dataset item: {field} is a {type(value).__name__}{extra} ({shown}); expected {ALLOWED}"
    )


def _from_pil(img: Image.Image) -> torch.Tensor:
    if img.mode in ("I", "I;16", "F"):
        return torch.from_numpy(np.asarray(img, dtype=np.float32).copy())[None]
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode != "L":
        img = img.convert("RGB")
    return _from_uint8(torch.from_numpy(np.array(img, dtype=np.uint8)), channels_last=True)


def _from_uint8(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A uint8 picture as CHW float in [0, 1]; ``channels_last``: a 3-D array is HWC when its
    last axis is a channel count (ToTensor's rule), else only when its first axis is not one."""
    if t.dim() == 2:
        t = t[None]
    elif t.dim() == 3 and t.shape[-1] in CHANNELS and (channels_last or t.shape[0] not in CHANNELS):
        t = t.permute(2, 0, 1)
    if t.dim() == 3 and t.shape[0] == 4:
        t = t[:3]  # RGBA: the alpha channel is no part of the picture a model sees
    return t.contiguous().float().div(255)
