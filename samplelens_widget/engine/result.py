"""The public result types of the engine: ``LayerInfo`` and ``CamResult``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LayerInfo:
    """One layer: a call of a leaf module whose output is a spatial map.

    ``name`` is the module's path in ``model.named_modules()`` (``path#2``, ``path#3``, ... for
    its later calls in one forward), ``depth`` the number of layers on the longest path from the
    input to it (itself included), ``shape`` its output per sample, ``(C, h, w)``.
    """

    name: str
    depth: int
    shape: tuple[int, ...]


def _minmax(x: torch.Tensor) -> torch.Tensor:
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
        logits: ``(N, K)`` float32 array, the model's output.
        probabilities: softmax of the logits, ``(N, K)``.
        predictions: ``(N,)`` int64, the arg-max class per sample.
        targets: ``(N,)`` int64, the class whose logit was explained, per sample.
        algorithm, connection: what was asked for.
        input_size: ``(H, W)`` of input ``connection``: the resolution of ``heatmap``.
    """

    def __init__(
        self,
        layers: list[LayerInfo],
        maps: dict[str, torch.Tensor],
        logits: torch.Tensor,
        targets: torch.Tensor,
        algorithm: str,
        connection: int,
        input_size: tuple[int, int],
    ) -> None:
        self.layers = sorted(layers, key=lambda info: info.depth)  # stable: ties keep exec order
        self._by_name = {info.name: info for info in layers}
        self._maps = maps
        self._exec_order = [info.name for info in layers]
        self.logits = logits.detach().float().cpu().numpy()
        self.probabilities = torch.softmax(logits.detach().float(), dim=1).cpu().numpy()
        self.predictions = self.logits.argmax(axis=1).astype(np.int64)
        self.targets = targets.detach().cpu().numpy().astype(np.int64)
        self.algorithm = algorithm
        self.connection = connection
        self.input_size = tuple(int(s) for s in input_size)
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
        """The raw map of layer ``name`` as a tensor (N, h, w) on the model's device."""
        if name not in self._maps:
            raise ValueError(
                f"name: {name!r} is not a layer of this result; allowed: {self._exec_order}"
            )
        return self._maps[name]

    def raw(self, name: str) -> np.ndarray:
        """The map of layer ``name`` at its own resolution, ``(N, h, w)`` float32, after the
        algorithm's ReLU and before any normalisation."""
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
        return _minmax(up).cpu().numpy()
