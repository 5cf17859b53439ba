"""The population engine: per-sample features of a data set, their 2-D projection and nearest
neighbours. Pure torch + numpy (umap-learn imported lazily, by the first UMAP fit); it uses the
CAM engine to find and read layers, and imports nothing from the widget.

- ``items``: the data set item splitter; ``cache``: the feature cache (memory + disk);
- ``features``: ``check_layer`` / ``layer_names``, checked before any work; ``extract_features``
  runs the model over a data set in batches and keeps one layer's output per sample, pooled
  over its grid; ``cached_features`` puts a ``FeatureCache`` in front of it;
- ``projection``: ``pca_2d`` (the preview), ``umap_2d`` (the map), ``project`` with fallbacks for
  small slices, ``project_in_background``, ``warm_up_umap``;
- ``neighbours``: ``SimilarityIndex`` / ``nearest``, exact cosine neighbours with torch.

To replace a function or constant in tests (``monkeypatch``), patch the module that defines it.
"""

from samplelens_widget.population.cache import FeatureCache
from samplelens_widget.population.features import (
    Features,
    cached_features,
    check_layer,
    default_layer,
    extract_features,
    layer_names,
    layer_reader,
    resolve_layer,
)
from samplelens_widget.population.neighbours import SimilarityIndex, nearest
from samplelens_widget.population.projection import (
    MIN_UMAP_SAMPLES,
    PCA_EXACT_DIM,
    UMAP_EXACT_KNN_MAX,
    UMAP_SHORT_EPOCHS_FROM,
    BackgroundProjection,
    Projection,
    pca_2d,
    project,
    project_in_background,
    umap_2d,
    warm_up_umap,
)

__all__ = [
    "MIN_UMAP_SAMPLES",
    "PCA_EXACT_DIM",
    "UMAP_EXACT_KNN_MAX",
    "UMAP_SHORT_EPOCHS_FROM",
    "BackgroundProjection",
    "FeatureCache",
    "Features",
    "Projection",
    "SimilarityIndex",
    "cached_features",
    "check_layer",
    "default_layer",
    "extract_features",
    "layer_names",
    "layer_reader",
    "nearest",
    "pca_2d",
    "project",
    "project_in_background",
    "resolve_layer",
    "umap_2d",
    "warm_up_umap",
]
