"""Layer dependencies read off the autograd graph of one forward pass.

A captured layer output's ``grad_fn`` is a node of the graph. Walking ``next_functions`` from
it down to the nearest other captured nodes gives the layer's direct predecessors, and down to
the inputs' ``AccumulateGrad`` nodes tells which inputs it depends on. Functional operations
between modules (``+``, ``torch.cat``, ``F.relu``) are nodes like any other, so branches,
merges and several inputs come for free.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from samplelens_widget.engine.capture import Capture


@dataclass
class LayerNode:
    index: int  # execution order
    preds: list[int]  # direct predecessor layers (execution indices)
    inputs: int  # bit mask of the inputs this layer depends on


def _children(node) -> list:
    return [child for child, _ in getattr(node, "next_functions", ()) if child is not None]


def dependencies(captures: list[Capture], inputs: list[torch.Tensor]) -> list[LayerNode]:
    """Direct predecessors and input dependencies of every captured layer."""
    input_bit = {id(x): 1 << i for i, x in enumerate(inputs)}
    captured_at: dict[object, list[int]] = {}
    for i, cap in enumerate(captures):
        if cap.node is not None:
            captured_at.setdefault(cap.node, []).append(i)

    # reach[node] = (captured nodes first met below it, input mask met without passing one)
    reach: dict[object, tuple[frozenset, int]] = {}

    def seen_from_above(node) -> tuple[frozenset, int]:
        if node in captured_at:
            return frozenset([node]), 0
        return reach[node]

    def resolve(start) -> None:
        stack = [(start, False)]
        while stack:
            node, expanded = stack.pop()
            if node in reach:
                continue
            kids = [k for k in _children(node) if k not in captured_at]
            if not expanded:
                stack.append((node, True))
                stack.extend((k, False) for k in kids if k not in reach)
                continue
            found: set = set()
            mask = 0
            variable = getattr(node, "variable", None)
            if variable is not None:
                mask |= input_bit.get(id(variable), 0)
            for k in _children(node):
                nodes, m = seen_from_above(k)
                found |= nodes
                mask |= m
            reach[node] = (frozenset(found), mask)

    out: list[LayerNode] = []
    for i, cap in enumerate(captures):
        preds: set[int] = set()
        mask = input_bit.get(id(cap.tensor), 0)
        if cap.node is not None:
            earlier = [j for j in captured_at[cap.node] if j < i]
            if earlier:  # the same tensor as an earlier layer (nn.Identity): that one feeds it
                preds.add(earlier[-1])
            else:
                for k in _children(cap.node):
                    if k not in captured_at:
                        resolve(k)
                    nodes, m = seen_from_above(k)
                    mask |= m
                    for n in nodes:
                        before = [j for j in captured_at[n] if j < i]
                        if before:
                            preds.add(before[-1])
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
