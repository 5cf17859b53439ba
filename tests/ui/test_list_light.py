"""The sample list you can edit (remove, clear, undo, sort), Fetch similar's rows shown where
you look, integer ids only, one error banner at a time, and long names shortened in the middle
(light page, real clicks)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from harness import screenshot
from torch import nn
from widget_helpers import fakes, set_slider, settle, wait_canvas

from samplelens_widget import SampleLens

pytestmark = pytest.mark.ui

NAMES, Blobs, TinyNet = fakes.NAMES, fakes.Blobs, fakes.TinyNet
ROWS = "[data-role=rows] .sl-row"
BANNER = "[data-role=errors] .sl-banner"
JS_IDS = "rs => rs.map(r => +r.dataset.id)"
# is each element inside its scrolling list (the rows' box)?
JS_VISIBLE = """rs => rs.map(r => { const b = r.parentElement.getBoundingClientRect(),
  x = r.getBoundingClientRect(); return x.top >= b.top - 1 && x.bottom <= b.bottom + 1; })"""


@pytest.fixture(scope="module")
def data():
    return {"train": Blobs(450, seed=1), "val": Blobs(60)}


def make(data, **kw):
    kw.setdefault("label_names", NAMES)
    kw.setdefault("projection", "pca")
    kw.setdefault("cache_dir", None)
    return SampleLens(TinyNet(), data["val"], slices=data, **kw)


def mount(light_page, lens):
    h = light_page(lens)
    settle(lens, h)
    wait_canvas(h.page)
    return h


def by_hand(lens, ids):
    """Loss and the prediction's probability of `ids`, from the model itself."""
    s = lens._session
    ds, net = s.slices[lens.slice], s.models[lens.model_name]
    with torch.no_grad():
        logits = net(torch.stack([ds[i][0] for i in ids]))
    y = torch.tensor([ds[i][1] for i in ids])
    loss = F.cross_entropy(logits, y, reduction="none").numpy()
    conf = torch.softmax(logits, 1).max(1).values.numpy()
    return dict(zip(ids, loss.tolist(), strict=True)), dict(zip(ids, conf.tolist(), strict=True))


def shown(page):
    return page.locator(ROWS).evaluate_all(JS_IDS)


def column(page, col):
    return page.locator(f"{ROWS} [data-col={col}]").all_inner_texts()


def test_remove_clear_undo_and_sort_by_loss_and_confidence(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    first = list(range(12))
    assert shown(page) == first

    # × removes one row (the row's own click does not view it)
    page.click(f"{ROWS}[data-id='5'] [data-role=remove]")
    settle(lens, h)
    assert lens.selected == [i for i in first if i != 5] and lens.viewed == 0
    assert 5 not in shown(page)
    # the viewed sample: its neighbour is viewed
    page.click(f"{ROWS}[data-id='0'] [data-role=remove]")
    settle(lens, h)
    assert lens.selected == [i for i in first if i not in (0, 5)] and lens.viewed == 1

    page.click("[data-role=clear]")
    settle(lens, h)
    assert lens.selected == [] and lens.viewed is None
    assert page.locator(ROWS).count() == 0
    assert "No samples in the list" in page.inner_text("[data-role=rows]")

    # undo restores each change in turn
    page.click("[data-role=undo]")
    settle(lens, h)
    assert lens.selected == [i for i in first if i not in (0, 5)]
    page.click("[data-role=undo]")
    page.click("[data-role=undo]")
    settle(lens, h)
    assert lens.selected == first and shown(page) == first
    assert page.locator("[data-role=undo]").is_disabled()

    # sort by loss: the kernel's loss values, largest first; again: smallest first
    loss, conf = by_hand(lens, first)
    page.click("[data-role=sort-loss]")
    settle(lens, h)
    order = shown(page)
    assert sorted(order) == first and lens.selected == first  # a view: the trait keeps its order
    values = [loss[i] for i in order]
    assert all(a >= b - 1e-5 for a, b in zip(values, values[1:], strict=False)), values
    assert column(page, "loss") == [f"{v:.2f}" for v in values]
    stats = lens._session.stats.rows(lens.model_name, lens.slice, order)
    assert [r["loss"] for r in stats] == pytest.approx(values, rel=1e-4)
    assert page.inner_text("[data-role=sort-loss]") == "loss ▼"
    page.click("[data-role=sort-loss]")
    settle(lens, h)
    up = [loss[i] for i in shown(page)]
    assert all(a <= b + 1e-5 for a, b in zip(up, up[1:], strict=False)), up
    assert page.inner_text("[data-role=sort-loss]") == "loss ▲"

    # by confidence (least confident first), with the numbers shown
    page.click("[data-role=sort-confidence]")
    settle(lens, h)
    order = shown(page)
    values = [conf[i] for i in order]
    assert all(a <= b + 1e-5 for a, b in zip(values, values[1:], strict=False)), values
    assert column(page, "confidence") == [f"{v:.2f}" for v in values]
    # by id, then back to the list's order
    page.click("[data-role=sort-id]")
    settle(lens, h)
    assert shown(page) == first
    page.click("[data-role=sort-id]")
    page.click("[data-role=sort-id]")
    settle(lens, h)
    assert shown(page) == first


def test_fetch_similar_shows_the_new_rows_marked_and_says_when_nothing_is_left(light_page, data):
    lens = make(data)
    lens.slice = "train"
    lens.selected = list(range(339))
    lens.viewed = 3
    h = mount(light_page, lens)
    page = h.page
    assert "1–200 of 339" in page.inner_text(".sl-pager")
    page.fill("[data-role=similar-k]", "8")
    page.click("[data-role=similar]")
    settle(lens, h, rounds=5)
    want = lens.similar(list(range(339)), 8)
    assert lens.selected == list(range(339)) + [i for i, _ in want]
    # the list turned to the page that holds them, scrolled to them and marked them
    assert "201–347 of 347" in page.inner_text(".sl-pager")
    marked = page.locator(f"{ROWS}.sl-similar")
    assert sorted(marked.evaluate_all(JS_IDS)) == sorted(i for i, _ in want)
    screenshot(page.locator("[data-role=sample-list]"), "list-similar-light")
    assert all(marked.evaluate_all(JS_VISIBLE))
    for i, s in want:
        row = f"{ROWS}[data-id='{i}']"
        assert float(page.get_attribute(row, "data-similar")) == pytest.approx(s, abs=1e-4)
        assert page.inner_text(f"{row} [data-col=similarity]") == f"{s:.3f}"
    note = page.inner_text("[data-role=list-note]")
    assert "Fetch similar added 8 samples as rows 340–347" in note

    # sorted by similarity: the most similar first
    page.click("[data-role=sort-similarity]")
    settle(lens, h)
    assert "1–200 of 347" in page.inner_text(".sl-pager")
    assert shown(page)[:8] == [i for i, _ in want]

    # everything selected: the words, no error
    page.click("[data-role=select-all]")
    settle(lens, h)
    assert len(lens.selected) == 450
    page.click("[data-role=similar]")
    settle(lens, h, rounds=5)
    assert page.inner_text("[data-role=list-note]").startswith(
        "Fetch similar: nothing left to add: all 450 samples of slice 'train' are in the list"
    )
    assert page.locator(BANNER).count() == 0
    page.fill("[data-role=similar-k]", "0")
    page.click("[data-role=similar]")
    assert "k is 0, so there is nothing to fetch" in page.inner_text("[data-role=list-note]")
    # undo the Select all
    page.click("[data-role=undo]")
    settle(lens, h)
    assert len(lens.selected) == 347


def test_a_lasso_that_replaces_a_hand_made_list_says_so_and_undo_brings_it_back(light_page, data):
    lens = make(data)
    lens.selected = [3, 9, 14]
    h = mount(light_page, lens)
    page = h.page
    # what a lasso sends (the scatter's own drawing is tested in test_population_light.py)
    page.evaluate(
        "() => document.querySelector('.sl-root').__samplelens.selectIds("
        "new Uint32Array([20, 21, 22, 23]), 'replace')"
    )
    settle(lens, h)
    assert lens.selected == [20, 21, 22, 23]
    note = page.inner_text("[data-role=list-note]")
    assert note.startswith("Lasso/box replaced the list: 4 in, 3 of your 3 out. Shift+drag adds.")
    screenshot(page.locator("[data-role=sample-list]"), "list-lasso-light")
    page.click("[data-role=note-undo]")
    settle(lens, h)
    assert lens.selected == [3, 9, 14]
    assert page.locator("[data-role=list-note]").is_hidden()


def test_ids_must_be_integers_and_one_banner_shows_the_newest_error(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    before = list(lens.selected)
    page.fill("[data-role=add-id]", "1e2")
    page.click("[data-role=add]")
    settle(lens, h)
    assert page.locator(BANNER).count() == 1
    assert "sample id '1e2' is not an integer; expected 0..59 for slice 'val'" in page.inner_text(
        BANNER
    )
    page.fill("[data-role=add-id]", "1.5")
    page.keyboard.press("Enter")
    settle(lens, h)
    assert page.locator(BANNER).count() == 1
    assert "sample id '1.5' is not an integer" in page.inner_text(BANNER)
    page.click("[data-role=add]")  # nothing typed
    assert page.locator(BANNER).count() == 1 and "type a sample id" in page.inner_text(BANNER)
    assert lens.selected == before
    # the kernel refuses it too (a page that skipped the check)
    h.js_send({"type": "add", "rid": 999, "id": "1e2"})
    settle(lens, h)
    assert page.locator(BANNER).count() == 1
    assert "ValueError: sample id '1e2' is not an integer" in page.inner_text(BANNER)
    screenshot(page, "list-banner-light")
    light_page.errors.clear()
    assert lens.selected == before
    # dismissable
    page.click("[data-role=dismiss-error]")
    assert page.locator(BANNER).count() == 0
    # a success clears the banner: a valid id added, its analysis shown
    page.fill("[data-role=add-id]", "99")
    page.click("[data-role=add]")
    assert page.locator(BANNER).count() == 1
    page.fill("[data-role=add-id]", "42")
    page.keyboard.press("Enter")
    settle(lens, h)
    wait_canvas(page)
    assert lens.viewed == 42 and 42 in lens.selected
    assert page.locator(BANNER).count() == 0
    # a kernel error (a sample that cannot be read), then a success of the same kind
    page.fill("[data-role=similar-k]", "500")
    page.click("[data-role=similar]")
    settle(lens, h, rounds=5)
    assert "k: 500 is out of range" in page.inner_text(BANNER)
    light_page.errors.clear()
    page.fill("[data-role=similar-k]", "2")
    page.click("[data-role=similar]")
    settle(lens, h, rounds=5)
    assert page.locator(BANNER).count() == 0
    assert len(lens.selected) == len(before) + 3


class LongNamed(nn.Module):
    """A tiny CNN whose layers have long names (a Sequential in modules with long attribute
    names), always predicting class 0."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        blocks = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.encoder_stage_two_with_attention = nn.Sequential(
            OrderedDict(residual_block_sequence=blocks)
        )
        head = nn.Linear(16, 5)
        with torch.no_grad():
            head.bias.copy_(torch.tensor([50.0, 0, 0, 0, 0]))
        self.classification_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)

    def forward(self, x):
        return self.classification_head(self.encoder_stage_two_with_attention(x))


LONG = ["diamond"] + [f"a_remarkably_long_class_name_of_the_zoo_{w}" for w in
                      ("one", "two", "three", "four")]


def test_long_names_are_shortened_in_the_middle_with_the_full_name_on_hover(light_page, data):
    lens = SampleLens(LongNamed(), data["val"], label_names=LONG, projection="pca",
                      cache_dir=None)
    h = mount(light_page, lens)
    page = h.page

    # the Label menu: "Predicted (diamond)" whole; long classes shortened, probability kept
    opts = page.locator("[data-role=label] option").evaluate_all(
        "os => os.map(o => ({v: o.value, t: o.text, title: o.title}))"
    )
    assert opts[0]["t"] == "Predicted (diamond)"
    assert page.evaluate(
        """() => { const s = document.querySelector('[data-role=label]');
          const c = document.createElement('canvas').getContext('2d');
          c.font = getComputedStyle(s).font;
          return [...s.options].every(o => c.measureText(o.text).width <= s.clientWidth - 20); }"""
    )
    for o in opts[2:6]:
        name = LONG[int(o["v"])]
        assert "…" in o["t"] and o["title"].startswith(name)
        after = o["title"][len(name):]  # the probability, as the full text has it
        assert after and o["t"].endswith(after)
        head, tail = o["t"][: len(o["t"]) - len(after)].split("…")
        assert name.startswith(head) and name.endswith(tail) and tail.endswith(name[-3:])

    # the list: true labels shortened in the middle, full in the title, never cut at the end
    cells = page.locator(f"{ROWS} .sl-lab").evaluate_all(
        "cs => cs.map(c => ({t: c.textContent, title: c.title,"
        " fits: c.scrollWidth <= c.clientWidth}))"
    )
    long_cells = [c for c in cells if c["title"] in LONG[1:]]
    assert long_cells
    for c in long_cells:
        assert c["fits"] and "…" in c["t"], c
        head, tail = c["t"].split("…")
        assert c["title"].startswith(head) and c["title"].endswith(tail) and len(tail) >= 3

    # the depth readout: "d7 · enc…ce.2 · 8×64×64", every depth its own, full name on hover
    page.click("[data-role=depth-custom]")
    settle(lens, h)
    res = lens.result
    seen = []
    for d in res.depths:
        set_slider(page, "[data-role=depth]", d)
        el = page.locator("[data-role=layer-name]")
        text, title = el.inner_text(), el.get_attribute("title")
        layer = res.layer_at(d)
        shape = "×".join(str(x) for x in layer.shape)
        assert text.startswith(f"d{d} · ") and title.split("\n")[0] == layer.name, (text, title)
        assert text.endswith(f" · {shape}"), text
        name = text.split(" · ")[1]
        if "…" in name:
            head, tail = name.split("…")
            assert layer.name.startswith(head) and layer.name.endswith(tail)
        assert el.evaluate("e => e.scrollWidth <= e.clientWidth"), text
        seen.append(text)
    assert len(set(seen)) == len(seen), seen
    assert any("…" in s for s in seen)
    screenshot(page.locator("[data-role=sample-list]"), "list-light")
    screenshot(page.locator("[data-role=controller]"), "controller-names-light")
    lens.close()
