"""How a captured tensor lies on the input's grid: its *layout*.

A captured output becomes a layer only when the engine knows how to read it as ``(N, C, h, w)``
on the grid of the input it explains. The layouts known:

- ``NCHW``: a map ``(N, C, h, w)`` (convolutions, batch norms, pools, ...);
- ``NHWC``: channels last ``(N, h, w, C)`` (ConvNeXt's MLP half, Swin's stages, ``nn.LayerNorm``
  or ``nn.Linear`` over the channels of a map);
- ``tokens``: a sequence ``(N, P + h*w, C)`` of ``P`` prefix tokens (class, distillation,
  register tokens) followed by the patch grid in raster order; ``P = 0`` is a flattened grid.

How a layout is decided, for an output of shape ``s`` with batch ``N`` on an input ``H x W``:

1. ``s[0]`` must be ``N``: window partitions ``(N * windows, tokens, C)`` and sequence-first
   tensors are never layers.
2. The *grids* of the model are the ``(h, w)`` of the outputs of modules whose contract is NCHW
   (``Conv2d``, ``BatchNorm2d``, 2-D pools, ...), the patch grid its metadata declares (timm's
   ``patch_embed``, a transformers config's ``patch_size``, torchvision's ``patch_size``), and
   every ``(⌊H/s⌋ or ⌈H/s⌉, ⌊W/s⌋ or ⌈W/s⌉)`` for an integer stride ``s``.
3. A 4-D output is ``NCHW`` if ``s[2:]`` is a grid, ``NHWC`` if ``s[1:3]`` is; a module whose
   contract fixes it (a ``Conv2d`` is NCHW, a plain ``nn.LayerNorm`` or ``nn.Linear`` NHWC)
   decides a tie; otherwise the layout of a same-shaped layer it is computed from; otherwise it
   is left out as ambiguous. 4-D tensors that fit neither (attention ``(N, heads, T, d)``,
   MaxViT's ``(N, windows, tokens, C)``) are left out, and so is an ``(N, a, T, T)`` output of
   a module with no contract where the model also has sequences of ``T`` tokens (attention
   scores over ``T`` tokens, such as Swin-v2's window of 16 tokens on a 16x16 grid), unless a
   same-shaped NCHW layer it is computed from says it is a map.
4. A 3-D output ``(N, T, C)`` is ``tokens`` when ``T = P + h*w`` for a grid ``(h, w)`` with
   ``0 <= P <= 16`` (the declared number of prefix tokens when the model says it), the
   smallest ``P`` winning.

Activations and gradients go through the same reshaping. A model nothing here can read takes
an explicit ``layout=`` (see ``LayoutSpec``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

MAX_PREFIX = 16
# what ``infer`` says of a 4-D output that the layer it is computed from must settle
AMBIGUOUS, LIKE_ATTENTION = "ambiguous", "like attention"

Reshape = Callable[[torch.Tensor], torch.Tensor]
# What ``layout=`` takes: None (infer), "NCHW" / "NHWC" / "tokens" / "tokens:P", a callable
# tensor -> (N, C, h, w) (pytorch-grad-cam's ``reshape_transform``), or a mapping of layer name
# to one of those (None in a mapping leaves that layer out).
LayoutSpec = str | Reshape | Mapping[str, str | Reshape | None] | None


@dataclass(frozen=True)
class Layout:
    """How one captured tensor reads as ``(N, C, h, w)``."""

    kind: str  # "NCHW", "NHWC", "tokens" or "custom"
    grid: tuple[int, int]
    prefix: int = 0
    fn: Reshape | None = field(default=None, compare=False)

    def to_nchw(self, t: torch.Tensor) -> torch.Tensor:
        """The tensor (activation or gradient alike) as a view or copy ``(N, C, h, w)``."""
        if self.kind == "NCHW":
            return t
        if self.kind == "NHWC":
            return t.permute(0, 3, 1, 2)
        if self.kind == "tokens":
            h, w = self.grid
            n, _, c = t.shape
            return t[:, self.prefix :].reshape(n, h, w, c).permute(0, 3, 1, 2)
        assert self.fn is not None
        return self.fn(t)

    def describe(self) -> str:
        if self.kind == "tokens":
            h, w = self.grid
            grid = f"{h}x{w}"
            return f"tokens ({self.prefix} prefix + {grid})" if self.prefix else f"tokens ({grid})"
        return self.kind


# Modules whose output is (N, C, h, w) by contract.
_NCHW_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv2d,
    nn.ConvTranspose2d,
    nn.BatchNorm2d,
    nn.InstanceNorm2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.LPPool2d,
    nn.Upsample,
    nn.UpsamplingBilinear2d,
    nn.UpsamplingNearest2d,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.Dropout2d,
    nn.ZeroPad2d,
    nn.ReflectionPad2d,
    nn.ReplicationPad2d,
    nn.LocalResponseNorm,
)
# Modules that act on the last dimension: on a 4-D tensor that is channels last. Exact types
# only: subclasses such as timm's ``LayerNorm2d`` permute inside and return NCHW.
_LAST_DIM_MODULES: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.Linear)
# Modules whose output is not on an image grid at all (1-D and 3-D data).
_OFF_GRID_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv3d,
    nn.BatchNorm1d,
    nn.BatchNorm3d,
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.AdaptiveAvgPool1d,
    nn.Embedding,
)


def module_hint(module: nn.Module) -> str | None:
    """``"NCHW"``, ``"NHWC"``, ``"off"`` (never on the grid) or None (nothing known)."""
    if isinstance(module, _NCHW_MODULES):
        return "NCHW"
    if type(module) in _LAST_DIM_MODULES:
        return "NHWC"
    if isinstance(module, _OFF_GRID_MODULES):
        return "off"
    return None


def _stride_fits(h: int, w: int, size: tuple[int, int], exact: bool = False) -> bool:
    """``(h, w)`` is ``(⌊H/s⌋ or ⌈H/s⌉, ⌊W/s⌋ or ⌈W/s⌉)`` for one integer stride ``s``
    (``exact``: ``(H/s, W/s)`` with both divisions exact)."""
    big_h, big_w = size
    if h < 1 or w < 1 or h > big_h or w > big_w:
        return False
    if exact:
        return big_h % h == 0 and big_w % w == 0 and big_h // h == big_w // w
    lo = max(1, math.floor(big_h / (h + 1)), math.floor(big_w / (w + 1)))
    hi = min(math.ceil(big_h / max(h - 1, 0.5)), math.ceil(big_w / max(w - 1, 0.5)))
    for s in range(lo, hi + 1):
        if h in (big_h // s, -(-big_h // s)) and w in (big_w // s, -(-big_w // s)):
            return True
    return False


@dataclass
class Grids:
    """The grids of one input ``size``: the known ones (from NCHW modules and the model's
    metadata) and every integer-stride one."""

    size: tuple[int, int]
    known: set[tuple[int, int]] = field(default_factory=set)
    prefix: int | None = None  # the number of prefix tokens the model declares, if it does
    tokens: set[int] = field(default_factory=set)  # the lengths of the sequences seen

    def fits(self, h: int, w: int) -> bool:
        return h * w > 1 and ((h, w) in self.known or _stride_fits(h, w, self.size))

    def token_grid(
        self, tokens: int, prefix: int | None = None
    ) -> tuple[tuple[int, int], int] | None:
        """The grid and prefix of a sequence of ``tokens``: the smallest prefix wins (only
        ``prefix`` where it is given; no prefix or the model's declared one where it has one).

        A sequence carries no shape of its own, so its grid must be a known one or an exact
        division of the input by an integer stride."""
        allowed: list[int] | range = range(min(MAX_PREFIX, tokens - 2) + 1)
        if prefix is not None:
            allowed = [prefix]
        elif self.prefix is not None:
            allowed = sorted({0, self.prefix})
        for p in allowed:
            grid = self._grid_of(tokens - p)
            if grid is not None:
                return grid, p
        return None

    def _grid_of(self, count: int) -> tuple[int, int] | None:
        if count < 2:
            return None
        for h, w in sorted(self.known):
            if h * w == count:
                return h, w
        big_h, big_w = self.size
        # h / w close to H / W: try the divisors of count near sqrt(count * H / W)
        guess = math.sqrt(count * big_h / big_w)
        small = [d for d in range(1, math.isqrt(count) + 1) if count % d == 0]
        divisors = sorted({*small, *(count // d for d in small)}, key=lambda d: abs(d - guess))
        for h in divisors[:4]:
            if _stride_fits(h, count // h, self.size, exact=True):
                return h, count // h
        return None


def metadata_grids(model: nn.Module, size: tuple[int, int]) -> Grids:
    """Grids and prefix tokens declared by the model itself (timm, transformers, torchvision)."""
    grids = Grids(size)
    patches: list[int] = []
    prefix = getattr(model, "num_prefix_tokens", None)  # timm
    embed = getattr(model, "patch_embed", None)
    if embed is not None:
        patch = getattr(embed, "patch_size", None)
        if isinstance(patch, (tuple, list)) and len(patch) == 2:
            if all(isinstance(p, int) and p > 0 for p in patch):
                grids.known.add((size[0] // patch[0], size[1] // patch[1]))
    config = getattr(model, "config", None)  # transformers
    if config is not None:
        vision = getattr(config, "vision_config", config)
        patch = getattr(vision, "patch_size", None)
        if isinstance(patch, int) and patch > 0:
            patches.append(patch)
        registers = getattr(vision, "num_register_tokens", None)
        if prefix is None and isinstance(registers, int) and registers > 0:
            prefix = 1 + registers  # the class token and the registers
    patch = getattr(model, "patch_size", None)  # torchvision's VisionTransformer
    if isinstance(patch, int) and patch > 0:
        patches.append(patch)
    for p in patches:
        grids.known.add((size[0] // p, size[1] // p))
    if isinstance(prefix, int) and 0 <= prefix <= MAX_PREFIX:
        grids.prefix = prefix
    return grids


def infer(shape: tuple[int, ...], batch: int, hint: str | None, grids: Grids) -> Layout | str:
    """The layout of an output of ``shape``, or why there is none (a short reason).

    An ambiguous 4-D output (both readings fit, nothing decides) gives ``AMBIGUOUS``, a map
    ``(N, a, T, T)`` of a module with no contract where the model also has sequences of ``T``
    tokens (attention scores over a window of ``T`` tokens that happens to fit a grid) gives
    ``LIKE_ATTENTION``; the caller may settle either from the layer it is computed from."""
    if hint == "off":
        return "not an image map (its module works on 1-D or 3-D data)"
    if len(shape) not in (3, 4):
        return f"{len(shape)}-D: a layer is (N, C, h, w), (N, h, w, C) or (N, tokens, C)"
    if shape[0] != batch:
        return (
            f"its first dimension {shape[0]} is not the batch ({batch}): windows or "
            f"sequence-first"
        )
    if len(shape) == 3:
        found = grids.token_grid(shape[1])
        if found is None:
            return f"no grid of input {grids.size[0]}x{grids.size[1]} fits {shape[1]} tokens"
        grid, prefix = found
        return Layout("tokens", grid, prefix)
    nchw = grids.fits(shape[2], shape[3])
    nhwc = grids.fits(shape[1], shape[2])
    if nchw and hint is None and shape[2] == shape[3] and shape[2] in grids.tokens:
        return LIKE_ATTENTION  # (N, heads, T, T) over a sequence of T tokens
    if nchw and (hint == "NCHW" or not nhwc):
        return Layout("NCHW", (shape[2], shape[3]))
    if nhwc and (hint == "NHWC" or not nchw):
        return Layout("NHWC", (shape[1], shape[2]))
    if nchw and nhwc:
        return AMBIGUOUS
    return f"neither (h, w) = {tuple(shape[2:])} nor {tuple(shape[1:3])} is a grid of input " \
        f"{grids.size[0]}x{grids.size[1]}"


def from_spec(spec: str | Reshape, shape: tuple[int, ...], grids: Grids) -> Layout | str:
    """A layout named by the user (``"NCHW"``, ``"NHWC"``, ``"tokens"``, ``"tokens:P"`` or a
    callable), checked against the tensor's shape."""
    if callable(spec):
        return Layout("custom", (0, 0), fn=spec)
    kind, _, p = spec.partition(":")
    kind = kind.strip().upper()
    if kind == "NCHW" and len(shape) == 4:
        return Layout("NCHW", (shape[2], shape[3]))
    if kind == "NHWC" and len(shape) == 4:
        return Layout("NHWC", (shape[1], shape[2]))
    if kind == "TOKENS" and len(shape) == 3:
        if p:
            prefix = int(p)
            found = grids.token_grid(shape[1], prefix)
            if found is None:
                return f"{shape[1]} tokens less {prefix} prefix tokens fit no grid"
            return Layout("tokens", found[0], prefix)
        found = grids.token_grid(shape[1])
        return Layout("tokens", *found) if found else f"{shape[1]} tokens fit no grid"
    return f"layout {spec!r} does not fit shape {tuple(shape)}"


def spec_rank(spec: str) -> int:
    """The rank of tensor a layout name reads: 3 for tokens, 4 for NCHW and NHWC."""
    return 3 if spec.partition(":")[0].strip().upper() == "TOKENS" else 4


LAYOUT_NAMES = ("NCHW", "NHWC", "tokens", "tokens:P")


def check_spec(spec: object) -> LayoutSpec:
    """Check ``layout=`` before any work."""
    if spec is None:
        return None
    if callable(spec):
        return cast(Reshape, spec)
    if isinstance(spec, str):
        _check_name(spec, "layout")
        return spec
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if not isinstance(key, str):
                raise TypeError(f"layout: keys are layer names (str), got {key!r}")
            if value is None or callable(value):
                continue
            if not isinstance(value, str):
                raise TypeError(
                    f"layout[{key!r}]: expected one of {list(LAYOUT_NAMES)}, a callable "
                    f"tensor -> (N, C, h, w) or None, got {type(value).__name__}"
                )
            _check_name(value, f"layout[{key!r}]")
        return cast(Mapping[str, "str | Reshape | None"], spec)
    raise TypeError(
        f"layout: expected None, one of {list(LAYOUT_NAMES)}, a callable tensor -> (N, C, h, w) "
        f"or a dict of layer name to those, got {type(spec).__name__}"
    )


def _check_name(spec: str, arg: str) -> None:
    kind, sep, p = spec.partition(":")
    ok = kind.strip().upper() in ("NCHW", "NHWC") and not sep
    ok = ok or (kind.strip().upper() == "TOKENS" and (not sep or p.strip().isdigit()))
    if not ok:
        raise ValueError(f"{arg}: {spec!r} is unknown; allowed: {list(LAYOUT_NAMES)}")
