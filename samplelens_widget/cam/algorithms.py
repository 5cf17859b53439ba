"""The CAM algorithms: one small pure function each, in a registry.

Each algorithm turns one layer's activations ``A`` (N, C, h, w) and the gradients of the target
score with respect to them ``G`` into a map (N, h, w). An algorithm may add a ``refine`` step
that sees the maps of all layers (Focus Layer CAM does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from samplelens_widget.cam.result import minmax, upsample

LayerMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# refine(maps in execution order, depth of each, the name of the deepest layer) -> maps
Refine = Callable[[dict[str, torch.Tensor], dict[str, int], str], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Algorithm:
    name: str
    title: str
    layer_map: LayerMap
    refine: Refine | None = None


ALGORITHMS: dict[str, Algorithm] = {}


def register(name: str, title: str, refine: Refine | None = None) -> Callable[[LayerMap], LayerMap]:
    def wrap(fn: LayerMap) -> LayerMap:
        ALGORITHMS[name] = Algorithm(name, title, fn, refine)
        return fn

    return wrap


def gradcam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """GradCAM (Selvaraju et al. 2017): ReLU(sum_k mean_ij(dy/dA_k) * A_k)."""
    n, c, h, w = acts.shape
    weights = grads.mean(dim=(2, 3))
    # one (1 x C) @ (C x hw) product per sample: reads the activations once, in place
    return F.relu(torch.bmm(weights[:, None, :], acts.reshape(n, c, h * w)).reshape(n, h, w))


def layercam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """LayerCAM (Jiang et al. 2021): ReLU(sum_k ReLU(dy/dA_k) * A_k), element-wise."""
    weighted = grads.clamp(min=0)  # a new tensor: the gradient itself is still in use
    return F.relu(weighted.mul_(acts).sum(dim=1))


def focus_gate(
    maps: dict[str, torch.Tensor], depths: dict[str, int], deepest: str
) -> dict[str, torch.Tensor]:
    """Focus Layer CAM's refinement: F_l = LayerCAM_l * up_l(norm(LayerCAM_D)).

    ``D`` is the deepest layer (the one ``heatmap(None)`` shows), ``norm`` a per-sample min-max
    to [0, 1] and ``up_l`` a bilinear resize to layer ``l``'s resolution. Layers at the deepest
    depth keep their LayerCAM map: nothing lies deeper to focus them.
    """
    gate = minmax(maps[deepest].float())
    top = depths[deepest]
    out = {}
    for name, m in maps.items():
        size = (int(m.shape[-2]), int(m.shape[-1]))
        out[name] = m if depths[name] >= top else m * upsample(gate, size)
    return out


register("gradcam", "GradCAM")(gradcam)
register("layercam", "LayerCAM")(layercam)
register("focus_layercam", "Focus Layer CAM", refine=focus_gate)(layercam)
