"""``CamEngine``: every layer's class-activation map from one forward and one backward."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.autograd.graph import Node

from samplelens_widget.cam import faithfulness as faith
from samplelens_widget.cam import inputs as checks
from samplelens_widget.cam import layouts, sanity
from samplelens_widget.cam.algorithms import ALGORITHMS, LayerMap
from samplelens_widget.cam.capture import Capture, capture_outputs, eval_mode, model_device
from samplelens_widget.cam.errors import model_raised
from samplelens_widget.cam.faithfulness import Faithfulness
from samplelens_widget.cam.layouts import LayoutSpec
from samplelens_widget.cam.outputs import Output, check_task, read_output
from samplelens_widget.cam.reading import (
    READ_ALL,
    READ_NONE,
    Layer,
    LeftOut,
    nothing_readable,
    reaching,
    read_layers,
)
from samplelens_widget.cam.result import CamResult, LayerInfo
from samplelens_widget.cam.targets import Score, Target, as_target

# What explain() takes: one sample (C, H, W), a batch (N, C, H, W), or one of those per input of
# a model called as model(*inputs) (a one-input model also takes a list of same-shaped samples
# or a DataLoader's (x, labels): inputs.to_tensors); and the class(es) to explain.
Inputs = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]
Label = int | Sequence[int] | torch.Tensor | np.ndarray | None
#: a class (as ``Label``), a ``targets.Target`` (Loss, Contrast, Region) or ``f(output) -> (N,)``
TargetSpec = Label | Target | Callable[..., torch.Tensor]


class CamEngine:
    """Class-activation maps for every layer of a PyTorch model, in one pass.

    ``CamEngine(model, device=None, layout=None, task=None)``: ``device`` defaults to the
    device of the model's parameters; inputs are moved there and the maps stay there until
    asked for. ``task`` says what the output is where its shape cannot (``"multilabel"``,
    ``"regression"``; see ``samplelens_widget.cam.outputs``); by default ``(N, K)`` is
    multi-class, one score per sample a binary logit, ``(N, K, H, W)`` a segmentation.

    A *layer* is the output of a module call — a leaf (a convolution, a norm, an activation) or
    a block (a ResNet block or stage, an Inception block, a transformer block) — that depends on
    input ``connection`` and lies on its grid in a layout the engine knows (``NCHW``,
    channels-last ``NHWC``, or tokens ``(N, P + h*w, C)`` with ``P`` prefix tokens; see
    ``samplelens_widget.cam.layouts``). Its *depth* is the number of layers on the longest
    path from that input to it. A block whose output is the very tensor of one of its layers is
    that layer, named by the block. Outputs the engine cannot read (attention tensors, window
    partitions, ambiguous shapes) are left out and listed in ``CamResult.left_out``.

    ``layout`` overrides the inference, in the spirit of pytorch-grad-cam's
    ``reshape_transform``: ``"NCHW"``, ``"NHWC"``, ``"tokens"`` or ``"tokens:P"`` for every
    candidate output, a callable ``tensor -> (N, C, h, w)`` applied to activations and gradients
    alike (outputs it fails on are left out), or a dict of layer name to one of those (``None``
    leaves that layer out); layers the dict does not name are inferred.

    A map explains a *target* (``samplelens_widget.cam.targets``): a class's score, the loss,
    a contrast of two classes, a region of a dense output, or any score ``f(output) -> (N,)``.

    One forward with hooks and one ``torch.autograd.grad`` of the summed target scores with
    respect to the captured activations serve every layer and every sample: no weight gradient
    is computed. The model is never changed: hooks are removed and each module's train/eval flag
    restored on every path (``explain`` runs in eval mode), parameters, ``requires_grad`` flags
    and ``.grad`` are left alone.

    How far a map can be trusted: ``faithfulness`` (deletion and insertion of every depth
    against a random and an edge map) and ``sanity_check`` (the cascading model-parameter
    randomisation test, on a copy of the model).
    """

    algorithms: tuple[str, ...] = tuple(ALGORITHMS)

    def __init__(
        self,
        model: nn.Module,
        device: torch.device | str | None = None,
        layout: LayoutSpec = None,
        task: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self._device = None if device is None else torch.device(device)
        self.layout = layouts.check_spec(layout)
        self.task = check_task(task)
        # Outputs a later in-place operation changes, learned on the first pass that sees it:
        # norms are run again in the backward, the others handed on as copies.
        self._clone: set[str] = set()
        self._recompute: set[str] = set()

    @property
    def device(self) -> torch.device:
        """Where inputs go: the ``device`` given, else where the model's parameters are now."""
        return self._device if self._device is not None else model_device(self.model)

    def __repr__(self) -> str:
        return f"CamEngine({type(self.model).__name__}, device={str(self.device)!r})"

    def layers(self, inputs: Inputs, connection: int = 0) -> list[LayerInfo]:
        """The layers of input ``connection``, sorted by depth (ties: execution order): those
        of ``explain(inputs, connection=connection)``."""
        return self.explain(inputs, connection=connection).layers

    def explain(
        self,
        inputs: Inputs,
        target: TargetSpec = None,
        algorithm: str = "gradcam",
        connection: int = 0,
        *,
        label: Label = None,
    ) -> CamResult:
        """Maps of every layer for ``target`` with ``algorithm`` (one of
        ``CamEngine.algorithms``) on input ``connection``. ``target``: ``None`` (each sample's
        predicted class), a class (an int or one per sample), ``targets.Loss(labels)``,
        ``targets.Contrast(a, b)``, ``targets.Region(class_index, mask)`` or any callable
        ``f(output) -> (N,)`` given the model's output as it came. ``label=`` is the older
        name of a class target. See ``CamResult`` for what comes back.

        ``inputs``: a sample (C,H,W), a batch (N,C,H,W), or one of those per input of the
        model; for a one-input model also a list of same-shaped samples (stacked into a batch)
        or a DataLoader's ``(x, labels)`` (``x`` is explained, with a warning; the labels are
        not the target) — see ``inputs.to_tensors``. Malformed inputs are ``inputs:`` errors
        raised before the model runs; an error inside the model's forward or backward is the
        model's: "the model raised on the inputs (input (2, 3, 224, 224) float32): ...", of
        the original's type where it can carry the message (else RuntimeError), the original
        chained as ``__cause__`` (``errors.py``)."""
        algo = ALGORITHMS[checks.check_algorithm(algorithm, self.algorithms)]
        goal = as_target(target, label)
        tensors = checks.to_tensors(inputs, self.model, stacklevel=3)
        connection = checks.check_connection(connection, len(tensors))
        with eval_mode(self.model), torch.inference_mode(False), torch.enable_grad():
            out, layers, batch, left_out = self._forward(tensors, connection)
            if not out.scores.requires_grad and not isinstance(goal, Score):
                raise ValueError(
                    f"model: its output does not depend on input {connection} through autograd "
                    f"(is it detached, or computed under torch.no_grad inside the model?); the "
                    f"maps need the gradient of the logits"
                )
            per_sample = goal.scores(out)
            if not per_sample.requires_grad:
                raise ValueError(
                    f"target: the score does not depend on input {connection} through autograd "
                    f"(is the model's output detached, computed under torch.no_grad, or is the "
                    f"target not differentiable, e.g. an argmax?); the maps need its gradient"
                )
            score = per_sample.sum()
            classes = goal.classes(out)
            maps, reached = self._backward(score, layers, algo.layer_map, batch)
            del score
        infos = reaching(layers, reached, left_out)
        maps = {info.name: maps[info.name] for info in infos}
        with torch.no_grad():
            if algo.refine is not None:
                top = max(i.depth for i in infos)
                deepest = [i for i in infos if i.depth == top][-1]
                maps = algo.refine(maps, {i.name: i.depth for i in infos}, deepest.name)
        size = (int(batch[connection].shape[-2]), int(batch[connection].shape[-1]))
        readers = {lay.info.name: lay.layout for lay in layers}
        return CamResult(
            infos, maps, out, classes, algo.name, connection, size, left_out, readers,
            target=goal, scores=per_sample.detach(),
        )

    def faithfulness(
        self,
        inputs: Inputs,
        target: TargetSpec = None,
        algorithm: str = "gradcam",
        connection: int = 0,
        depths: int | Sequence[int] | None = None,
        steps: int = 20,
        baseline: float | torch.Tensor | np.ndarray | None = None,
        *,
        batch_size: int | None = None,
        draws: int = 3,
        seed: int = 0,
        precision: str = "float32",
    ) -> Faithfulness:
        """Deletion and insertion AUC of each depth's heatmap (``depths``: one, several or
        ``None``, all), and of a random and an edge map to beat: a ``Faithfulness``.

        The pixels are ranked by ``heatmap(depth)`` (ties by position); deletion replaces the
        most salient by ``baseline``, insertion reveals them on it, ``steps`` equal steps of the
        pixel count (2 .. H*W); the curve is the target's probability (softmax for ``(N, K)``
        logits, as the task reads it; ``1 - p(true label)`` for a ``Loss``, the target's own
        score for a region or a callable: ``Faithfulness.measure`` says which), the area the
        trapezoid over the fraction changed. ``baseline``: ``None`` (each channel's mean over
        the sample), a number, ``(C,)``, ``(C, H, W)`` or ``(N, C, H, W)``. ``random`` is the
        mean of ``draws`` draws seeded by ``seed``; ``edges`` the input's Sobel magnitude.
        Every perturbed image goes through the model in batches of ``batch_size`` (``None``: 32
        on a CPU, 256 on an accelerator) under ``torch.no_grad`` in eval mode (restored).
        ``precision``: ``"float32"`` (the model as it is) or ``"bfloat16"`` (those forwards
        under ``torch.autocast``: about 3x faster on CPUs with AMX or AVX-512 BF16 and on
        recent GPUs, scores within about 1e-3; the maps are always computed in the model's
        own precision). See ``samplelens_widget.cam.faithfulness``.
        """
        return faith.faithfulness(
            self, inputs, target, algorithm, connection, depths, steps, baseline,
            batch_size=batch_size, draws=draws, seed=seed, precision=precision,
        )

    def sanity_check(
        self,
        inputs: Inputs,
        target: TargetSpec = None,
        algorithm: str = "gradcam",
        connection: int = 0,
        depth: int | None = None,
        stages: Sequence[str] | None = None,
        progress: Callable[[int, int], object] | None = None,
        *,
        model_factory: Callable[[], nn.Module] | None = None,
        seed: int = 0,
    ) -> list[tuple[str, float]]:
        """The cascading model-parameter randomisation test (Adebayo et al. 2018):
        ``[(stage, rho), ...]``, Spearman's rank correlation between the map at ``depth``
        (``None``: the deepest) and the map of the same layer after the stages so far are
        re-initialised, output first, on a copy of the model (``copy.deepcopy``; for a model
        that cannot be deep-copied, ``model_factory``: a callable returning a fresh copy with
        the same weights). ``stages``: module names, re-initialised in the order given;
        ``None``: the model's children, last called first (see
        ``samplelens_widget.cam.sanity``). ``progress(done, total)`` is called after each
        stage. A faithful map decorrelates (rho well below 1) as the weights go random. The
        model itself is never changed."""
        return sanity.sanity_check(
            self, inputs, target, algorithm, connection, depth, stages, progress,
            model_factory=model_factory, seed=seed,
        )

    @staticmethod
    def _backward(
        score: torch.Tensor, layers: list[Layer], layer_map: LayerMap, batch: list[torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, bool]]:
        """The activation-only backward. Each layer's map is computed by a hook on its
        activation as soon as that gradient exists, so gradients are freed as the backward goes
        on instead of all being held at its end. The backward stops at the depth-1 layers.
        Also returns, per layer, whether any gradient reached its grid positions. An error of
        the backward itself (a custom autograd function's) is the model's (``errors``); one of
        the maps' hooks propagates as it came."""
        maps: dict[str, torch.Tensor] = {}
        reach: dict[str, torch.Tensor] = {}
        ours: list[BaseException] = []  # errors of the hooks below: the engine's, not the model's

        def make_hook(layer: Layer) -> Callable[[torch.Tensor | None], None]:
            def hook(grad: torch.Tensor | None) -> None:
                try:
                    layer_hook(grad)
                except BaseException as err:
                    ours.append(err)
                    raise

            def layer_hook(grad: torch.Tensor | None) -> None:
                cap = layer.capture
                if layer.info.name not in maps and grad is not None and cap is not None:
                    with torch.no_grad():
                        g = layer.layout.to_nchw(grad).float()
                        a = layer.layout.to_nchw(cap.activation()).float()
                        maps[layer.info.name] = layer_map(a, g)
                        # a head may read some tokens only (a class token): do the others
                        # get any gradient? A map on a grid is reached through its pooling
                        reach[layer.info.name] = (
                            g.ne(0).any() if layer.layout.kind == "tokens" else READ_ALL
                        )
                    del a, g
                    layer.release()  # autograd frees the activation when it is done with it

            return hook

        handles = []
        roots: list[tuple[Layer, torch.Tensor]] = []
        for lay in layers:
            cap = lay.capture
            assert cap is not None
            hook = make_hook(lay)
            if cap.recompute is None:
                handles.append(cap.tensor.register_hook(hook))  # type: ignore[no-untyped-call]
            else:  # rewritten in place: the gradient of the norm's own output, at its node
                node = cast(Node, cap.node)
                handles.append(node.register_prehook(lambda grads, hook=hook: hook(grads[0])))
            if lay.info.depth == 1:  # a norm run again is reached on the way to its input
                roots.append((lay, cap.tensor if cap.recompute is None else cap.recompute[1]))
        try:
            ends = [t for _, t in roots]
            try:
                grads = torch.autograd.grad(
                    score, ends, allow_unused=True, materialize_grads=True
                )
            except torch.OutOfMemoryError:
                raise
            except Exception as err:
                if ours:
                    raise
                raise model_raised(err, batch, backward=True) from err
            del ends
            for (lay, _), grad in zip(roots, grads, strict=True):
                cap = lay.capture
                if cap is not None and cap.recompute is None:
                    make_hook(lay)(grad)
            del roots, grads
        finally:
            for h in handles:
                h.remove()
        for lay in layers:  # layers the target does not depend on: no gradient
            name = lay.info.name
            if name not in maps:
                _, h, w = lay.info.shape
                maps[name] = torch.zeros((lay.shape[0], h, w), device=lay.device)
                lay.release()
                reach[name] = READ_NONE
        flags = {name: bool(v) for name, v in reach.items() if v is READ_ALL or v is READ_NONE}
        checked = [name for name in reach if name not in flags]
        if checked:  # one transfer for all of them
            values = torch.stack([reach[name] for name in checked]).tolist()
            flags.update(zip(checked, values, strict=True))
        return maps, flags

    def _forward(
        self, tensors: list[torch.Tensor], connection: int
    ) -> tuple[Output, list[Layer], list[torch.Tensor], LeftOut]:
        """One forward with capture hooks. Returns (the output, the layers of ``connection`` in
        execution order, the batched inputs, the outputs left out and why)."""
        tensors = checks.add_batch_dim(tensors, connection)
        checks.check_batch(tensors, connection)
        batch = [self._prepare(t) for t in tensors]
        if not batch[connection].requires_grad:
            raise ValueError(
                f"connection: input {connection} has dtype {tensors[connection].dtype}; "
                f"the heatmap's input must be floating point"
            )
        n = batch[connection].shape[0]
        for _ in range(3):
            recompute = frozenset(self._recompute)
            with capture_outputs(self.model, self._clone, n, recompute) as rec:
                try:
                    output = self.model(*[x.clone() if x.requires_grad else x for x in batch])
                except torch.OutOfMemoryError:
                    raise
                except Exception as err:  # the model's own error, not the inputs'
                    raise model_raised(err, batch) from err
            changed = {c.key for c in rec.captures
                       if c.recompute is None and c.tensor._version != c.version}
            stale = {c.key for c in rec.captures  # a norm whose input was rewritten too
                     if c.recompute is not None and c.recompute[1]._version != c.recompute[2]}
            new = changed - self._clone
            if not new and not stale:
                break
            norms = {c.key for c in rec.captures if c.key in new and c.can_recompute}
            # run again: norms recomputed in the backward, the others handed on as copies
            self._recompute = (self._recompute | norms) - stale
            self._clone |= (new - norms) | stale
        changed |= stale
        if changed:  # copies did not keep them: something rewrites them through another view
            warnings.warn(
                f"layers {sorted(changed)} are rewritten in place after they run, even when "
                f"handed on as copies; their maps are left out",
                RuntimeWarning,
                stacklevel=3,
            )
        out = read_output(output, self.task)
        captures = [c for c in rec.captures if c.key not in changed]
        size = (int(batch[connection].shape[-2]), int(batch[connection].shape[-1]))
        sequences = {c.tensor.shape[1] for c in captures if c.tensor.dim() == 3}
        sequences |= {s.shape[1] for s in rec.seen if len(s.shape) == 3}
        layers, left_out = read_layers(
            self.model, captures, batch, connection, size, self.layout, sequences
        )
        left_out += [(s.name, s.shape, "its first dimension is not the batch: windows or "
                      "sequence-first") for s in rec.seen]
        if not layers:
            raise ValueError(nothing_readable(self.model, connection, size, left_out))
        return out, layers, batch, left_out

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A leaf copy of an input on the engine's device; floating inputs require grad so that
        the graph records what depends on them."""
        x = x.detach().to(self.device)
        if x.is_inference():  # made under torch.inference_mode: take a normal copy
            x = x.clone()
        return x.requires_grad_(True) if x.is_floating_point() else x


__all__ = ["CamEngine", "Capture"]
