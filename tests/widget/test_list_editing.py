"""The sample list's kernel side: ids must be integers, rows carry the prediction's
confidence, ``values`` gives the sort columns of a long list, and *Fetch similar* with nothing
left to add says so in words."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fakes import NAMES, Blobs, TinyNet

from samplelens_widget import SampleLens


@pytest.fixture
def lens():
    ds = Blobs(30)
    w = SampleLens(TinyNet(), ds, label_names=NAMES, background=False, projection="pca",
                   cache_dir=None)
    w.sent = []
    w.send = lambda content, buffers=None: w.sent.append((content, list(buffers or [])))
    yield w
    w.close()


def ask(lens, content):
    lens._on_msg(lens, content, [])


def of_type(lens, kind):
    return [c for c, _ in lens.sent if c.get("type") == kind]


@pytest.mark.parametrize("good", [3, np.int64(3), np.uint8(3), 3.0, np.float32(3.0)])
def test_check_id_takes_ints_and_integer_valued_floats(lens, good):
    got = lens._session.check_id(lens.slice, good)
    assert got == 3 and type(got) is int


@pytest.mark.parametrize("bad", ["3", "1e2", "1.5", "", " 7 ", 1.5, math.nan, math.inf, True,
                                 np.bool_(True), None, [3]])
def test_check_id_refuses_strings_and_non_integers_with_its_words(lens, bad):
    with pytest.raises(ValueError) as err:
        lens._session.check_id(lens.slice, bad)
    assert str(err.value) == (
        f"sample id {bad!r} is not an integer; expected 0..29 for slice {lens.slice!r}"
    )


@pytest.mark.parametrize("typed", ["1e2", "1.5", "", "  ", "0x1f", "3.0"])
def test_the_add_box_refuses_what_is_not_an_integer(lens, typed):
    lens.selected = [0, 1]
    ask(lens, {"type": "add", "rid": 1, "id": typed})
    [err] = of_type(lens, "error")
    assert f"is not an integer; expected 0..29 for slice {lens.slice!r}" in err["message"]
    assert lens.selected == [0, 1] and lens.viewed == 0
    ask(lens, {"type": "add", "rid": 2, "id": " 12 "})  # a typed integer still works
    assert lens.selected == [0, 1, 12] and lens.viewed == 12


def test_rows_and_values_carry_loss_and_the_predictions_confidence(lens):
    ds = lens._session.slices[lens.slice]
    net = lens._session.models[lens.model_name]
    ids = [4, 0, 17]
    ask(lens, {"type": "rows", "rid": 1, "model": lens.model_name, "slice": lens.slice,
               "ids": ids})
    [rows] = of_type(lens, "rows")
    with torch.no_grad():
        probs = torch.softmax(net(torch.stack([ds[i][0] for i in ids])), 1)
    for row, p in zip(rows["rows"], probs, strict=True):
        assert row["confidence"] == pytest.approx(float(p.max()), rel=1e-5)
        assert row["prediction"] == int(p.argmax())
    ask(lens, {"type": "values", "rid": 2, "model": lens.model_name, "slice": lens.slice,
               "ids": ids})
    [vals] = of_type(lens, "values")
    assert vals["ids"] == ids and vals["rid"] == 2
    assert vals["loss"] == pytest.approx([r["loss"] for r in rows["rows"]])
    assert vals["confidence"] == pytest.approx([r["confidence"] for r in rows["rows"]])
    # the whole slice's pass gives the same numbers
    lens._session.stats.of_slice(lens.model_name, lens.slice)
    again = lens._session.stats.rows(lens.model_name, lens.slice, ids)
    assert [r["confidence"] for r in again] == pytest.approx(vals["confidence"], rel=1e-5)


def test_values_of_a_bad_id_is_an_error_naming_it(lens):
    ask(lens, {"type": "values", "rid": 3, "model": lens.model_name, "slice": lens.slice,
               "ids": [1, 99]})
    [err] = of_type(lens, "error")
    assert "sample id 99 is out of range 0..29" in err["message"] and err["request"] == "values"


def test_fetch_similar_with_nothing_left_says_so_in_words(lens):
    lens.selected = list(range(30))
    ask(lens, {"type": "similar", "rid": 1, "k": 8})
    [rep] = of_type(lens, "similar")
    assert rep["ids"] == [] and rep["note"] == (
        f"Fetch similar: nothing left to add: all 30 samples of slice {lens.slice!r} are in the "
        "list already."
    )
    assert of_type(lens, "error") == []
    lens.sent.clear()
    lens.selected = [1, 2]
    ask(lens, {"type": "similar", "rid": 2, "ids": [1, 2], "k": 0})
    [rep] = of_type(lens, "similar")
    assert rep["ids"] == [] and "k is 0, so there is nothing to fetch" in rep["note"]
    assert lens.selected == [1, 2]
    # from Python: the error says why
    with pytest.raises(ValueError, match=r"30 of them are the query, so none is left to fetch"):
        lens.similar(list(range(30)), 8)
