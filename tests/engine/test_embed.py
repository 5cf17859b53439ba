"""The ``engine.embed`` facade: every name it always had, re-exported from the module that now
defines it (the code itself is tested in test_features.py, test_projection.py,
test_projection_umap.py, test_neighbours.py and test_payload.py); and the engine package
exports the main API without importing umap-learn."""

from __future__ import annotations

import subprocess
import sys

import pytest

import samplelens_widget.engine as engine
from samplelens_widget.engine import embed, features, neighbours, payload, projection

MODULES = (features, projection, neighbours, payload)
#: names outside the modules' ``__all__`` that other code imports from ``embed``
PRIVATE = [(projection, "_exact_knn"), (projection, "_numba_cache_dir")]
PAIRS = [(m, name) for m in MODULES for name in m.__all__] + PRIVATE


@pytest.mark.parametrize(("module", "name"), PAIRS, ids=[name for _, name in PAIRS])
def test_the_facade_re_exports_the_defining_modules_objects(module, name):
    assert getattr(embed, name) is getattr(module, name)


def test_the_facade_all_is_the_modules_public_api():
    public = {name for m in MODULES for name in m.__all__} - {"Progress"}  # never in embed.__all__
    assert sorted(embed.__all__) == sorted(public)


def test_the_engine_package_exports_the_main_api():
    for name in ["ALGORITHMS", "CamEngine", "CamResult", "LayerInfo"]:
        assert name in engine.__all__
    for name in engine.__all__:
        assert hasattr(engine, name), name
    assert engine.extract_features is features.extract_features
    assert engine.project_in_background is projection.project_in_background


def test_importing_the_package_does_not_import_umap():
    code = "import samplelens_widget, sys; assert 'umap' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
