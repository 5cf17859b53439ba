"""Layer dependencies read off the autograd graph of one forward pass.

A captured layer output's ``grad_fn`` is a node of the graph. Walking ``next_functions`` from
it down to the nearest nodes captured by earlier layers gives the layer's direct predecessors,
and down to the inputs' ``AccumulateGrad`` nodes tells which inputs it depends on. Functional
operations between modules (``+``, ``torch.cat``, ``F.relu``) are nodes like any other, so
branches, merges and several inputs come for free.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from samplelens_widget.cam.capture import Capture


@dataclass
class LayerNode:
    index: int  # execution order
    preds: list[int]  # direct predecessor layers (execution indices)
    inputs: int  # bit mask of the inputs this layer depends on


def _children(node: object) -> list[object]:
    return [child for child, _ in getattr(node, "next_functions", ()) if child is not None]


def dependencies(captures: list[Capture], inputs: list[torch.Tensor]) -> list[LayerNode]:
    """Direct predecessors and input dependencies of every captured layer.

    Walking down from a layer stops at nodes captured by *earlier* layers only: a module that
    hands its input on unchanged (``nn.Identity``, an empty ``nn.Sequential`` shortcut) is
    captured at a node that predates it, and later layers must walk through that node."""
    input_bit = {id(x): 1 << i for i, x in enumerate(inputs)}
    captured_at: dict[object, list[int]] = {}
    for i, cap in enumerate(captures):
        if cap.node is not None:
            captured_at.setdefault(cap.node, []).append(i)

    out: list[LayerNode] = []
    for i, cap in enumerate(captures):
        preds: set[int] = set()
        mask = input_bit.get(id(cap.tensor), 0)
        if cap.node is not None:
            earlier = [j for j in captured_at[cap.node] if j < i]
            if earlier:  # the same tensor as an earlier layer (nn.Identity): that one feeds it
                preds.add(earlier[-1])
            else:
                stack, seen = _children(cap.node), set()
                while stack:
                    node = stack.pop()
                    if node in seen:
                        continue
                    seen.add(node)
                    before = [j for j in captured_at.get(node, ()) if j < i]
                    if before:
                        preds.add(before[-1])
                        continue
                    variable = getattr(node, "variable", None)
                    if variable is not None:
                        mask |= input_bit.get(id(variable), 0)
                    stack.extend(_children(node))
        for p in preds:
            mask |= out[p].inputs
        out.append(LayerNode(i, sorted(preds), mask))
    return out


def depths_for(nodes: list[LayerNode], connection: int) -> dict[int, int]:
    """Depth of each layer that depends on input ``connection``: the number of layers on the
    longest path from that input to it, itself included."""
    bit = 1 << connection
    depth: dict[int, int] = {}
    for node in nodes:  # execution order: predecessors come first
        if node.inputs & bit:
            depth[node.index] = 1 + max((depth[p] for p in node.preds if p in depth), default=0)
    return depth
