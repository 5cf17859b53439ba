"""The CAM engine: pure torch + numpy, importing nothing from the widget."""

from samplelens_widget.engine.cam_engine import CamEngine
from samplelens_widget.engine.cams import ALGORITHMS
from samplelens_widget.engine.result import CamResult, LayerInfo

__all__ = ["ALGORITHMS", "CamEngine", "CamResult", "LayerInfo"]
