"""SampleLens's real bundle in the light page, wired to the real Python widget (fast tier).

Small fake models (tests/widget/fakes.py) keep these quick; the end-to-end checks in real
JupyterLab with the demo model are in test_widget_lab.py.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import screenshot, wait_until
from widget_helpers import ROOT, canvas, fakes, pixels, set_slider, settle, wait_canvas

from samplelens_widget import SampleLens

pytestmark = pytest.mark.ui

OVERLAY = "canvas[data-role=overlay]"
NAMES, Blobs, PairData, TinyNet, TwoInputNet = (
    fakes.NAMES,
    fakes.Blobs,
    fakes.PairData,
    fakes.TinyNet,
    fakes.TwoInputNet,
)
broken, histogram_text, red_image = fakes.broken, fakes.histogram_text, fakes.red_image


@pytest.fixture(scope="module")
def data():
    return {"train": Blobs(450, seed=1), "val": Blobs(60)}


def make(data, **kw):
    kw.setdefault("label_names", NAMES)
    return SampleLens(TinyNet(), data["val"], slices=data, **kw)


def mount(light_page, lens):
    h = light_page(lens)
    settle(lens, h)
    wait_canvas(h.page, OVERLAY)
    return h


def lut(name):
    tables = json.loads((ROOT / "samplelens_widget" / "colormaps.json").read_text())
    return np.frombuffer(bytes.fromhex(tables[name]), dtype=np.uint8).reshape(256, 3)


def test_panels_render_and_the_overlay_is_the_expected_composite(light_page, data):
    lens = make(data, algorithm="layercam")
    res = lens.result
    depth = next(d for d in res.depths if np.ptp(res.raw(res.layer_at(d).name)) > 0)
    lens.depth = depth
    h = mount(light_page, lens)
    page = h.page
    for role in ("sample-list", "viewer", "controller", "error-analysis"):
        assert page.locator(f"[data-role={role}]").is_visible(), role
    assert page.locator("[data-role=rows] .sl-row").count() == 12
    got = pixels(page)
    # Independent expectation: min-max to uint8 at feature resolution, torch's bilinear to the
    # canvas size, the jet table from the JSON file, 50 % blend over the nearest-upscaled input.
    raw = torch.from_numpy(res.raw(res.layer_at(depth).name)[0]).double()
    u8 = torch.round((raw - raw.min()) / (raw.max() - raw.min()) * 255)
    H, W = got.shape[:2]
    assert (H, W) == (384, 384)
    heat = F.interpolate(u8[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    idx = np.floor(heat.numpy() + 0.5).astype(int).clip(0, 255)
    base = np.repeat(np.repeat(data["val"].to_display(0), 6, axis=0), 6, axis=1).astype(float)
    want = np.rint(0.5 * base + 0.5 * lut("jet")[idx])
    diff = np.abs(got[..., :3].astype(float) - want)
    assert np.mean(diff <= 1) > 0.995 and diff.max() <= 3
    assert (got[..., 3] == 255).all()
    # the heat value under the pointer, in input pixels
    box = page.locator(OVERLAY).bounding_box()
    page.mouse.move(box["x"] + 200.5, box["y"] + 100.5)
    readout = page.inner_text("[data-role=readout]")
    assert readout == f"heat {heat[100, 200].item() / 255:.2f} at ({200 // 6}, {100 // 6})"
    screenshot(page, "light-overview")


def test_depth_drag_repaints_synchronously_then_reaches_python(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    page.click("[data-role=depth-custom]")
    settle(lens, h)
    deepest = lens.result.depths[-1]
    assert lens.depth == deepest
    assert page.locator("[data-role=depth]").is_enabled()
    before = canvas(page)
    # Set the slider and read the canvas in the same JS task: Python cannot have answered.
    after = page.evaluate(
        """(sel) => { const s = document.querySelector('[data-role=depth]');
             s.value = '2'; s.dispatchEvent(new Event('input', {bubbles: true}));
             const c = document.querySelector(sel);
             return {depth: c.dataset.depth, draws: Number(c.dataset.draws),
                     text: document.querySelector('[data-role=depth-text]').innerText}; }""",
        OVERLAY,
    )
    assert after["depth"] == "2" and after["draws"] > before["draws"]
    assert lens.result.layer_at(2).name in after["text"]
    assert canvas(page)["hash"] != before["hash"]
    page.wait_for_timeout(250)  # the debounced save
    h.sync()
    assert lens.depth == 2
    # an echo of an older save arriving mid-drag does not pull the slider back
    set_slider(page, "[data-role=depth]", 5)
    page.evaluate(
        """(id) => { const s = document.querySelector('[data-role=depth]');
             s.value = '6'; s.dispatchEvent(new Event('input', {bubbles: true})); }""",
        None,
    )
    h.js_set("depth", 5, save=False)  # what the kernel's echo_update of depth=5 does
    assert canvas(page)["depth"] == "6" and page.input_value("[data-role=depth]") == "6"
    page.wait_for_timeout(250)
    h.sync()
    assert lens.depth == 6
    set_slider(page, "[data-role=depth]", 2)
    page.wait_for_timeout(250)
    h.sync()
    assert lens.depth == 2
    # keyboard: arrows move the slider (JupyterLab's shortcuts must not swallow them)
    page.focus("[data-role=depth]")
    page.keyboard.press("ArrowRight")
    assert canvas(page)["depth"] == "3"
    page.wait_for_timeout(250)
    h.sync()
    assert lens.depth == 3
    page.click("[data-role=depth-last]")
    h.sync()
    assert lens.depth is None


def test_python_side_changes_drive_the_page(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    lens.algorithm = "focus_layercam"
    lens.label = 2
    lens.depth = 3
    lens.selected = [3, 7]
    settle(lens, h)
    assert page.input_value("[data-role=algorithm]") == "focus_layercam"
    assert page.input_value("[data-role=label]") == "2"
    assert page.input_value("[data-role=depth]") == "3"
    assert page.locator("[data-role=depth-custom]").is_checked()
    ids = page.locator("[data-role=rows] .sl-row").evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert ids == ["3", "7"]
    assert page.locator(".sl-row.sl-active").get_attribute("data-id") == "3"
    assert canvas(page)["depth"] == "3"
    assert "explaining triangle" in page.inner_text("[data-role=score]")
    lens.colormap = "gray"
    lens.opacity = 1.0
    settle(lens, h)
    px = pixels(page)
    assert (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all()


def test_label_change_from_the_page_changes_the_heatmap(light_page, data):
    lens = make(data, algorithm="layercam")
    h = mount(light_page, lens)
    page = h.page
    page.click("[data-role=depth-custom]")
    settle(lens, h)
    set_slider(page, "[data-role=depth]", 2)
    before = canvas(page)["hash"]
    pred = int(lens.result.predictions[0])
    other = (pred + 1) % 5
    page.select_option("[data-role=label]", str(other))
    settle(lens, h)
    assert lens.label == other
    after = wait_canvas(page, differs_from=before)
    assert after["hash"] != before
    assert lens.result.targets.tolist() == [other]


def test_clicking_a_row_views_that_sample(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    before = canvas(page)["hash"]
    page.click("[data-role=rows] .sl-row[data-id='5']")
    settle(lens, h)
    assert lens.viewed == 5
    wait_canvas(page, differs_from=before)
    assert "#5" in page.inner_text("[data-role=error-analysis]")
    y = data["val"][5][1]
    assert page.inner_text("[data-role=true-label]") == NAMES[y]
    pred = int(lens.result.predictions[0])
    assert page.inner_text("[data-role=pred-label]") == NAMES[pred]
    assert page.inner_text("[data-role=badge]") == ("correct" if pred == y else "incorrect")


def test_a_click_moves_the_highlight_and_only_a_long_wait_shows_the_spinner(
    light_page, data, request
):
    """A click on a row re-marks the rows it has (no rebuild: the click's request is not kept
    waiting behind it); the status says "kernel working…" only once the answer takes longer than
    the spinner's delay, and "ready" again after it."""
    lens = make(data, selected=list(range(12)))
    h = mount(light_page, lens)
    page = h.page
    gate, inside = threading.Event(), threading.Event()

    def slow(_module, args):  # the click's analysis (one sample) waits for the gate
        if args[0].shape[0] == 1:
            inside.set()
            gate.wait(20)

    hook = lens._session.models[lens.model_name].register_forward_pre_hook(slow)
    request.addfinalizer(hook.remove)
    request.addfinalizer(gate.set)
    at_click = page.evaluate(
        """() => {
        document.querySelectorAll('[data-role=rows] .sl-row').forEach((r) => { r.__kept = true; });
        document.querySelector("[data-role=rows] .sl-row[data-id='5']").click();
        return [document.querySelector('[data-role=status]').innerText,
                document.querySelector('.sl-header').dataset.busy]; }"""
    )
    assert at_click == ["ready", "1"]  # waiting, but no spinner flashed at once
    wait_until(inside.is_set, page, 10, "the click's analysis")
    page.wait_for_function(
        "() => document.querySelector('[data-role=status]').innerText === 'kernel working…'",
        timeout=5000,
    )
    assert page.locator("[data-role=status] .sl-spinner").count() == 1
    rows = page.evaluate(
        "() => [...document.querySelectorAll('[data-role=rows] .sl-row')].map((r) =>"
        " [r.dataset.id, !!r.__kept, r.classList.contains('sl-active')])"
    )
    assert [r[0] for r in rows] == [str(i) for i in range(12)]
    assert all(kept for _, kept, _ in rows)  # the same elements: re-marked, not rebuilt
    assert [i for i, _, active in rows if active] == ["5"]
    gate.set()
    settle(lens, h)
    page.wait_for_function(
        "() => document.querySelector('[data-role=status]').innerText === 'ready'", timeout=10000
    )
    assert page.locator("[data-role=status] .sl-spinner").count() == 0
    assert lens.viewed == 5


def test_bad_sample_id_shows_an_error_and_the_widget_keeps_working(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    page.fill("[data-role=add-id]", "99999")
    page.click("[data-role=add]")
    settle(lens, h)
    banner = page.locator("[data-role=errors] .sl-banner")
    assert banner.count() == 1
    assert "sample id 99999 is out of range 0..59 for slice 'val'" in banner.inner_text()
    assert lens.selected == list(range(12))
    page.click("[data-role=errors] .sl-x")
    assert banner.count() == 0
    page.fill("[data-role=add-id]", "42")
    page.keyboard.press("Enter")
    settle(lens, h)
    assert lens.viewed == 42 and 42 in lens.selected
    wait_canvas(page)
    assert page.locator(".sl-row.sl-active").get_attribute("data-id") == "42"


def test_visualizer_tabs_show_text_image_error_and_plotly(light_page, data):
    import plotly.graph_objects as go

    def bars(sample):
        return go.Figure(go.Bar(x=["a", "b"], y=[1, sample.id + 1]))

    lens = make(
        data,
        visualizers={"Stats": histogram_text, "Red": red_image, "Broken": broken, "Bars": bars},
    )
    h = mount(light_page, lens)
    page = h.page
    tabs = page.locator(".sl-tab").all_inner_texts()
    assert tabs == ["CAM overlay", "Input", "Stats", "Red", "Broken", "Bars"]
    page.click(".sl-tab[data-tab=Stats]")
    settle(lens, h)
    assert lens.tab == "Stats"
    assert page.inner_text("[data-role=visual] pre").startswith("sample 0: label")
    page.click(".sl-tab[data-tab=Red]")
    settle(lens, h)
    img = page.locator("[data-role=visual] img")
    img.wait_for()
    page.wait_for_function("() => document.querySelector('[data-role=visual] img').complete")
    assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [16, 16]
    page.click(".sl-tab[data-tab=Broken]")
    settle(lens, h)
    assert "this visualizer is broken on purpose" in page.inner_text("[data-role=visual]")
    page.click(".sl-tab[data-tab=Bars]")
    settle(lens, h, rounds=5)
    page.wait_for_selector("[data-role=plotly] .main-svg", timeout=20000)
    assert page.locator("[data-role=plotly] .bars .point").count() == 2
    page.click(".sl-tab[data-tab=Input]")
    settle(lens, h)
    c = wait_canvas(page, "canvas[data-role=input]")
    px = pixels(page, "canvas[data-role=input]")
    want = np.repeat(np.repeat(data["val"].to_display(0), 6, axis=0), 6, axis=1)
    assert c["w"] == 384 and np.array_equal(px[..., :3], want)


def test_a_stale_answer_never_replaces_a_newer_one(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    old_key = lens._key()
    page.select_option("[data-role=label]", "3")
    settle(lens, h)
    now = canvas(page)
    # the kernel answers an old request late: label None (the prediction)
    meta, buffers = lens._answers.analysis_reply(old_key)
    meta["rid"] = 1
    lens.send(meta, buffers=buffers)
    h.sync()
    assert canvas(page)["hash"] == now["hash"]
    assert page.input_value("[data-role=label]") == "3"
    assert f"explaining {NAMES[3]}" in page.inner_text("[data-role=score]")


def test_select_all_pages_through_a_large_slice(light_page, data):
    lens = make(data)
    lens.slice = "train"
    h = mount(light_page, lens)
    page = h.page
    page.click("[data-role=select-all]")
    settle(lens, h, rounds=5)
    assert lens.selected == list(range(450))
    assert "1–200 of 450" in page.inner_text(".sl-pager")
    assert page.locator("[data-role=rows] .sl-row").count() == 200
    page.click("[data-role=next]")
    settle(lens, h, rounds=5)
    ids = page.locator("[data-role=rows] .sl-row").evaluate_all("rs => rs.map(r => +r.dataset.id)")
    assert ids == list(range(200, 400))
    page.wait_for_function(
        "() => document.querySelectorAll('[data-role=rows] img.sl-thumb').length === 200"
    )
    # viewing a sample from Python turns the list to its page and scrolls to its row
    lens.viewed = 420
    settle(lens, h, rounds=5)
    assert "401–450 of 450" in page.inner_text(".sl-pager")
    row = page.locator(".sl-row.sl-active")
    assert row.get_attribute("data-id") == "420"
    assert row.evaluate(
        "r => { const b = r.parentElement.getBoundingClientRect(), x = r.getBoundingClientRect();"
        " return x.top >= b.top && x.bottom <= b.bottom; }"
    )


def test_connection_selector_for_multi_input_models(light_page):
    lens = SampleLens(TwoInputNet(), PairData())
    h = light_page(lens)
    settle(lens, h)
    page = h.page
    wait_canvas(page)
    assert canvas(page)["w"] == 32 * 13  # an integer multiple near 400 px
    assert page.locator("[data-role=connection]").is_visible()
    page.select_option("[data-role=connection]", "1")
    settle(lens, h)
    assert lens.connection == 1
    page.wait_for_function(
        "() => document.querySelector('canvas[data-role=overlay]').width === 384"
    )


def test_single_input_models_hide_the_connection_selector(light_page, data):
    h = mount(light_page, make(data))
    assert not h.page.locator("[data-role=connection]").is_visible()


def test_compare_two_models_side_by_side(light_page, data):
    lens = SampleLens(
        None, data["val"], models={"baseline": TinyNet(seed=0), "candidate": TinyNet(seed=5)}
    )
    h = mount(light_page, lens)
    page = h.page
    assert page.input_value("[data-role=model]") == "baseline"
    page.check("[data-role=compare]")
    settle(lens, h)
    assert lens.compare == "candidate"
    b = wait_canvas(page, "canvas[data-role=overlay-compare]")
    a = canvas(page)
    assert a["hash"] != b["hash"]
    caps = page.locator(".sl-caption").all_inner_texts()
    assert any(c.startswith("baseline") for c in caps) and any(
        c.startswith("candidate") for c in caps
    )


def test_grid_of_selected_samples(light_page, data):
    lens = make(data)
    lens.selected = [1, 2, 3, 4]
    h = mount(light_page, lens)
    page = h.page
    page.check("[data-role=grid]")
    settle(lens, h, rounds=5)
    assert lens.grid
    items = page.locator(".sl-grid-item")
    assert items.count() == 4
    page.wait_for_function(
        "() => [...document.querySelectorAll('.sl-grid-item canvas')]"
        ".every(c => +c.dataset.draws > 0)"
    )
    items.nth(2).click()
    h.sync()
    assert lens.viewed == 3


def test_kernel_errors_show_in_the_widget(light_page, data):
    class Flaky(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            if i == 4:
                raise IndexError("sample 4 is corrupt")
            return data["val"][i]

    lens = SampleLens(TinyNet(), Flaky(), selected=[0, 1])
    h = mount(light_page, lens)
    page = h.page
    lens.viewed = 4
    settle(lens, h)
    assert "sample 4 is corrupt" in page.inner_text("[data-role=errors]")
    page.click("[data-role=rows] .sl-row[data-id='1']")
    settle(lens, h)
    wait_canvas(page)
    assert lens.viewed == 1 and page.get_attribute("[data-role=status]", "class") == "sl-status"
