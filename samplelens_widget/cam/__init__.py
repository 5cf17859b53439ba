"""The CAM engine: every layer's class-activation map in one pass. Pure torch; imports nothing
from the population package or the widget.

- ``cam_engine``: ``CamEngine`` (the public entry point);
- ``capture``: hooks, the model's lock and eval mode, context managers all;
- ``graph``: layer depths from the autograd graph;
- ``layouts`` / ``reading``: how each output lies on the input's grid, which outputs are layers;
- ``algorithms``: one small function per CAM method, in a registry;
- ``result``: ``CamResult`` and ``LayerInfo``; ``metrics``: pointing game, deletion/insertion;
- ``inputs``: checking and shaping what callers pass.
"""

from samplelens_widget.cam.algorithms import ALGORITHMS
from samplelens_widget.cam.cam_engine import CamEngine
from samplelens_widget.cam.layouts import Layout, LayoutSpec
from samplelens_widget.cam.result import CamResult, LayerInfo

__all__ = ["ALGORITHMS", "CamEngine", "CamResult", "LayerInfo", "Layout", "LayoutSpec"]
