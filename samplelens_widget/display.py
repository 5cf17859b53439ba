"""The picture of a sample: what the viewer, the thumbnails, ``lens.export`` and ``sample.image``
show. One function, :func:`picture`, with this precedence:

1. ``display=fn`` given to ``SampleLens``: ``fn(input (C, H, W))`` returns the picture (any input).
2. the dataset's ``ds.to_display(i)`` (input 0 of single-input items only, as before).
3. the dataset's ``Normalize`` steps inverted (single-input items): torchvision's
   ``transforms.Normalize`` or ``transforms.v2.Normalize`` (duck-typed: a class named ``Normalize``
   with ``mean`` and ``std``), found in ``ds.transform`` (else ``ds.transforms``, e.g. a
   ``StandardTransform``), in nested ``Compose`` (anything with a ``.transforms`` list) and in the
   ``.dataset`` a ``Subset`` wraps (recursively; the inner dataset's steps come first). Several
   steps are inverted in reverse order. Every ``Normalize`` found is inverted, whatever other
   steps stand around it: a step before it is undone by the inversion itself, the steps after it
   are taken to move pixels only (crop, flip, resize). A ``mean`` of the wrong length for the
   input's channels: no inversion. The un-normalised values are shown by their range: within
   [0, 1] as ``x * 255``, within [0, 255] as they are, else per-sample min-max.
4. the default, :func:`tensor_image`: a uint8 tensor as it is, a float tensor within [0, 1] as
   ``x * 255``, anything else per-sample min-max over all channels.

A failure of 1. or 2. (the function raised, or returned no image) falls back to the next source
and is warned once per source (``warnings.warn``, naming the sample).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, MutableSet, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from samplelens_widget.data import tensor_to_image

__all__ = ["Display", "as_image", "check_display", "normalize_steps", "picture", "tensor_image"]

Display = Callable[[torch.Tensor], Any]
Step = tuple[torch.Tensor, torch.Tensor]  # (mean, std), float64, one value per channel (or one)
ALLOWED = (
    "expected a uint8 array (H, W, 3) or (H, W), a PIL image, or a float array/tensor in [0, 1] "
    "(H, W, 3) or (3, H, W)"
)
_TOL = 1e-3  # rounding of a float picture at the ends of its range
_DEPTH = 32


def check_display(fn: Any) -> Display | None:
    """``display`` as given, or a TypeError naming it, the value and what is allowed."""
    if fn is not None and not callable(fn):
        raise TypeError(
            f"display: expected a function input (C, H, W) -> picture, or None; got {fn!r}"
        )
    checked: Display | None = fn
    return checked


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)}, dtype {value.dtype}"
    return f"{type(value).__name__} {value!r:.80}"


def as_image(value: Any, name: str = "display", floats_to_255: bool = False) -> np.ndarray:
    """A picture (array, tensor, PIL image) as uint8 ``(H, W, 3)``; else a TypeError naming
    ``name``, the value and what is allowed. ``floats_to_255``: a float array within [0, 255]
    (beyond 1) is taken as it is (``to_display``'s old reading)."""
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGB")).copy()
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
    bad = TypeError(f"{name}: returned {_describe(value)}; {ALLOWED}")
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf" or arr.size == 0:
        raise bad
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))  # CHW
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise bad
    a = arr[:, :, :3].astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if arr.dtype.kind == "f":
        if lo >= -_TOL and hi <= 1 + _TOL:
            a = a * 255
        elif not (floats_to_255 and lo >= -_TOL and hi <= 255 + _TOL):
            raise TypeError(f"{name}: returned floats in [{lo:.4g}, {hi:.4g}]; {ALLOWED}")
    elif lo < 0 or hi > 255:
        raise TypeError(f"{name}: returned integers in [{lo:.0f}, {hi:.0f}]; {ALLOWED}")
    out = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out)


# ------------------------------------------------------------------ Normalize
def _walk(step: Any, out: list[Step], depth: int) -> None:
    if step is None or depth > _DEPTH:
        return
    if type(step).__name__ == "Normalize" and hasattr(step, "mean") and hasattr(step, "std"):
        try:
            mean = torch.as_tensor(step.mean, dtype=torch.float64).flatten()
            std = torch.as_tensor(step.std, dtype=torch.float64).flatten()
        except (TypeError, ValueError, RuntimeError):
            return  # not numbers: not a Normalize we understand
        out.append((mean, std))
        return
    inner = getattr(step, "transforms", None)
    if isinstance(inner, (list, tuple)) or isinstance(step, torch.nn.Sequential):
        for s in inner if isinstance(inner, (list, tuple)) else step:
            _walk(s, out, depth + 1)
    elif inner is not None:
        _walk(inner, out, depth + 1)
    else:  # torchvision's StandardTransform(transform, target_transform)
        _walk(getattr(step, "transform", None), out, depth + 1)


def normalize_steps(ds: Any, depth: int = 0) -> list[Step]:
    """The ``(mean, std)`` of every ``Normalize`` a dataset's items went through, in order."""
    if ds is None or depth > _DEPTH:
        return []
    steps = normalize_steps(getattr(ds, "dataset", None), depth + 1)  # a Subset's dataset
    own = getattr(ds, "transform", None)
    _walk(own if own is not None else getattr(ds, "transforms", None), steps, 0)
    return steps


def _unnormalize(x: torch.Tensor, steps: Sequence[Step]) -> torch.Tensor | None:
    t = x.detach().cpu().to(torch.float64)
    if t.ndim != 3:
        return None
    for mean, std in reversed(steps):
        if mean.numel() not in (1, t.shape[0]) or std.numel() not in (1, t.shape[0]):
            return None
        t = t * std.view(-1, 1, 1) + mean.view(-1, 1, 1)
    return t


def _scaled(t: torch.Tensor, scale: float) -> np.ndarray:
    if t.ndim == 2:
        t = t[None]
    if t.shape[0] not in (1, 3):
        t = t.mean(dim=0, keepdim=True)
    arr = (t * scale).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr)


def tensor_image(x: torch.Tensor, steps: Sequence[Step] = ()) -> np.ndarray:
    """uint8 ``(H, W, 3)`` of an input ``(C, H, W)`` or ``(H, W)``: ``steps`` inverted when they
    fit, then by the range (module docstring, 3. and 4.)."""
    t = _unnormalize(x, steps) if steps else None
    if t is None:
        if x.dtype == torch.uint8 and x.ndim in (2, 3):
            return _scaled(x.detach().cpu().to(torch.float64), 1.0)
        if not x.is_floating_point():
            return tensor_to_image(x)
        t = x.detach().cpu().to(torch.float64)
    if t.ndim in (2, 3) and t.numel():
        lo, hi = float(t.min()), float(t.max())
        if lo >= -_TOL and hi <= 1 + _TOL:
            return _scaled(t, 255.0)
        if steps and lo >= -_TOL and hi <= 255 + _TOL:
            return _scaled(t, 1.0)
    return tensor_to_image(t)


# ------------------------------------------------------------------ the chain
def picture(
    ds: Any,
    sample_id: int,
    inputs: Sequence[torch.Tensor],
    connection: int,
    display: Display | None,
    warned: MutableSet[str],
    slice_name: str = "",
) -> np.ndarray:
    """The uint8 ``(H, W, 3)`` picture of input ``connection`` (the precedence above).
    ``warned``: the sources already warned about (one warning each)."""
    x = inputs[connection]
    single = connection == 0 and len(inputs) == 1
    sources: list[tuple[str, Callable[[], np.ndarray]]] = []
    if display is not None:
        sources.append(("display", lambda: as_image(display(x), "display")))
    if single and hasattr(ds, "to_display"):
        sources.append(
            ("to_display", lambda: as_image(ds.to_display(sample_id), "to_display", True))
        )
    for n, (name, make) in enumerate(sources):
        try:
            return make()
        except Exception as exc:
            if name not in warned:
                warned.add(name)
                rest = [s for s, _ in sources[n + 1 :]] + ["the input tensor"]
                warnings.warn(
                    f"{name}: failed on sample {sample_id} of slice {slice_name!r} "
                    f"({type(exc).__name__}: {exc}); the picture falls back to "
                    f"{' / '.join(rest)}. Later failures of {name} fall back without a warning.",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return tensor_image(x, normalize_steps(ds) if single else ())
