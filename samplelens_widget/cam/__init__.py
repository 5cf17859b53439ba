"""The CAM engine: every layer's class-activation map in one pass. Pure torch; imports nothing
from the population package or the widget.

- ``cam_engine``: ``CamEngine`` (the public entry point);
- ``capture``: hooks, the model's lock and eval mode, context managers all;
- ``graph``: layer depths from the autograd graph;
- ``layouts`` / ``reading``: how each output lies on the input's grid, which outputs are layers;
- ``algorithms``: one small function per CAM method, in a registry;
- ``targets``: what a map explains (a class, ``Loss``, ``Contrast``, ``Region``, a callable);
  ``outputs``: what the model's output is (its task) and its probabilities;
- ``result``: ``CamResult`` and ``LayerInfo``; ``metrics``: pointing game, deletion/insertion;
- ``faithfulness``: ``CamEngine.faithfulness``, every depth's deletion/insertion AUC against a
  random and an edge map (``Faithfulness``); ``sanity``: ``CamEngine.sanity_check``, the
  cascading model-parameter randomisation test;
- ``inputs``: checking and shaping what callers pass; ``errors``: the model's own errors.
"""

from samplelens_widget.cam.algorithms import ALGORITHMS
from samplelens_widget.cam.cam_engine import CamEngine
from samplelens_widget.cam.faithfulness import Faithfulness
from samplelens_widget.cam.layouts import Layout, LayoutSpec
from samplelens_widget.cam.outputs import TASKS
from samplelens_widget.cam.result import CamResult, LayerInfo
from samplelens_widget.cam.targets import Contrast, Loss, Region, Target

__all__ = [
    "ALGORITHMS",
    "TASKS",
    "CamEngine",
    "CamResult",
    "Contrast",
    "Faithfulness",
    "LayerInfo",
    "Layout",
    "LayoutSpec",
    "Loss",
    "Region",
    "Target",
]
