"""The page <-> kernel protocol is declared once and both sides keep to it.

- ``js/wire.ts`` (the page's types) is what ``protocol.typescript`` generates from the Python
  declarations;
- every request kind has exactly one handler in the widget's dispatch table and a thread;
- every message the widget sends, for every kind of request, matches its declaration exactly
  (declared fields only, declared types), and every reply kind is produced;
- a request that does not match its declaration is refused with an error naming the field,
  and the widget stays usable.
"""

from __future__ import annotations

import json
import pathlib
from typing import Literal

import numpy as np
import pytest
from fakes import NAMES, Blobs, TinyNet

from samplelens_widget import SampleLens
from samplelens_widget.protocol import (
    REPLIES,
    REQUESTS,
    THREADS,
    ProtocolError,
    check_message,
    decode_request,
    replies,
)
from samplelens_widget.protocol.codec import fields_of
from samplelens_widget.protocol.typescript import WIRE_TS, render

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_page_types_are_generated_from_the_python_declarations():
    assert WIRE_TS == ROOT / "js" / "wire.ts"
    assert WIRE_TS.read_text(encoding="utf-8") == render(), (
        "js/wire.ts is out of date: run `python -m samplelens_widget.protocol.typescript`"
    )


def test_every_kind_in_the_generated_file_is_declared():
    text = WIRE_TS.read_text(encoding="utf-8")
    for kinds, name in ((REQUESTS, "REQUEST_KINDS"), (REPLIES, "REPLY_KINDS")):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"export const {name}"))
        listed = json.loads(line.split("=", 1)[1].strip().rstrip(";"))
        assert listed == list(kinds)
        for kind, spec in kinds.items():
            assert fields_of(spec.message)["type"][0] == Literal[kind]
            assert f"export interface {spec.message.__name__} {{\n  type: \"{kind}\";" in text


def test_every_request_has_one_handler_and_a_thread():
    lens = SampleLens(TinyNet(), Blobs(8), background=False, projection="pca", cache_dir=None)
    assert set(lens._handlers) == set(REQUESTS)
    threaded = [k for t in THREADS.values() for k in t]
    assert len(threaded) == len(set(threaded))
    for kind, spec in REQUESTS.items():
        assert spec.thread == "comm" or kind in THREADS[spec.thread]
    lens.close()


@pytest.fixture
def lens():
    ds = Blobs(24)
    w = SampleLens(
        TinyNet(), ds, slices={"val": ds, "other": Blobs(6, seed=1)}, label_names=NAMES,
        background=False, projection="pca",
        cache_dir=None, visualizers={"text": lambda s: f"label {s.label}",
                                     "image": lambda s: s.image, "broken": lambda s: 1 / 0},
    )
    w.sent = []
    w.send = lambda content, buffers=None: w.sent.append((content, list(buffers or [])))
    yield w
    w.close()


def ask(lens, content, buffers=()):
    lens._on_msg(lens, content, list(buffers))


def test_every_reply_sent_matches_its_declaration(lens):
    key = lens._key().as_dict()
    model, where = lens.model_name, lens.slice
    ids = np.array([3, 4], "<u4").tobytes()
    for rid, content in enumerate(
        [
            {"type": "analyze", "keys": [key, {**key, "id": 2}], "images": [True, False]},
            {"type": "analyze", "keys": [{**key, "id": 999}]},  # an error with its key
            {"type": "rows", "model": model, "slice": where, "ids": [0, 1], "page": 0},
            {"type": "stats", "model": lens.model_name, "slice": lens.slice},
            {"type": "values", "model": model, "slice": where, "ids": [2, 0]},
            {"type": "visual", "name": "text", "slice": lens.slice, "id": 1},
            {"type": "visual", "name": "image", "slice": lens.slice, "id": 1, "connection": 0},
            {"type": "visual", "name": "broken", "slice": lens.slice, "id": 1},
            {"type": "thumb", "slice": lens.slice, "id": 2},
            {"type": "plotly_js"},
            {"type": "population", "model": lens.model_name, "slice": lens.slice},
            {"type": "similar", "ids": [1], "k": 3},
            {"type": "similar", "ids": [1], "k": 99},  # an error
            {"type": "similar", "ids": list(range(24)), "k": 3},  # nothing left: a note
            {"type": "add", "id": "5"},
            {"type": "select_all"},
            {"type": "pick", "id": 7},
            {"type": "trust", "key": key, "depth": None, "steps": 4},
            {"type": "trust", "key": key, "steps": 1},  # an error, shown in the Trust view
            {"type": "trust", "key": None},  # the view hidden: a stop, nothing sent
            {"type": "sanity", "key": key, "depth": None},
            {"type": "sanity", "key": None},
            {"type": "frobnicate"},  # an error
        ]
    ):
        ask(lens, {**content, "rid": rid})
    ask(lens, {"type": "select_ids", "rid": 99, "mode": "add", "slice": lens.slice, "n": 2}, [ids])
    st = lens._population.state(lens.model_name, lens.slice)
    lens.sent.append(replies.population_coords(st))  # what the UMAP thread sends when ready
    lens._population.embed_layer = "nowhere"  # a population that fails
    ask(lens, {"type": "population", "rid": 100, "model": lens.model_name, "slice": "other"})
    seen = set()
    for content, buffers in lens.sent:
        kind = check_message(content, REPLIES)
        seen.add(kind)
        json.dumps(content)  # JSON as it travels
        assert all(isinstance(b, (bytes, bytearray, memoryview)) for b in buffers)
    assert seen == set(REPLIES), sorted(set(REPLIES) - seen)
    assert 3 in lens.selected and 4 in lens.selected and lens.viewed is not None


def test_the_declared_buffers_are_the_ones_sent(lens):
    ask(lens, {"type": "analyze", "rid": 1, "keys": [lens._key().as_dict()], "images": [True]})
    [(meta, bufs)] = [(c, b) for c, b in lens.sent if c["type"] == "analysis"]
    assert len(bufs) == len(meta["layers"]) + 1
    for layer, buf in zip(meta["layers"], bufs, strict=False):
        assert len(buf) == layer["h"] * layer["w"]
    assert bufs[-1][:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ({"type": "analyze", "rid": 1}, r"analyze: the field 'keys' is missing"),
        ({"type": "analyze", "keys": [{"model": 1}]}, r"analyze\.keys\[0\]\.model: 1 is not str"),
        ({"type": "rows", "model": "m", "slice": "s", "ids": ["x"]},
         r"rows\.ids\[0\]: 'x' is not int"),
        ({"type": "select_ids", "mode": "all"},
         r"select_ids\.mode: 'all' is not 'replace' or 'add'"),
        ({"type": "thumb", "slice": "s", "id": 1.5}, r"thumb\.id: 1\.5 is not int"),
        ({"type": "nope"}, r"unknown request type 'nope'"),
        (["not", "an", "object"], r"request: expected an object, got list"),
    ],
)
def test_a_request_that_breaks_its_declaration_is_refused_by_name(content, pattern):
    with pytest.raises(ProtocolError, match=pattern):
        decode_request(content)


def test_numbers_from_json_are_normalised():
    kind, req = decode_request({"type": "thumb", "slice": "s", "id": 3.0})
    assert kind == "thumb" and req == {"type": "thumb", "slice": "s", "id": 3}
    assert isinstance(req["id"], int)


def test_a_bad_request_is_answered_with_an_error_and_the_widget_stays_usable(lens):
    ask(lens, {"type": "analyze", "rid": 4, "keys": [{"model": 1}]})
    [(err, _)] = [(c, b) for c, b in lens.sent if c["type"] == "error"]
    assert err["rid"] == 4 and "analyze.keys[0].model" in err["message"]
    ask(lens, {"type": "analyze", "rid": 5, "keys": [lens._key().as_dict()]})
    assert [c["rid"] for c, _ in lens.sent if c["type"] == "analysis"] == [5]


def test_strict_checks_refuse_undeclared_fields():
    with pytest.raises(ProtocolError, match=r"fields \['extra'\] are not declared"):
        check_message({"type": "thumb", "rid": 1, "slice": "s", "id": 1, "extra": 0}, REPLIES)
