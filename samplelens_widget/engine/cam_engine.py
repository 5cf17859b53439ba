"""``CamEngine``: every layer's class-activation map from one forward and one backward."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from samplelens_widget.engine import inputs as checks
from samplelens_widget.engine import layouts
from samplelens_widget.engine.cams import ALGORITHMS
from samplelens_widget.engine.capture import Capture, capture_outputs, eval_mode
from samplelens_widget.engine.graph import dependencies, depths_for
from samplelens_widget.engine.layouts import LayoutSpec
from samplelens_widget.engine.result import CamResult, LayerInfo


class CamEngine:
    """Class-activation maps for every layer of a PyTorch model, in one pass.

    ``CamEngine(model, device=None, layout=None)``: ``device`` defaults to the device of the
    model's parameters; inputs are moved there and the maps stay there until asked for.

    A *layer* is the output of a module call — a leaf (a convolution, a norm, an activation) or
    a block (a ResNet block or stage, an Inception block, a transformer block) — that depends on
    input ``connection`` and lies on its grid in a layout the engine knows (``NCHW``,
    channels-last ``NHWC``, or tokens ``(N, P + h*w, C)`` with ``P`` prefix tokens; see
    ``samplelens_widget.engine.layouts``). Its *depth* is the number of layers on the longest
    path from that input to it. A block whose output is the very tensor of one of its layers is
    that layer, named by the block. Outputs the engine cannot read (attention tensors, window
    partitions, ambiguous shapes) are left out and listed in ``CamResult.left_out``.

    ``layout`` overrides the inference, in the spirit of pytorch-grad-cam's
    ``reshape_transform``: ``"NCHW"``, ``"NHWC"``, ``"tokens"`` or ``"tokens:P"`` for every
    candidate output, a callable ``tensor -> (N, C, h, w)`` applied to activations and gradients
    alike (outputs it fails on are left out), or a dict of layer name to one of those (``None``
    leaves that layer out); layers the dict does not name are inferred.

    One forward with hooks and one ``torch.autograd.grad`` of the summed target scores with
    respect to the captured activations serve every layer and every sample: no weight gradient
    is computed. The model is never changed: hooks are removed and each module's train/eval flag
    restored on every path (``explain`` runs in eval mode), parameters, ``requires_grad`` flags
    and ``.grad`` are left alone.
    """

    algorithms: tuple[str, ...] = tuple(ALGORITHMS)

    def __init__(
        self,
        model: nn.Module,
        device: torch.device | str | None = None,
        layout: LayoutSpec = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self._device = None if device is None else torch.device(device)
        self.layout = layouts.check_spec(layout)
        # Outputs a later in-place operation changes; learned on the first pass that sees it.
        self._clone: set[str] = set()

    @property
    def device(self) -> torch.device:
        """Where inputs go: the ``device`` given, else where the model's parameters are now."""
        if self._device is not None:
            return self._device
        first = next(iter(self.model.parameters()), None)
        if first is None:
            first = next(iter(self.model.buffers()), None)
        return first.device if first is not None else torch.device("cpu")

    def __repr__(self) -> str:
        return f"CamEngine({type(self.model).__name__}, device={str(self.device)!r})"

    def layers(self, inputs, connection: int = 0) -> list[LayerInfo]:
        """The layers of input ``connection``, sorted by depth (ties: execution order): those
        of ``explain(inputs, connection=connection)``."""
        return self.explain(inputs, connection=connection).layers

    def explain(
        self, inputs, label=None, algorithm: str = "gradcam", connection: int = 0
    ) -> CamResult:
        """Maps of every layer for the logit of ``label`` (an int, one int per sample, or None
        for each sample's predicted class) with ``algorithm`` (one of ``CamEngine.algorithms``)
        on input ``connection``. See ``CamResult`` for what comes back."""
        algo = ALGORITHMS[checks.check_algorithm(algorithm, self.algorithms)]
        tensors = checks.to_tensors(inputs)
        connection = checks.check_connection(connection, len(tensors))
        with eval_mode(self.model), torch.inference_mode(False), torch.enable_grad():
            logits, layers, batch, left_out = self._forward(tensors, connection)
            targets = checks.targets_for(label, logits)
            score = logits.gather(1, targets[:, None]).sum()
            if not score.requires_grad:
                raise ValueError(
                    f"model: its output does not depend on input {connection} through autograd "
                    f"(is it detached, or computed under torch.no_grad inside the model?); the "
                    f"maps need the gradient of the logits"
                )
            maps, reached = self._backward(score, layers, algo.layer_map)
            del score
        infos = _reaching(layers, reached, left_out)
        maps = {info.name: maps[info.name] for info in infos}
        with torch.no_grad():
            if algo.refine is not None:
                top = max(i.depth for i in infos)
                deepest = [i for i in infos if i.depth == top][-1]
                maps = algo.refine(maps, {i.name: i.depth for i in infos}, deepest.name)
        size = tuple(batch[connection].shape[-2:])
        readers = {lay.info.name: lay.layout for lay in layers}
        return CamResult(
            infos, maps, logits.detach(), targets, algo.name, connection, size, left_out, readers
        )

    @staticmethod
    def _backward(score, layers, layer_map) -> tuple[dict[str, torch.Tensor], dict[str, bool]]:
        """The activation-only backward. Each layer's map is computed by a hook on its
        activation as soon as that gradient exists, so gradients are freed as the backward goes
        on instead of all being held at its end. The backward stops at the depth-1 layers.
        Also returns, per layer, whether any gradient reached its grid positions."""
        maps: dict[str, torch.Tensor] = {}
        reach: dict[str, torch.Tensor] = {}

        def make_hook(layer: _Layer):
            def hook(grad: torch.Tensor) -> None:
                if layer.info.name not in maps:
                    with torch.no_grad():
                        g = layer.layout.to_nchw(grad).float()
                        a = layer.layout.to_nchw(layer.capture.tensor.detach()).float()
                        maps[layer.info.name] = layer_map(a, g)
                        # a head may read some tokens only (a class token): do the others
                        # get any gradient? A map on a grid is reached through its pooling
                        reach[layer.info.name] = (
                            g.ne(0).any() if layer.layout.kind == "tokens" else _TRUE
                        )

            return hook

        acts = [layer.capture.tensor for layer in layers]
        handles = [act.register_hook(make_hook(lay)) for act, lay in zip(acts, layers, strict=True)]
        try:
            roots = [lay for lay in layers if lay.info.depth == 1]
            grads = torch.autograd.grad(
                score, [lay.capture.tensor for lay in roots], allow_unused=True,
                materialize_grads=True,
            )
            for lay, grad in zip(roots, grads, strict=True):
                make_hook(lay)(grad)
        finally:
            for h in handles:
                h.remove()
        for lay in layers:  # layers the target does not depend on: no gradient
            name = lay.info.name
            if name not in maps:
                _, h, w = lay.info.shape
                n = lay.capture.tensor.shape[0]
                maps[name] = lay.capture.tensor.new_zeros((n, h, w), dtype=torch.float32)
                reach[name] = _FALSE
        flags = {name: bool(v) for name, v in reach.items() if v is _TRUE or v is _FALSE}
        checked = [name for name in reach if name not in flags]
        if checked:  # one transfer for all of them
            values = torch.stack([reach[name] for name in checked]).tolist()
            flags.update(zip(checked, values, strict=True))
        return maps, flags

    def _forward(self, tensors: list[torch.Tensor], connection: int):
        """One forward with capture hooks. Returns (logits, the layers of ``connection`` in
        execution order, the batched inputs, the outputs left out and why)."""
        tensors = checks.add_batch_dim(tensors, connection)
        batch = [self._prepare(t) for t in tensors]
        if not batch[connection].requires_grad:
            raise ValueError(
                f"connection: input {connection} has dtype {tensors[connection].dtype}; "
                f"the heatmap's input must be floating point"
            )
        n = batch[connection].shape[0]
        for _ in range(3):
            with capture_outputs(self.model, self._clone, n) as rec:
                try:
                    output = self.model(*[x.clone() if x.requires_grad else x for x in batch])
                except torch.OutOfMemoryError:
                    raise
                except Exception as err:
                    raise ValueError(
                        f"inputs: the model rejected the inputs ({checks.describe_inputs(batch)})"
                        f": {type(err).__name__}: {err}"
                    ) from err
            changed = {c.key for c in rec.captures if c.tensor._version != c.version}
            if not changed - self._clone:
                break
            self._clone |= changed  # run again, handing those outputs on as copies
        if changed:  # copies did not keep them: something rewrites them through another view
            warnings.warn(
                f"layers {sorted(changed)} are rewritten in place after they run, even when "
                f"handed on as copies; their maps are left out",
                RuntimeWarning,
                stacklevel=3,
            )
        logits = checks.logits_of(output)
        captures = [c for c in rec.captures if c.key not in changed]
        size = tuple(batch[connection].shape[-2:])
        layers, left_out = _read_layers(self.model, captures, batch, connection, size, self.layout)
        left_out += [(s.name, s.shape, "its first dimension is not the batch: windows or "
                      "sequence-first") for s in rec.seen]
        if not layers:
            raise ValueError(_nothing_readable(self.model, connection, size, left_out))
        return logits, layers, batch, left_out

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A leaf copy of an input on the engine's device; floating inputs require grad so that
        the graph records what depends on them."""
        x = x.detach().to(self.device)
        if x.is_inference():  # made under torch.inference_mode: take a normal copy
            x = x.clone()
        return x.requires_grad_(True) if x.is_floating_point() else x


_TRUE, _FALSE = torch.tensor(True), torch.tensor(False)


@dataclass
class _Layer:
    capture: Capture
    layout: layouts.Layout
    info: LayerInfo


def _spec_for(spec: LayoutSpec, capture: Capture):
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


def _read_layers(model, captures, batch, connection, size, spec):
    """Decide each capture's layout, then the depths of those that are layers."""
    grids = layouts.metadata_grids(model, size)
    for c in captures:
        if c.tensor.dim() == 4 and layouts.module_hint(c.module) == "NCHW":
            grids.known.add((int(c.tensor.shape[2]), int(c.tensor.shape[3])))
    n = batch[connection].shape[0]
    if isinstance(spec, Mapping):
        _check_spec_names(spec, captures)
    left_out: list[tuple[str, tuple[int, ...], str]] = []
    decided: list[tuple[Capture, layouts.Layout | str]] = []
    for c in captures:
        shape = tuple(c.tensor.shape)
        user = _spec_for(spec, c)
        if user is False:
            decided.append((c, "left out by layout="))
        elif user is not None:
            decided.append((c, layouts.from_spec(user, shape, grids)))
        else:
            decided.append((c, layouts.infer(shape, n, layouts.module_hint(c.module), grids)))
    decided = _merge_views(decided)
    # ambiguous ones take the layout of a same-shaped layer they are computed from
    usable = [(c, lay) for c, lay in decided if not isinstance(lay, str) or lay == "ambiguous"]
    nodes = dependencies([c for c, _ in usable], batch)
    resolved: list[layouts.Layout | str] = []
    for node, (c, lay) in zip(nodes, usable, strict=True):
        if lay == "ambiguous":
            same = [resolved[p] for p in node.preds if isinstance(resolved[p], layouts.Layout)
                    and usable[p][0].tensor.shape == c.tensor.shape]
            lay = same[0] if same else (
                f"ambiguous: both {tuple(c.tensor.shape[2:])} (NCHW) and "
                f"{tuple(c.tensor.shape[1:3])} (NHWC) are grids of the input; pass layout="
            )
        resolved.append(lay)
    for c, lay in decided:
        if isinstance(lay, str) and lay != "ambiguous":
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
        chw = _chw(lay, c.tensor)
        if chw is None:
            left_out.append((c.name, tuple(c.tensor.shape), "layout= did not give (N, C, h, w)"))
            continue
        info = LayerInfo(c.name, depth[i], chw, lay.describe(), tuple(c.aliases))
        layers.append(_Layer(c, lay, info))
    return layers, left_out


def _check_spec_names(spec: Mapping, captures: list[Capture]) -> None:
    names = [n for c in captures for n in (c.name, c.key, *c.aliases)]
    for key in spec:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(
                f"layout: {key!r} names no module output of the model that is a 3-D or 4-D "
                f"floating tensor of the batch{hint}"
            )


def _merge_views(decided):
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
        if _chw(base_lay, base.tensor) != _chw(lay, c.tensor):
            continue
        if c.outer:  # the view's module encloses the base: its name wins
            base.aliases[:0] = [base.name]
            base.name = c.name
            base.aliases += c.aliases
        else:
            base.aliases += [c.name, *c.aliases]
        drop.add(id(c))
    return [(c, lay) for c, lay in decided if id(c) not in drop]


def _chw(lay: layouts.Layout, t: torch.Tensor) -> tuple[int, int, int] | None:
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


def _reaching(layers, reached, left_out) -> list[LayerInfo]:
    """The layers up to the deepest one whose grid positions the target's gradient reaches.

    In a ViT whose head reads the class token only, the patch tokens after the last attention
    get no gradient: their maps would be zero whatever the input, so they are left out."""
    reaching = [lay.info.depth for lay in layers if reached[lay.info.name]]
    top = max(reaching, default=max(lay.info.depth for lay in layers))
    infos = []
    for lay in layers:
        info = lay.info
        if info.depth > top or (info.depth == top and not reached[info.name] and reaching):
            left_out.append((info.name, tuple(lay.capture.tensor.shape),
                             "the prediction does not depend on its grid positions"))
        else:
            infos.append(info)
    return infos


def _nothing_readable(model, connection, size, left_out) -> str:
    """The error for a model without one readable layer: what was found and why not."""
    counts: dict[tuple[tuple[int, ...], str], int] = {}
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


__all__ = ["CamEngine", "Capture"]
