"""The two engine packages: their public names are the defining modules' own objects, and
their imports keep the layering: ``cam`` imports neither the population package nor the
widget, ``population`` not the widget, and neither pulls in umap-learn at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import samplelens_widget.cam as cam
import samplelens_widget.population as population
from samplelens_widget.population import cache, features, neighbours, projection

MODULES = (cache, features, projection, neighbours)


@pytest.mark.parametrize("name", population.__all__)
def test_population_exports_the_defining_modules_objects(name):
    owners = [m for m in MODULES if name in getattr(m, "__all__", ()) or hasattr(m, name)]
    assert owners, name
    assert getattr(population, name) is getattr(owners[0], name)


def test_the_cam_package_exports_the_main_api():
    for name in ["ALGORITHMS", "CamEngine", "CamResult", "LayerInfo", "Layout", "LayoutSpec"]:
        assert name in cam.__all__ and hasattr(cam, name)


FORBIDDEN = ("anywidget", "ipywidgets", "traitlets", "umap")


@pytest.mark.parametrize(
    ("package", "allowed"),
    [("samplelens_widget.cam", ("samplelens_widget.cam",)),
     ("samplelens_widget.population", ("samplelens_widget.cam", "samplelens_widget.population"))],
)
def test_the_engine_packages_import_nothing_from_the_widget(package, allowed):
    # anything of samplelens_widget outside the allowed packages is the widget side (the widget,
    # its session, the protocol, the workers, ...), whatever it is called now or later
    code = (
        f"import sys, {package}\n"
        f"ours = [m for m in sys.modules if m.startswith('samplelens_widget.')]\n"
        f"bad = [m for m in ours\n"
        f"       if not any(m == a or m.startswith(a + '.') for a in {allowed!r})]\n"
        f"bad += [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        f"assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
