"""The label and contrast controls and the error maps of a misclassified sample (light page)."""

from __future__ import annotations

import harness
import pytest
import torch
from widget_helpers import canvas, fakes, set_slider, settle, wait_canvas

from samplelens_widget import SampleLens

pytestmark = pytest.mark.ui

NAMES, Blobs, TinyNet = fakes.NAMES, fakes.Blobs, fakes.TinyNet
# what the viewer shows: the key and the `explained` of the viewed sample's analysis
JS_SHOWN = """() => { const app = document.querySelector('.sl-root').__samplelens;
  const a = app.analysisOf(app.currentKey());
  return a && {key: a.meta.key, explained: a.meta.explained}; }"""
MAPS = {name: f"canvas[data-role=error-map-{name}]" for name in ("pred", "true", "loss")}


@pytest.fixture(scope="module")
def data():
    return {"train": Blobs(450, seed=1), "val": Blobs(60)}


def predictions(net, ds):
    with torch.no_grad():
        return net(torch.stack([ds[i][0] for i in range(len(ds))])).argmax(1).tolist()


def test_error_maps_and_the_label_and_contrast_controls(light_page, data):
    net = TinyNet()
    val = data["val"]
    pred = predictions(net, val)
    wrong = next(i for i in range(len(val)) if pred[i] != val[i][1])
    right = next((i for i in range(len(val)) if pred[i] == val[i][1]), None)
    lens = SampleLens(net, val, slices=data, label_names=NAMES)
    lens.selected = [wrong] + ([right] if right is not None else [])
    h = light_page(lens)
    settle(lens, h)
    page = h.page
    wait_canvas(page)
    y = val[wrong][1]

    # three maps at the current (last) depth, with their captions
    for sel in MAPS.values():
        wait_canvas(page, sel)
    captions = page.locator("[data-role=error-maps] .sl-caption").all_inner_texts()
    assert captions == [f"predicted: {NAMES[pred[wrong]]}", f"true: {NAMES[y]}", "loss"]
    last = canvas(page)["depth"]
    assert all(canvas(page, s)["depth"] == last for s in MAPS.values())
    box = page.locator("[data-role=error-maps]").bounding_box()
    assert box["width"] <= 262

    # the depth slider moves all three, from the maps on the page
    page.click("[data-role=depth-custom]")
    settle(lens, h)
    before = {n: canvas(page, s)["hash"] for n, s in MAPS.items()}
    set_slider(page, "[data-role=depth]", 2)
    for n, s in MAPS.items():
        assert canvas(page, s)["depth"] == "2", n
    assert any(canvas(page, s)["hash"] != before[n] for n, s in MAPS.items())
    page.click("[data-role=depth-last]")
    settle(lens, h)

    # label: the loss; the contrast is off meanwhile
    assert page.locator("[data-role=label] option[value=loss]").count() == 1
    page.select_option("[data-role=label]", "loss")
    settle(lens, h)
    assert lens.label == "loss"
    what, _, shown = page.inner_text("[data-role=score]").partition(" · score (loss) ")
    assert what == f"explaining loss (true label: {NAMES[y]})"
    loss = float(page.inner_text("[data-role=loss]"))  # the error panel's
    assert float(shown) == pytest.approx(loss, abs=1.5e-3)
    assert page.locator("[data-role=contrast]").is_disabled()

    # the prediction rather than the true class
    page.select_option("[data-role=label]", "")
    settle(lens, h)
    assert lens.label is None
    assert not page.locator("[data-role=contrast]").is_disabled()
    page.select_option("[data-role=contrast]", str(y))
    settle(lens, h)
    assert lens.contrast == y
    shown = page.evaluate(JS_SHOWN)
    assert shown["key"]["contrast"] == y and shown["key"]["label"] is None
    assert "rather than" in shown["explained"]
    score = page.inner_text("[data-role=score]")
    assert score.startswith(
        f"explaining the predicted class ({NAMES[pred[wrong]]}) rather than {NAMES[y]}"
        " · score (logit difference) "
    )
    page.select_option("[data-role=contrast]", "")
    settle(lens, h)
    assert lens.contrast is None

    # a sample the model gets right: no error maps
    if right is not None:
        lens.viewed = right
        settle(lens, h)
        page.wait_for_function(
            "(t) => document.querySelector('[data-role=error-analysis]')"
            ".innerText.includes('#' + t)",
            arg=right,
        )
        assert page.locator("[data-role=error-maps]").count() == 0


class _Relabelled(torch.utils.data.Dataset):
    """A data set with other targets: `fn(label)`."""

    def __init__(self, ds, fn):
        self.ds, self.fn = ds, fn

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return x, self.fn(y)


@pytest.mark.parametrize(
    ("task", "fn", "names"),
    [("regression", lambda y: float(y) / 4, None),
     ("binary", lambda y: int(y % 2), ["even", "odd"])],
)
def test_single_output_models_show_dashes_not_errors(light_page, data, task, fn, names):
    val = _Relabelled(data["val"], fn)
    lens = SampleLens(TinyNet(classes=1), val, task=task, label_names=names)
    h = light_page(lens)
    settle(lens, h)
    page = h.page
    wait_canvas(page)
    page.wait_for_function("() => document.querySelector('[data-role=loss]') !== null")
    text = page.inner_text("[data-role=error-analysis]")
    assert "#0" in text
    assert page.inner_text("[data-role=score]").startswith("explaining")
    if task == "regression":
        assert page.locator("[data-role=error-maps]").count() == 0
        assert "incorrect" not in text and "correct" not in text
        assert page.inner_text("[data-role=topk]") == "—"


class _MultiHot(torch.utils.data.Dataset):
    """Blobs with a multi-hot label: the blob's class and, for every third sample, the next."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        hot = torch.zeros(5)
        hot[[y, (y + 1) % 5] if i % 3 == 0 else [y]] = 1
        return x, hot


def test_a_multilabel_model_shows_label_sets_in_the_list_and_the_error_analysis(light_page, data):
    net, val = TinyNet(), _MultiHot(data["val"])
    with torch.no_grad():
        logits = net(torch.stack([val[i][0] for i in range(len(val))]))
    names = lambda cs: ", ".join(NAMES[c] for c in cs) or "none"  # noqa: E731
    pred = [[c for c in range(5) if logits[i, c] > 0] for i in range(len(val))]
    true = [[c for c in range(5) if val[i][1][c] == 1] for i in range(len(val))]
    wrong = next(i for i in range(len(val)) if pred[i] != true[i])
    lens = SampleLens(net, val, task="multilabel", label_names=NAMES)
    lens.selected = [wrong]
    lens.viewed = wrong
    h = light_page(lens)
    settle(lens, h)
    page = h.page
    wait_canvas(page)
    row = page.locator(f".sl-row[data-id='{wrong}'] .sl-lab")
    page.wait_for_function(
        "(id) => document.querySelector(`.sl-row[data-id='${id}'] .sl-lab`).innerText !== '…'",
        arg=wrong,
    )
    assert row.all_inner_texts() == [names(true[wrong]), names(pred[wrong])]
    assert "sl-wrong" in row.nth(1).get_attribute("class")
    page.wait_for_selector("[data-role=badge]")
    assert page.inner_text("[data-role=badge]") == "incorrect"
    assert page.inner_text("[data-role=true-label]") == names(true[wrong])
    assert page.inner_text("[data-role=pred-label]") == names(pred[wrong])
    # the maps: a class predicted but not true (or the top class), a true class missed, the loss;
    # the scatter opens coloured by whether the whole set is right
    assert lens.color_by == "correct"
    wait_canvas(page, MAPS["loss"])
    captions = [c for c in page.locator("[data-role=error-maps] .sl-caption").all_inner_texts()]
    extra = [c for c in pred[wrong] if c not in true[wrong]]
    missed = [c for c in true[wrong] if c not in pred[wrong]]
    top = int(logits[wrong].argmax())
    fp = top if top in extra else (extra[0] if extra else None)
    assert captions[0] == (f"extra: {NAMES[fp]}" if fp is not None else f"predicted: {NAMES[top]}")
    assert captions[1] == (f"missed: {NAMES[missed[0]]}" if missed else "")
    assert captions[2] == "loss"
    page.wait_for_function(
        "() => document.querySelector('[data-role=slice-stats]').innerText.includes('exact-match')"
    )
    harness.screenshot(page.locator(".sl-root"), "multilabel-light")
