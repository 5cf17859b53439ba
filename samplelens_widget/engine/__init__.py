"""The CAM engine and the population engine: pure torch + numpy, importing nothing from the
widget (umap-learn is imported lazily, by the first UMAP fit)."""

from samplelens_widget.engine.cache import FeatureCache
from samplelens_widget.engine.cam_engine import CamEngine
from samplelens_widget.engine.cams import ALGORITHMS
from samplelens_widget.engine.features import (
    Features,
    cached_features,
    check_layer,
    extract_features,
    layer_names,
)
from samplelens_widget.engine.neighbours import SimilarityIndex, nearest
from samplelens_widget.engine.payload import encode_colors, pack_coords
from samplelens_widget.engine.projection import (
    Projection,
    pca_2d,
    project,
    project_in_background,
    umap_2d,
)
from samplelens_widget.engine.result import CamResult, LayerInfo

__all__ = [
    "ALGORITHMS",
    "CamEngine",
    "CamResult",
    "FeatureCache",
    "Features",
    "LayerInfo",
    "Projection",
    "SimilarityIndex",
    "cached_features",
    "check_layer",
    "encode_colors",
    "extract_features",
    "layer_names",
    "nearest",
    "pack_coords",
    "pca_2d",
    "project",
    "project_in_background",
    "umap_2d",
]
