"""``CamEngine``: every layer's class-activation map from one forward and one backward."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from samplelens_widget.engine import inputs as checks
from samplelens_widget.engine.cams import ALGORITHMS
from samplelens_widget.engine.capture import Capture, capture_outputs, eval_mode
from samplelens_widget.engine.graph import dependencies, depths_for
from samplelens_widget.engine.result import CamResult, LayerInfo


class CamEngine:
    """Class-activation maps for every layer of a PyTorch model, in one pass.

    ``CamEngine(model, device=None)``: ``device`` defaults to the device of the model's
    parameters; inputs are moved there and the maps stay there until asked for.

    A *layer* is a call of a leaf module (one without children) whose output is a spatial map
    ``(N, C, h, w)`` with more than one position and that depends on input ``connection``;
    its *depth* is the number of layers on the longest path from that input to it.

    One forward with hooks on the leaf modules and one ``torch.autograd.grad`` of the summed
    target logits with respect to the captured activations serve every layer and every sample:
    no weight gradient is computed. The model is never changed: hooks are removed and each
    module's train/eval flag restored on every path (``explain`` runs in eval mode), parameters,
    ``requires_grad`` flags and ``.grad`` are left alone.
    """

    algorithms: tuple[str, ...] = tuple(ALGORITHMS)

    def __init__(self, model: nn.Module, device: torch.device | str | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self._device = None if device is None else torch.device(device)
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
        """The layers of input ``connection``, sorted by depth (ties: execution order)."""
        tensors = checks.to_tensors(inputs)
        connection = checks.check_connection(connection, len(tensors))
        with eval_mode(self.model), torch.inference_mode(False), torch.enable_grad():
            _, captures, infos, _ = self._forward(tensors, connection)
        del captures
        return sorted(infos, key=lambda info: info.depth)

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
            logits, captures, infos, batch = self._forward(tensors, connection)
            targets = checks.targets_for(label, logits)
            score = logits.gather(1, targets[:, None]).sum()
            if not score.requires_grad:
                raise ValueError(
                    f"model: its output does not depend on input {connection} through autograd "
                    f"(is it detached, or computed under torch.no_grad inside the model?); the "
                    f"maps need the gradient of the logits"
                )
            maps = self._backward(score, captures, infos, algo.layer_map)
            del captures, score
        with torch.no_grad():
            if algo.refine is not None:
                top = max(i.depth for i in infos)
                deepest = [i for i in infos if i.depth == top][-1]
                maps = algo.refine(maps, {i.name: i.depth for i in infos}, deepest.name)
        size = tuple(batch[connection].shape[-2:])
        return CamResult(infos, maps, logits.detach(), targets, algo.name, connection, size)

    @staticmethod
    def _backward(score, captures, infos, layer_map) -> dict[str, torch.Tensor]:
        """The activation-only backward. Each layer's map is computed by a hook on its
        activation as soon as that gradient exists, so gradients are freed as the backward goes
        on instead of all being held at its end. The backward stops at the depth-1 layers."""
        maps: dict[str, torch.Tensor] = {}

        def make_hook(name: str, act: torch.Tensor):
            def hook(grad: torch.Tensor) -> None:
                if name not in maps:
                    with torch.no_grad():
                        maps[name] = layer_map(act.detach().float(), grad.float())

            return hook

        acts = {info.name: captures[info.name].tensor for info in infos}
        handles = [act.register_hook(make_hook(name, act)) for name, act in acts.items()]
        try:
            roots = [info.name for info in infos if info.depth == 1]
            grads = torch.autograd.grad(
                score, [acts[n] for n in roots], allow_unused=True, materialize_grads=True
            )
            for name, grad in zip(roots, grads, strict=True):
                make_hook(name, acts[name])(grad)
        finally:
            for h in handles:
                h.remove()
        for name, act in acts.items():  # layers the target does not depend on: no gradient
            if name not in maps:
                maps[name] = act.new_zeros((act.shape[0], *act.shape[2:]), dtype=torch.float32)
        return {info.name: maps[info.name] for info in infos}

    def _forward(self, tensors: list[torch.Tensor], connection: int):
        """One forward with capture hooks. Returns (logits, {name: Capture}, the layers of
        ``connection`` in execution order, the batched inputs)."""
        tensors = checks.add_batch_dim(tensors, connection)
        batch = [self._prepare(t) for t in tensors]
        if not batch[connection].requires_grad:
            raise ValueError(
                f"connection: input {connection} has dtype {tensors[connection].dtype}; "
                f"the heatmap's input must be floating point"
            )
        for _ in range(3):
            with capture_outputs(self.model, self._clone) as captured:
                try:
                    output = self.model(*[x.clone() if x.requires_grad else x for x in batch])
                except torch.OutOfMemoryError:
                    raise
                except Exception as err:
                    raise ValueError(
                        f"inputs: the model rejected the inputs ({checks.describe_inputs(batch)})"
                        f": {type(err).__name__}: {err}"
                    ) from err
            changed = {c.name for c in captured if c.tensor._version != c.version}
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
        depth = depths_for(dependencies(captured, batch), connection)
        infos = [
            LayerInfo(c.name, depth[i], tuple(c.tensor.shape[1:]))
            for i, c in enumerate(captured)
            if i in depth and c.name not in changed
        ]
        if not infos:
            raise ValueError(
                f"connection: no spatial layer (a leaf module with an (N, C, h, w) output) is "
                f"reachable from input {connection} of {type(self.model).__name__}"
            )
        return logits, {c.name: c for c in captured}, infos, batch

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A leaf copy of an input on the engine's device; floating inputs require grad so that
        the graph records what depends on them."""
        x = x.detach().to(self.device)
        if x.is_inference():  # made under torch.inference_mode: take a normal copy
            x = x.clone()
        return x.requires_grad_(True) if x.is_floating_point() else x


__all__ = ["CamEngine", "Capture"]
