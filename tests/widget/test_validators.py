"""Trait validators check values against what is known and never run a model; a model switch
(an observer) learns the new model's classes and depths and drops what it does not have."""

from __future__ import annotations

import contextlib

import pytest
import traitlets
from fakes import NAMES, Blobs, TinyNet

from samplelens_widget import SampleLens


@contextlib.contextmanager
def counting_forwards(*models):
    calls = []
    handles = [m.register_forward_pre_hook(lambda *_: calls.append(1)) for m in models]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


@pytest.fixture
def two_models():
    a, b = TinyNet(classes=5), TinyNet(classes=3, seed=1)
    lens = SampleLens(a, Blobs(20), models={"a": a, "b": b}, label_names=NAMES,
                      background=False, projection="pca", cache_dir=None)
    yield lens, a, b
    lens.close()


def test_setting_any_trait_runs_no_model(two_models):
    lens, a, b = two_models
    depths = lens.result.depths
    with counting_forwards(a, b) as calls:
        lens.label = 4
        lens.depth = depths[1]
        lens.algorithm = "Layer CAM"
        lens.colormap = "viridis"
        lens.opacity = 0.2
        lens.selected = [3, 4, 5]
        lens.viewed = 4
        lens.connection = 0
        lens.tab = "Input"
        lens.compare = "b"
        for trait, bad in [("label", 5), ("depth", 10_000), ("algorithm", "nope"),
                           ("viewed", 99), ("selected", [0, 99])]:
            with pytest.raises(traitlets.TraitError, match=trait):
                setattr(lens, trait, bad)
    assert calls == []
    assert (lens.label, lens.depth, lens.algorithm) == (4, depths[1], "layercam")


def test_a_model_switch_learns_the_new_model_and_drops_what_it_lacks(two_models):
    lens, a, b = two_models
    lens.label = 4  # a class of model a (5 classes), not of model b (3)
    with counting_forwards(b) as calls:
        lens.model_name = "b"
    assert calls, "the switch (an observer) learns model b"
    assert lens.label is None
    with pytest.raises(traitlets.TraitError, match=r"label: 3 is not a class of the model; "
                                                   r"expected 0\.\.2"):
        lens.label = 3


def test_values_set_together_with_a_model_switch_are_reconciled(two_models):
    lens, a, b = two_models
    with lens.hold_trait_notifications():
        lens.model_name = "b"
        lens.label = 4  # checked against what is known when validated, then dropped
    assert lens.model_name == "b" and lens.label is None
