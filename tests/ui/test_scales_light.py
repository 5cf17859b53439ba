"""Honest scales (light page): the Scale select, the legend's raw numbers, the explained score.

The model's class rows are one row times s_c (s = 1, 0.6, 0.4, 0.3, 0.1) with biases that make
class 0 the prediction: each class's Grad-CAM map is the predicted class's map times s_c at
every depth. Per map both stretch to the top of the colour bar; across labels the map of the
unlikely class 4 reaches a tenth of it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from widget_helpers import canvas, fakes, pixels, settle, wait_canvas

from samplelens_widget import SampleLens
from samplelens_widget.cam import CamEngine
from samplelens_widget.protocol import replies

pytestmark = pytest.mark.ui

OVERLAY = "canvas[data-role=overlay]"
NAMES, Blobs = fakes.NAMES, fakes.Blobs
S = [1.0, 0.6, 0.4, 0.3, 0.1]
UNLIKELY = 4
JS_STATE = """(sel) => { const app = document.querySelector('.sl-root').__samplelens;
  const a = app.analysisOf(app.currentKey()); const c = document.querySelector(sel);
  const v = (r) => Number(document.querySelector(`[data-role=legend-${r}]`).dataset.value);
  return a && c && {label: a.meta.key.label, scale: app.scale, range: c.dataset.scale,
    top: Number(c.dataset.top), lo: v('lo'), hi: v('hi'),
    lo_text: document.querySelector('[data-role=legend-lo]').textContent,
    hi_text: document.querySelector('[data-role=legend-hi]').textContent}; }"""


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
        with torch.no_grad():
            row = torch.rand(6) + 0.5
            self.head[2].weight.copy_(torch.tensor(S)[:, None] * row)
            self.head[2].bias.copy_(torch.tensor([0.0, -2.0, -3.0, -4.0, -5.0]))

    def forward(self, x):
        return self.head(self.features(x))


def reply(eng, x, label):
    """The analysis reply's meta for class ``label``, computed here on the Python side."""
    key = {"model": "m", "slice": "val", "id": 0, "algorithm": "gradcam", "label": label,
           "connection": 0, "contrast": None}
    return replies.analysis(key, eng.explain(x, target=label), None, None)[0]


def state(page, sel=OVERLAY):
    """The viewed analysis's label, the page's scale, the canvas's range and top colour index,
    and the legend's numbers."""
    return page.evaluate(JS_STATE, sel)


def wait_label(page, label, scale):
    """Wait until the viewed analysis explains ``label`` and the page's scale is ``scale`` (the
    viewer redraws synchronously on both)."""
    page.wait_for_function(
        """([label, scale]) => { const app = document.querySelector('.sl-root').__samplelens;
           const a = app.analysisOf(app.currentKey());
           return !!a && a.meta.key.label === label && app.scale === scale; }""",
        arg=[label, scale],
    )
    page.wait_for_timeout(50)


def test_across_labels_an_unlikely_class_looks_weak_and_the_legend_shows_raw_values(light_page):
    net, val = Scaled(), Blobs(30)
    eng = CamEngine(net)
    with torch.no_grad():
        logits = net(val.x)
    assert (logits.argmax(1) == 0).all()  # class 0 is every sample's prediction
    sid = next(i for i in range(len(val)) if val[i][1] == 0)  # a right one: no error maps
    x = val[sid][0]
    pred, low = reply(eng, x, 0), reply(eng, x, UNLIKELY)
    p_low = float(torch.softmax(logits[sid], 0)[UNLIKELY])
    assert p_low < 0.05
    last_pred, last_low = pred["layers"][-1], low["layers"][-1]
    assert last_low["hi"] == pytest.approx(S[UNLIKELY] * last_pred["hi"], rel=1e-4)

    lens = SampleLens(net, val, label_names=NAMES)
    lens.colormap, lens.opacity = "gray", 1.0  # a pixel's value is its colour index
    lens.selected = [sid]
    lens.viewed = sid
    h = light_page(lens)
    settle(lens, h)
    page = h.page
    wait_canvas(page)
    assert page.locator("[data-role=scale] option").all_inner_texts() == [
        "per map", "across labels", "across depths"]
    assert page.input_value("[data-role=scale]") == "map"

    # across labels, the predicted class: its own range, its maximum at the top
    page.select_option("[data-role=scale]", "labels")
    settle(lens, h)
    wait_label(page, None, "labels")
    st = state(page)
    assert st["lo"] == pytest.approx(last_pred["lo"], rel=1e-6, abs=1e-12)
    assert st["hi"] == pytest.approx(last_pred["hi"], rel=1e-6)
    assert st["top"] == 255

    # the unlikely class, across labels: on the shared range, a tenth of the colour bar
    page.select_option("[data-role=label]", str(UNLIKELY))
    settle(lens, h)
    wait_label(page, UNLIKELY, "labels")
    st = state(page)
    s_lo = min(last_pred["lo"], last_low["lo"])
    s_hi = max(last_pred["hi"], last_low["hi"])
    assert st["lo"] == pytest.approx(s_lo, rel=1e-6, abs=1e-12)
    assert st["hi"] == pytest.approx(s_hi, rel=1e-6)
    assert float(st["hi_text"]) == pytest.approx(s_hi, rel=5e-3)
    want_top = round(255 * (last_low["hi"] - s_lo) / (s_hi - s_lo))
    assert abs(st["top"] - want_top) <= 1 and st["top"] <= 30, st
    weak = int(pixels(page)[..., 0].max())
    assert weak <= st["top"]

    # the same map per map: stretched to the top again, the legend its own range
    page.select_option("[data-role=scale]", "map")
    settle(lens, h)
    wait_label(page, UNLIKELY, "map")
    st = state(page)
    assert st["top"] == 255
    assert st["lo"] == pytest.approx(last_low["lo"], rel=1e-6, abs=1e-12)
    assert st["hi"] == pytest.approx(last_low["hi"], rel=1e-6)
    strong = int(pixels(page)[..., 0].max())
    assert strong > 200 and weak < 0.2 * strong, (weak, strong)

    # across depths: this map's depths on one range
    page.select_option("[data-role=scale]", "depths")
    settle(lens, h)
    wait_label(page, UNLIKELY, "depths")
    st = state(page)
    assert st["lo"] == pytest.approx(min(m["lo"] for m in low["layers"]), rel=1e-6, abs=1e-12)
    assert st["hi"] == pytest.approx(max(m["hi"] for m in low["layers"]), rel=1e-6)

    # the label control: the score the map explains, named, and the probability
    score = page.inner_text("[data-role=score]")
    logit = float(logits[sid, UNLIKELY])
    assert score == f"explaining {NAMES[UNLIKELY]} · score (logit) {logit:.3f} · p {p_low:.3f}"
    option = page.inner_text(f"[data-role=label] option[value='{UNLIKELY}']")
    assert option.endswith(f" · p {p_low:.3f}")


def test_the_error_maps_share_the_scale(light_page):
    net, val = Scaled(), Blobs(30)
    wrong = next(i for i in range(len(val)) if val[i][1] == UNLIKELY)  # predicted 0, true 4
    lens = SampleLens(net, val, label_names=NAMES)
    lens.selected = [wrong]
    lens.viewed = wrong
    h = light_page(lens)
    settle(lens, h)
    page = h.page
    maps = {n: f"canvas[data-role=error-map-{n}]" for n in ("pred", "true", "loss")}
    for sel in maps.values():
        wait_canvas(page, sel)
    assert canvas(page, maps["true"])["draws"] > 0
    per_map = {n: page.evaluate("(s) => document.querySelector(s).dataset.top", s)
               for n, s in maps.items()}
    assert per_map == {"pred": "255", "true": "255", "loss": "255"}

    page.select_option("[data-role=scale]", "labels")
    settle(lens, h)
    page.wait_for_function(
        "(s) => document.querySelector(s).dataset.top !== '255'", arg=maps["true"])
    got = {n: page.evaluate("(s) => ({top: Number(document.querySelector(s).dataset.top),"
                            " range: document.querySelector(s).dataset.scale})", s)
           for n, s in maps.items()}
    # the predicted and the true class on one range (the viewer's); the loss on its own
    assert got["pred"]["range"] == got["true"]["range"]
    assert got["pred"]["top"] == 255 and got["true"]["top"] <= 30
    assert got["loss"]["top"] == 255
    lo, hi = (float(v) for v in got["pred"]["range"].split(","))
    st = state(page)
    assert (st["lo"], st["hi"]) == (lo, hi)  # the viewer's legend: the same range
    assert np.isfinite([lo, hi]).all() and hi > lo
