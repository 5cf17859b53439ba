"""samplelens-widget: per-sample explanation of PyTorch models in Jupyter.

``CamEngine`` computes class-activation maps for every layer of a model in one
forward and one activation-only backward; ``SampleLens`` is the Jupyter widget
built on it.
"""

from samplelens_widget.cam import CamEngine, CamResult, LayerInfo

__all__ = ["CamEngine", "CamResult", "LayerInfo", "SampleLens"]
__version__ = "0.1.0"


def __getattr__(name: str) -> type:
    # The widget pulls in ipywidgets/anywidget; the engine alone must not.
    if name == "SampleLens":
        from samplelens_widget.widget import SampleLens

        return SampleLens
    raise AttributeError(f"module 'samplelens_widget' has no attribute {name!r}")
