"""Which captured outputs are layers: their layouts, their depths, the names they go by.

``read_layers`` decides each capture's layout (inferred, or the user's ``layout=``), merges a
permute or reshape that reads as the same map into the layer it views, settles ambiguous shapes
from the layer they are computed from, and gives the depths of what is left. ``reaching`` cuts
the layers the target's gradient does not reach (a ViT's patch tokens after its last attention).
What is not a layer is listed with the reason.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from samplelens_widget.cam import layouts
from samplelens_widget.cam.capture import Capture
from samplelens_widget.cam.graph import dependencies, depths_for
from samplelens_widget.cam.layouts import LayoutSpec
from samplelens_widget.cam.result import LayerInfo

LeftOut = list[tuple[str, tuple[int, ...], str]]

# reach flags known without looking at a gradient
READ_ALL, READ_NONE = torch.tensor(True), torch.tensor(False)


@dataclass
class Layer:
    """A capture that is a layer: how it is read, and what the result says of it. ``capture``
    is dropped (``release``) once its map is made, so that the backward frees what autograd
    no longer needs."""

    capture: Capture | None
    layout: layouts.Layout
    info: LayerInfo
    shape: tuple[int, ...]  # of the output itself
    device: torch.device

    def release(self) -> None:
        self.capture = None


def spec_for(
    spec: LayoutSpec, capture: Capture
) -> str | layouts.Reshape | None | Literal[False]:
    """The user's layout for one capture: a spec, None (infer) or ``False`` (leave out). A
    layout name given for every layer applies to the outputs of its rank."""
    if isinstance(spec, str):
        return spec if capture.tensor.dim() == layouts.spec_rank(spec) else None
    if spec is None or callable(spec):
        return spec
    for name in (capture.name, capture.key, *capture.aliases):
        if name in spec:
            return spec[name] if spec[name] is not None else False
    return None


def read_layers(
    model: nn.Module, captures: list[Capture], batch: list[torch.Tensor], connection: int,
    size: tuple[int, int], spec: LayoutSpec, token_counts: set[int],
) -> tuple[list[Layer], LeftOut]:
    """Decide each capture's layout, then the depths of those that are layers (in execution
    order), and what is left out with why. ``token_counts``: the lengths of every sequence
    the forward made (windows included)."""
    grids = layouts.metadata_grids(model, size)
    grids.tokens = set(token_counts)
    for c in captures:
        if c.tensor.dim() == 4 and layouts.module_hint(c.module) == "NCHW":
            grids.known.add((int(c.tensor.shape[2]), int(c.tensor.shape[3])))
    n = batch[connection].shape[0]
    if isinstance(spec, Mapping):
        check_spec_names(spec, captures)
    left_out: list[tuple[str, tuple[int, ...], str]] = []
    decided: Decided = []
    for c in captures:
        shape = tuple(c.tensor.shape)
        user = spec_for(spec, c)
        if user is False:
            decided.append((c, "left out by layout="))
        elif user is not None:
            decided.append((c, layouts.from_spec(user, shape, grids)))
        else:
            decided.append((c, layouts.infer(shape, n, layouts.module_hint(c.module), grids)))
    decided = merge_views(decided)
    # ambiguous ones take the layout of a same-shaped layer they are computed from
    unsettled = (layouts.AMBIGUOUS, layouts.LIKE_ATTENTION)
    usable = [(c, lay) for c, lay in decided if not isinstance(lay, str) or lay in unsettled]
    nodes = dependencies([c for c, _ in usable], batch)
    resolved: list[layouts.Layout | str] = []
    for node, (c, lay) in zip(nodes, usable, strict=True):
        if lay in unsettled:
            same = [resolved[p] for p in node.preds if isinstance(resolved[p], layouts.Layout)
                    and usable[p][0].tensor.shape == c.tensor.shape]
            if lay == layouts.LIKE_ATTENTION:
                same = [s for s in same if isinstance(s, layouts.Layout) and s.kind == "NCHW"]
            lay = same[0] if same else _unsettled_reason(lay, tuple(c.tensor.shape))
        resolved.append(lay)
    for c, lay in decided:
        if isinstance(lay, str) and lay not in unsettled:
            left_out.append((c.name, tuple(c.tensor.shape), lay))
    final = []
    for (c, _), lay in zip(usable, resolved, strict=True):
        if isinstance(lay, str):
            left_out.append((c.name, tuple(c.tensor.shape), lay))
        else:
            final.append((c, lay))
    nodes = dependencies([c for c, _ in final], batch)
    depth = depths_for(nodes, connection)
    layers = []
    for i, (c, lay) in enumerate(final):
        if i not in depth:
            continue
        read = chw(lay, c.tensor)
        if read is None:
            left_out.append((c.name, tuple(c.tensor.shape), "layout= did not give (N, C, h, w)"))
            continue
        info = LayerInfo(c.name, depth[i], read, lay.describe(), tuple(c.aliases))
        layers.append(Layer(c, lay, info, tuple(c.tensor.shape), c.tensor.device))
    for c in captures:  # a view's base is no longer needed: do not keep its tensor alive
        c.view_of = None
    return layers, left_out


def _unsettled_reason(kind: str, shape: tuple[int, ...]) -> str:
    if kind == layouts.LIKE_ATTENTION:
        return (
            f"like attention scores (N, heads, T, T) over a sequence of {shape[2]} tokens, "
            f"although {shape[2]}x{shape[3]} is a grid of the input; pass layout= if it is a map"
        )
    return (
        f"ambiguous: both {shape[2:]} (NCHW) and {shape[1:3]} (NHWC) are grids of the input; "
        f"pass layout="
    )


def check_spec_names(spec: Mapping[str, object], captures: list[Capture]) -> None:
    names = [n for c in captures for n in (c.name, c.key, *c.aliases)]
    for key in spec:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(
                f"layout: {key!r} names no module output of the model that is a 3-D or 4-D "
                f"floating tensor of the batch{hint}"
            )


Decided = list[tuple[Capture, "layouts.Layout | str"]]


def merge_views(decided: Decided) -> Decided:
    """A permute or reshape of a layer that reads as the same map is that layer, one more name
    (Swin's final ``permute`` of ``norm``); a readable view of an unreadable tensor (MaxViT's
    departition of its windows) is a layer of its own."""
    layout_of = {id(c): lay for c, lay in decided}
    drop: set[int] = set()
    for c, lay in decided:
        base = c.view_of
        if base is None or not isinstance(lay, layouts.Layout) or lay.kind == "custom":
            continue
        base_lay = layout_of.get(id(base))
        if not isinstance(base_lay, layouts.Layout) or base_lay.kind == "custom":
            continue
        if chw(base_lay, base.tensor) != chw(lay, c.tensor):
            continue
        if c.outer:  # the view's module encloses the base: its name wins
            base.aliases[:0] = [base.name]
            base.name = c.name
            base.aliases += c.aliases
        else:
            base.aliases += [c.name, *c.aliases]
        drop.add(id(c))
    return [(c, lay) for c, lay in decided if id(c) not in drop]


def chw(lay: layouts.Layout, t: torch.Tensor) -> tuple[int, int, int] | None:
    """Per-sample (C, h, w) of a layer, or None where a custom reshape does not give a map."""
    if lay.kind != "custom":
        v = lay.to_nchw(t)
        return int(v.shape[1]), int(v.shape[2]), int(v.shape[3])
    try:
        with torch.no_grad():
            v = lay.to_nchw(t.detach())
    except Exception:
        return None
    if not isinstance(v, torch.Tensor) or v.dim() != 4 or v.shape[0] != t.shape[0]:
        return None
    if v.shape[2] * v.shape[3] < 2:
        return None
    return int(v.shape[1]), int(v.shape[2]), int(v.shape[3])


def reaching(layers: list[Layer], reached: dict[str, bool], left_out: LeftOut) -> list[LayerInfo]:
    """The layers up to the deepest one whose grid positions the target's gradient reaches.

    In a ViT whose head reads the class token only, the patch tokens after the last attention
    get no gradient: their maps would be zero whatever the input, so they are left out."""
    reaching = [lay.info.depth for lay in layers if reached[lay.info.name]]
    top = max(reaching, default=max(lay.info.depth for lay in layers))
    infos = []
    for lay in layers:
        info = lay.info
        if info.depth > top or (info.depth == top and not reached[info.name] and reaching):
            left_out.append((info.name, lay.shape,
                             "the prediction does not depend on its grid positions"))
        else:
            infos.append(info)
    return infos


def nothing_readable(
    model: nn.Module, connection: int, size: tuple[int, int], left_out: LeftOut
) -> str:
    """The error for a model without one readable layer: what was found and why not."""
    counts: dict[tuple[tuple[int | str, ...], str], int] = {}
    for _, shape, why in left_out:
        key = (tuple("N" if i == 0 else s for i, s in enumerate(shape)), why)
        counts[key] = counts.get(key, 0) + 1
    found = "; ".join(
        f"{k} tensor(s) {shape}: {why}".replace("'N'", "N")
        for (shape, why), k in sorted(counts.items(), key=lambda kv: -kv[1])[:4]
    )
    return (
        f"connection: no spatial layer the engine can read is reachable from input {connection} "
        f"of {type(model).__name__} ({size[0]}x{size[1]}); a layer is an output (N, C, h, w), "
        f"(N, h, w, C) or "
        f"(N, P + h*w, C) on that input's grid. Found: {found or 'no floating 3-D or 4-D output'}."
        f" Pass layout= to CamEngine (or SampleLens): 'NCHW', 'NHWC', 'tokens:P', a callable "
        f"tensor -> (N, C, h, w), or a dict of layer name to one of those"
    )
