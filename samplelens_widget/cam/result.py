"""The public result types of the engine: ``LayerInfo`` and ``CamResult``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from samplelens_widget.cam.layouts import Layout
from samplelens_widget.cam.outputs import Output
from samplelens_widget.cam.targets import Target


@dataclass(frozen=True)
class LayerInfo:
    """One layer: the output of a module call (a leaf or a block) read on the input's grid.

    ``name`` is the module's path in ``model.named_modules()`` (``path#2``, ``path#3``, ... for
    its later calls in one forward); where several modules return the very same tensor (a stage,
    its last block and that block's last layer) the outermost one names it and the others are
    its ``aliases``. ``depth`` is the number of layers on the longest path from the input to it
    (itself included), ``shape`` the map it is read as, per sample, ``(C, h, w)``, and
    ``layout`` how the output lies: ``"NCHW"``, ``"NHWC"``, ``"tokens (P prefix + hxw)"``,
    ``"tokens (hxw)"`` or ``"custom"`` (a ``layout=`` callable).
    """

    name: str
    depth: int
    shape: tuple[int, ...]
    layout: str = "NCHW"
    aliases: tuple[str, ...] = ()


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each sample of ``x`` (N, ...) to [0, 1]; a constant sample gives 0."""
    flat = x.reshape(x.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(x.dtype).tiny), 0.0)
    return out.reshape(x.shape)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of maps (N, h, w) to (N, *size), ``align_corners=False``."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class CamResult:
    """The class-activation maps of every layer for one batch, from one ``CamEngine.explain``.

    The maps stay on the model's device until asked for.

    Attributes:
        layers: ``list[LayerInfo]`` sorted by depth; layers of equal depth keep execution order.
        depths: the distinct depths, ``1 .. max``.
        task: what the output was read as (``samplelens_widget.cam.outputs``): ``"multiclass"``,
            ``"multilabel"``, ``"binary"``, ``"regression"`` or ``"segmentation"``.
        logits: float32 array, the model's scores: ``(N, K)``, ``(N, 1)`` for one score per
            sample, ``(N, K, H, W)`` for a segmentation.
        probabilities: ``(N, num_classes)`` as fits the task (softmax; sigmoid for a binary
            logit, ``[1 - p, p]``, and for multi-label; a segmentation's per-pixel softmax
            averaged over the pixels), ``None`` for a regression.
        predictions: ``(N,)`` int64, the predicted class per sample.
        num_classes: the classes a label can name (2 for a binary logit).
        target: what was explained (a ``targets.Target``: ``Class``, ``Loss``, ``Contrast``,
            ``Region`` or ``Score``); ``scores``: ``(N,)`` its value per sample.
        targets: ``(N,)`` int64, the class each sample's map is about (``-1``: none, e.g. a
            callable target).
        algorithm, connection: what was asked for.
        input_size: ``(H, W)`` of input ``connection``: the resolution of ``heatmap``.
        left_out: ``[(name, shape, reason), ...]``, the module outputs that are not layers
            because the engine cannot read them on the input's grid (attention tensors, window
            partitions, ambiguous shapes) or the prediction does not depend on their grid.
    """

    def __init__(
        self,
        layers: list[LayerInfo],
        maps: dict[str, torch.Tensor],
        output: Output,
        targets: torch.Tensor,
        algorithm: str,
        connection: int,
        input_size: tuple[int, int],
        left_out: list[tuple[str, tuple[int, ...], str]] | None = None,
        readers: dict[str, Layout] | None = None,
        *,
        target: Target | None = None,
        scores: torch.Tensor | None = None,
    ) -> None:
        self.layers = sorted(layers, key=lambda info: info.depth)  # stable: ties keep exec order
        self._by_name = {info.name: info for info in layers}
        self._alias = {a: info.name for info in layers for a in info.aliases}
        self.left_out = list(left_out or [])
        self._readers = dict(readers or {})
        self._maps = maps
        self._exec_order = [info.name for info in layers]
        self.task = output.task
        self.logits = output.scores.detach().float().cpu().numpy()
        probs = output.probabilities()
        self.probabilities = None if probs is None else probs.cpu().numpy()
        self.predictions = output.predictions().cpu().numpy().astype(np.int64)
        self.num_classes = output.num_classes
        self.targets = targets.detach().cpu().numpy().astype(np.int64)
        self.target = target
        self.scores = None if scores is None else scores.float().cpu().numpy()
        self.algorithm = algorithm
        self.connection = connection
        self.input_size: tuple[int, int] = (int(input_size[0]), int(input_size[1]))
        self.depths = sorted({info.depth for info in layers})

    def __repr__(self) -> str:
        n = self.logits.shape[0]
        return (
            f"CamResult(algorithm={self.algorithm!r}, samples={n}, layers={len(self.layers)}, "
            f"depths={self.depths[0]}..{self.depths[-1]}, targets={self.targets.tolist()})"
        )

    def layer_at(self, depth: int | None = None) -> LayerInfo:
        """The layer that stands for ``depth``: of the layers at that depth, the last one in
        execution order. ``None`` means the deepest depth."""
        if depth is None:
            depth = self.depths[-1]
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
            raise TypeError(f"depth: expected an int or None, got {depth!r}")
        if depth not in self.depths:
            raise ValueError(
                f"depth: {depth} is not a depth of this model; allowed: "
                f"{self.depths[0]}..{self.depths[-1]} or None (the deepest)"
            )
        return [info for info in self._layers_exec() if info.depth == depth][-1]

    def _layers_exec(self) -> list[LayerInfo]:
        return [self._by_name[name] for name in self._exec_order]

    def map_tensor(self, name: str) -> torch.Tensor:
        """The raw map of layer ``name`` (or one of its aliases) as a tensor (N, h, w) on the
        model's device."""
        name = self._alias.get(name, name)
        if name not in self._maps:
            why = [r for n, _, r in self.left_out if n == name]
            if why:
                raise ValueError(f"name: {name!r} is not a layer of this result: {why[0]}")
            shown = ", ".join(repr(n) for n in self._exec_order[:8])
            more = f", ... ({len(self._exec_order)} in all)" if len(self._exec_order) > 8 else ""
            raise ValueError(
                f"name: {name!r} is not a layer of this result; allowed: {shown}{more} "
                f"(CamResult.layers lists them, with their aliases)"
            )
        return self._maps[name]

    def layer(self, name: str) -> LayerInfo:
        """The ``LayerInfo`` of layer ``name`` or of one of its aliases."""
        self.map_tensor(name)  # the same check and error
        return self._by_name[self._alias.get(name, name)]

    def layout_of(self, name: str) -> Layout:
        """How layer ``name`` (or an alias) is read as ``(N, C, h, w)``: a ``Layout``."""
        return self._readers[self.layer(name).name]

    def raw(self, name: str) -> np.ndarray:
        """The map of layer ``name`` (or an alias) at its own resolution, ``(N, h, w)``
        float32, after the algorithm's ReLU and before any normalisation."""
        return self.map_tensor(name).detach().float().cpu().numpy()

    def heatmap(self, depth: int | None = None) -> np.ndarray:
        """The heatmap at ``depth`` (``None``: the deepest), ``(N, H, W)`` float32 in [0, 1] at
        the resolution of input ``connection``.

        The raw map of ``layer_at(depth)`` — where several layers share a depth, the last one in
        execution order — is upsampled bilinearly (``align_corners=False``) and then min-max
        normalised per sample; a constant map gives all zeros.
        """
        info = self.layer_at(depth)
        up = upsample(self._maps[info.name].float(), self.input_size)
        return minmax(up).cpu().numpy()
