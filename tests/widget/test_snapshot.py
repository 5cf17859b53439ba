"""``snapshot.py``: the picture of the last view a saved notebook keeps, published before the
widget and replaced when the view changes (in a browser: tests/ui/test_saved_notebook_lab.py)."""

from __future__ import annotations

import base64
import io
import time

import IPython.display
import numpy as np
import pytest
from fakes import Blobs, TinyNet
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

from samplelens_widget import SampleLens, snapshot
from samplelens_widget.snapshot import MARK, RUN_LINE, WIDGET_MIME, WIDGET_TEXT

NAMES = ["zero", "one", "two", "three", "four"]


@pytest.fixture(scope="module")
def lens():
    w = SampleLens(
        TinyNet(), Blobs(10), label_names=NAMES, background=False, projection="pca",
        cache_dir=None,
    )
    w.send = lambda content, buffers=None: None
    yield w
    w.close()


@pytest.fixture
def published(monkeypatch):
    """What the snapshot publishes: ("display" | "update", bundle, display_id)."""
    calls: list[tuple[str, dict, str]] = []
    monkeypatch.setattr(InteractiveShell, "initialized", classmethod(lambda cls: True))
    monkeypatch.setattr(IPython.display, "display", lambda b, raw, display_id: calls.append(
        ("display", b, display_id)))
    monkeypatch.setattr(IPython.display, "update_display", lambda b, raw, display_id: calls.append(
        ("update", b, display_id)))
    monkeypatch.setattr(snapshot, "DEBOUNCE_S", 0.2)
    return calls


def overlay_in(png_b64: str, shape: tuple[int, ...]) -> np.ndarray:
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("RGB"))
    up, _ = snapshot.scale_of(shape)
    return img[: shape[0] * up : up, : shape[1] * up : up]


def test_the_bundle_is_the_overlay_with_its_caption_and_the_line(lens):
    lens.viewed, lens.label, lens.depth = 3, None, None
    b = snapshot.bundle(lens, "sid")
    want = lens.overlay()
    np.testing.assert_array_equal(overlay_in(b["image/png"], want.shape), want)
    png = base64.b64decode(b["image/png"])
    assert len(png) < 60_000
    res = lens.result
    cap = snapshot.caption(lens)
    assert cap.startswith("sample 3 · true: ")
    assert f"explains the predicted class ({NAMES[int(res.predictions[0])]})" in cap
    assert f"depth {res.depths[-1]} of {res.depths[-1]} ({res.layer_at().name})" in cap
    assert Image.open(io.BytesIO(png)).text["Description"] == cap
    assert f'{MARK}="sid"' in b["text/html"] and "<style>" in b["text/html"]
    assert RUN_LINE in b["text/html"] and RUN_LINE in b["text/plain"] and cap in b["text/plain"]
    assert b["image/png"] in b["text/html"]  # the same picture in the HTML


def test_the_caption_names_the_label_explained_and_the_depth(lens):
    lens.viewed, lens.label, lens.depth = 2, 4, lens.result.depths[1]
    cap = snapshot.caption(lens)
    assert "explains four" in cap and f"depth {lens.depth} of" in cap
    lens.label, lens.contrast = None, 1
    assert "rather than one" in snapshot.caption(lens)
    lens.label, lens.contrast = "loss", None
    assert "explains the loss against its true label" in snapshot.caption(lens)
    lens.label, lens.depth = None, None


def test_no_picture_is_words_not_an_error(lens, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("the model failed")

    monkeypatch.setattr(type(lens), "overlay", boom)
    b = snapshot.bundle(lens, "sid")
    assert "image/png" not in b and "the model failed" in b["text/plain"]
    assert RUN_LINE in b["text/html"]


def test_a_large_input_is_reduced():
    big = np.zeros((512, 700, 3), np.uint8)
    assert snapshot.scale_of(big.shape) == (1, 3)
    pic = snapshot.picture(big, "c")
    assert pic.width == snapshot.MIN_WIDTH and 171 < pic.height < 220  # 512 / 3, one line


def test_displaying_publishes_the_snapshot_then_the_widget(lens, published):
    data, _ = lens._repr_mimebundle_()
    assert WIDGET_MIME in data and data["text/plain"] == WIDGET_TEXT
    (kind, b, sid), = published
    assert kind == "display" and sid.startswith("samplelens-snapshot-") and "image/png" in b
    published.clear()
    lens._repr_mimebundle_(include={"text/plain"})  # no widget view asked: no snapshot
    assert published == []


def test_the_snapshot_follows_the_view_one_update_per_burst(lens, published):
    lens._repr_mimebundle_()
    sid = published[0][2]
    depth = lens.result.depths[2]
    published.clear()
    lens.viewed = 5  # a burst: two changes within the debounce time
    lens.depth = depth
    deadline = time.monotonic() + 10
    while not published and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    assert [(k, s) for k, _, s in published] == [("update", sid)]
    want = lens.overlay()
    np.testing.assert_array_equal(overlay_in(published[0][1]["image/png"], want.shape), want)
    assert "sample 5" in published[0][1]["text/plain"]
    lens.depth = None


def test_a_closed_lens_publishes_nothing_more(published):
    w = SampleLens(TinyNet(), Blobs(6), background=False, projection="pca", cache_dir=None)
    w.send = lambda content, buffers=None: None
    w._repr_mimebundle_()
    published.clear()
    w.close()
    w._saved_view.update()
    assert published == []
