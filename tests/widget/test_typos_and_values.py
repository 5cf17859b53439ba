"""No silent typos: unknown keywords, label names that do not fit the model, and trait values as
users hold them (numpy arrays, 0-d tensors)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import traitlets
from fakes import NAMES, Blobs, TinyNet

from samplelens_widget import SampleLens


def make(model=None, data=None, **kw):
    kw.setdefault("background", False)
    kw.setdefault("projection", "pca")
    kw.setdefault("cache_dir", None)
    return SampleLens(model or TinyNet(), data or Blobs(12), **kw)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"label_name": NAMES}, r"keyword argument 'label_name'; did you mean 'label_names'"),
        ({"visualiser": {}}, r"'visualiser'; did you mean 'visualizers'"),
        ({"projetion": "pca"}, r"'projetion'; did you mean 'projection'"),
        ({"mean": [0.5] * 3}, r"'mean'; did you mean display=fn"),
        ({"denormalize": True}, r"'denormalize'; did you mean display=fn"),
        ({"zzz": 1}, r"argument 'zzz' The arguments are \['model', 'data', .*'algorithm'"),
    ],
)
def test_an_unknown_keyword_is_a_type_error_naming_it_and_the_nearest(kw, message):
    with pytest.raises(TypeError, match=message):
        make(**kw)


def test_traits_may_be_set_as_keywords():
    lens = make(algorithm="layercam", colormap="viridis", opacity=0.25)
    assert (lens.algorithm, lens.colormap, lens.opacity) == ("layercam", "viridis", 0.25)


def test_label_names_that_do_not_fit_the_model_warn_naming_both_counts():
    with pytest.warns(UserWarning, match=r"label_names: 3 names for a model with 5 classes; "
                                         r"classes 3..4 are named 'class i'"):
        lens = make(label_names=NAMES[:3])
    assert lens._info["label_names"] == [*NAMES[:3], "class 3", "class 4"]
    many = [f"n{i}" for i in range(1000)]
    with pytest.warns(UserWarning, match=r"1000 names for a model with 5 classes; the last 995"):
        lens = make(label_names=many)
    assert lens._info["label_names"] == many[:5]
    with pytest.warns(UserWarning, match=r"classes \[7\] are not classes of the model"):
        make(label_names={0: "a", 7: "b"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the right count: no warning
        make(label_names=NAMES)


def test_label_names_as_a_dict_takes_int_or_digit_string_keys():
    lens = make(label_names={"0": "zero", "3": "three", 1: "one"})
    assert lens._info["label_names"] == ["zero", "one", "class 2", "three", "class 4"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("circle", r"label_names: .* got the string 'circle'; for one class write \['circle'\]"),
        ({"cat": 0, "dog": 1}, r"label_names: the key 'cat' is not a class index; .*flip it"),
        (5, r"label_names: expected a list of class names or \{index: name\}, got int"),
    ],
)
def test_bad_label_names_are_type_errors(names, message):
    with pytest.raises(TypeError, match=message):
        make(label_names=names)


def test_traits_take_numpy_arrays_and_integer_tensors():
    lens = make(label_names=NAMES)
    lens.selected = np.array([1, 2, 5])
    assert lens.selected == [1, 2, 5] and all(type(i) is int for i in lens.selected)
    lens.selected = torch.tensor([4, 3])
    assert lens.selected == [4, 3]
    lens.selected = (0, 1)
    assert lens.selected == [0, 1]
    lens.viewed = np.int64(1)
    assert lens.viewed == 1 and type(lens.viewed) is int
    logits = lens.result.logits
    lens.label = torch.tensor(logits[0]).argmax()  # an argmax, as users hold it
    assert lens.label == int(np.argmax(logits[0])) and type(lens.label) is int
    lens.label = np.int32(2)
    assert lens.label == 2 and lens.result.targets.tolist() == [2]
    lens.contrast = torch.tensor(0)
    assert lens.contrast == 0
    lens.contrast = None
    lens.depth = np.int64(lens.result.depths[0])
    assert lens.depth == int(lens.result.depths[0])


@pytest.mark.parametrize(
    ("name", "value"),
    [("selected", np.array([[1, 2]])), ("selected", [1.5]), ("label", torch.tensor(2.0)),
     ("viewed", "1e2"), ("label", True), ("viewed", True), ("selected", [True])],
)
def test_values_that_are_not_integers_are_refused_by_name(name, value):
    lens = make()
    with pytest.raises(traitlets.TraitError, match=name):
        setattr(lens, name, value)
    lens.viewed = 2  # still usable
    assert lens.result is not None


def test_traits_given_as_keywords_are_checked_against_the_slice_and_its_depths():
    from samplelens_widget.demo import load_demo

    model, data, names = load_demo(n_train=20, n_val=30)
    lens = SampleLens(model, data["val"], label_names=names, selected=[4, 9], viewed=9,
                      depth=3, algorithm="layercam", side_panel="trust", projection="pca",
                      cache_dir=None, background=False)
    assert (lens.viewed, lens.depth, lens.algorithm, lens.side_panel) == (9, 3, "layercam", "trust")
    assert lens.result.heatmap(3).shape[-2:] == (64, 64)
    with pytest.raises(Exception, match=r"viewed: .*30.*out of range|sample id 30 is out of range"):
        SampleLens(model, data["val"], viewed=30, projection="pca", cache_dir=None,
                   background=False)
    lens.close()
