"""What a map explains (``samplelens_widget.targets.Loss`` etc.): see
``samplelens_widget.cam.targets``, where they are defined."""

from samplelens_widget.cam.targets import Class, Contrast, Loss, Region, Score, Target

__all__ = ["Class", "Contrast", "Loss", "Region", "Score", "Target"]
