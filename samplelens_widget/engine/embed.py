"""The population engine: per-sample features, their 2-D projection and nearest neighbours.

A facade: the code lives in four modules, re-exported here under the names it always had.

- ``engine.features``: ``check_layer`` / ``layer_names``, the layer names accepted, checked
  before any work; ``extract_features`` runs the model over a data set in batches on its device
  and keeps one layer's output per sample (globally average-pooled when it is a map);
  ``cached_features`` puts a ``FeatureCache`` (memory + disk) in front of it.
- ``engine.projection``: ``pca_2d`` (torch, milliseconds) is the preview; ``umap_2d``
  (umap-learn, seeded, on an exact k-NN graph computed with torch up to ``UMAP_EXACT_KNN_MAX``
  samples) the map; ``project`` picks one with the fallbacks for small slices,
  ``project_in_background`` runs UMAP in a daemon thread and calls back; ``warm_up_umap``
  compiles umap-learn's numba code early.
- ``engine.neighbours``: ``SimilarityIndex`` / ``nearest``, exact cosine nearest neighbours with
  torch on the device.
- ``engine.payload``: ``pack_coords`` / ``encode_colors``, the binary payloads the page receives.

Pure torch + numpy (umap-learn imported lazily); nothing from the widget. To replace a function
or constant in tests (``monkeypatch``), patch the module that defines it, not this facade.
"""

from __future__ import annotations

from samplelens_widget.engine.features import (
    Features,
    Progress,  # noqa: F401 (a public name outside __all__)
    cached_features,
    check_layer,
    default_layer,
    extract_features,
    layer_names,
    layer_reader,
)
from samplelens_widget.engine.neighbours import SimilarityIndex, nearest
from samplelens_widget.engine.payload import encode_colors, pack_coords
from samplelens_widget.engine.projection import (
    MIN_UMAP_SAMPLES,
    PCA_EXACT_DIM,
    UMAP_EXACT_KNN_MAX,
    UMAP_SHORT_EPOCHS_FROM,
    BackgroundProjection,
    Projection,
    _exact_knn,  # noqa: F401 (private; the tests import it from here)
    _numba_cache_dir,  # noqa: F401 (private; the benchmarks import it from here)
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
    "Features",
    "Projection",
    "SimilarityIndex",
    "cached_features",
    "check_layer",
    "default_layer",
    "encode_colors",
    "extract_features",
    "layer_names",
    "layer_reader",
    "nearest",
    "pack_coords",
    "pca_2d",
    "project",
    "project_in_background",
    "umap_2d",
    "warm_up_umap",
]
