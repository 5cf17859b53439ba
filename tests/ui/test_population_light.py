"""The population scatter in the light page (real bundle, real Python widget, small models).

Expectations come from Python (the dataset's labels, numpy brute-force cosine similarity, a
ray-casting test in Python over the points' screen positions), never from the page's own code.
No UMAP here: the widgets use ``projection="pca"`` (a fake background projection stands in
for UMAP in the morph test).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from harness import screenshot, wait_until
from widget_helpers import canvas, fakes, settle, wait_canvas

import samplelens_widget.population_view as population
from samplelens_widget import SampleLens
from samplelens_widget.population import Projection

pytestmark = pytest.mark.ui

OVERLAY = "canvas[data-role=overlay]"
SC = "document.querySelector('.sl-root').__samplelens.debug()"  # js/debug.ts: the scatter probe
TAB10 = ["1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd"]


@pytest.fixture(scope="module")
def data():
    return {
        "train": fakes.Blobs(300, seed=1),
        "val": fakes.Blobs(80),
        "one": fakes.Blobs(1, seed=5),
    }


def make(data, **kw):
    kw.setdefault("label_names", fakes.NAMES)
    kw.setdefault("projection", "pca")
    kw.setdefault("cache_dir", None)
    return SampleLens(fakes.TinyNet(), data["val"], slices=data, **kw)


def ready(page):
    return page.evaluate(
        f"() => {{ const s = {SC}; return !!s && s.snapshot().draws > 0 && "
        "!!document.querySelector('.sl-root').__samplelens.population(); }"
    )


def mount(light_page, lens):
    h = light_page(lens)
    settle(lens, h)
    wait_canvas(h.page, OVERLAY)
    wait_until(lambda: ready(h.page), h.page, 20, "the scatter with its points")
    return h


def js(page, expr, arg=None):
    return page.evaluate(f"(arg) => {{ const s = {SC}; return {expr}; }}", arg)


def screen(page, n):
    """Client coordinates of every point, as the page places them (N, 2)."""
    return np.array(
        js(
            page,
            "Array.from({length: arg}, (_, i) => { const p = s.screenOf(i); return [p.x, p.y]; })",
            n,
        )
    )


def isolated(page, n, exclude=(), min_px=14.0):
    """Ids of points at least ``min_px`` from every other point, most isolated first."""
    xy = screen(page, n)
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    near = d.min(1)
    order = [int(i) for i in np.argsort(-near) if near[i] >= min_px and int(i) not in exclude]
    assert order, "no isolated point on the scatter"
    return order, xy


def pixel(page, x, y):
    return js(page, "s.pixelAt(arg[0], arg[1])", [x, y])


def rgb(hexs):
    return np.array([int(hexs[i : i + 2], 16) for i in (0, 2, 4)], dtype=float)


def inside(poly, pts):
    """Even-odd ray casting in Python (independent of the page's module)."""
    poly = np.asarray(poly, float)
    out = np.zeros(len(pts), bool)
    for k, (x, y) in enumerate(pts):
        c = False
        for i in range(len(poly)):
            (xi, yi), (xj, yj) = poly[i], poly[i - 1]
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                c = not c
        out[k] = c
    return out


def test_every_sample_is_a_dot_coloured_by_its_label_and_colour_by_changes_colours(
    light_page, data
):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    n = len(data["val"])
    assert js(page, "s.pos.length / 2") == n
    assert "80 samples" in page.inner_text("[data-role=scatter-status]")
    ids, xy = isolated(page, n, exclude=set(lens.selected))
    labels = data["val"].y.numpy()
    for i in ids[:3]:
        got = np.array(pixel(page, *xy[i])[:3], float)
        want = 0.9 * rgb(TAB10[labels[i]]) + 0.1 * 255  # 90 % opaque dot over the white stage
        assert np.abs(got - want).max() <= 3, (i, got, want)
    legend = page.inner_text("[data-role=scatter-legend]")
    assert all(name in legend for name in fakes.NAMES)
    before = js(page, "s.snapshot()")

    # from the page: colour by correct / incorrect
    page.select_option("[data-role=color-by]", "correct")
    h.sync()
    assert lens.color_by == "correct"
    preds = lens.population_predictions = lens._session.stats.of_slice(lens.model_name, "val")
    correct = preds["predictions"] == labels
    i = ids[0]
    want = 0.9 * rgb("2da44e" if correct[i] else "d1242f") + 0.1 * 255
    assert np.abs(np.array(pixel(page, *xy[i])[:3], float) - want).max() <= 3
    after = js(page, "s.snapshot()")
    assert after["hash"] != before["hash"]
    assert "incorrect" in page.inner_text("[data-role=scatter-legend]")

    # from Python: colour by loss (viridis over [min, max])
    lens.color_by = "loss"
    h.sync()
    assert page.input_value("[data-role=color-by]") == "loss"
    assert js(page, "s.snapshot()")["hash"] not in (before["hash"], after["hash"])
    screenshot(page, "population-light-loss")


def test_clicking_a_dot_adds_that_sample_to_the_list_and_shows_its_overlay(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    ids, xy = isolated(page, len(data["val"]), exclude=set(lens.selected))
    target = ids[0]
    before = canvas(page)["hash"]
    page.mouse.click(*xy[target])
    settle(lens, h)
    assert lens.viewed == target and lens.selected[-1] == target
    assert page.locator(f"[data-role=rows] .sl-row[data-id='{target}']").count() == 1
    assert "sl-active" in page.get_attribute(f".sl-row[data-id='{target}']", "class")
    wait_canvas(page, OVERLAY, differs_from=before)
    assert f"#{target}" in page.inner_text("[data-role=error-analysis]")
    assert js(page, "s.flagOf(arg)", target) == 3
    # hover shows the id, labels and a thumbnail
    page.mouse.move(*xy[ids[1]])
    tip = page.locator("[data-role=scatter-tip]")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert f"#{ids[1]}" in text and fakes.NAMES[int(data["val"].y[ids[1]])] in text
    settle(lens, h)
    page.mouse.move(xy[ids[1]][0] + 0.5, xy[ids[1]][1])
    page.wait_for_selector("[data-role=scatter-tip] img.sl-pop-thumb")


def test_a_lasso_and_a_box_select_the_samples_inside(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    n = len(data["val"])
    xy = screen(page, n)
    box = page.locator("[data-role=scatter-stage]").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # a pentagon around the centre of the points' bounding box
    mx, my = xy.mean(0)
    r = 0.45 * min(np.ptp(xy[:, 0]), np.ptp(xy[:, 1])) + 20
    angles = np.linspace(0, 2 * np.pi, 6)[:-1] + 0.3
    poly = [(mx + r * np.cos(a), my + r * np.sin(a)) for a in angles]
    want = np.flatnonzero(inside(poly, xy)).tolist()
    assert 2 <= len(want) < n, want
    page.click("[data-mode=lasso]")
    page.mouse.move(*poly[0])
    page.mouse.down()
    for p in [*poly[1:], poly[0]]:
        page.mouse.move(*p, steps=4)
    page.mouse.up()
    settle(lens, h)
    assert sorted(lens.selected) == want
    assert lens.viewed in want
    assert page.locator("[data-role=rows] .sl-row").count() == len(want)
    assert all(js(page, "s.flagOf(arg)", i) in (1, 3) for i in want)

    # box, shift held: added to the selection
    page.click("[data-mode=box]")
    x0, y0, x1, y1 = cx - box["width"] / 2 + 2, cy - box["height"] / 2 + 2, mx, my
    added = np.flatnonzero(
        (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    ).tolist()
    page.keyboard.down("Shift")
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    settle(lens, h)
    assert lens.selected == want + [i for i in added if i not in want]
    assert js(page, "s.pos.length") == 2 * n  # pan mode untouched, nothing else broke


def test_fetch_similar_adds_k_more_and_highlights_them(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    lens.selected = [5, 9]
    h.sync()
    page.fill("[data-role=similar-k]", "4")
    page.click("[data-role=similar]")
    settle(lens, h)
    feats = lens.population()["features"].astype(np.float64)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    sims = (unit @ unit[[5, 9]].T).max(1)
    sims[[5, 9]] = -np.inf
    want = np.argsort(-sims, kind="stable")[:4].tolist()
    assert lens.selected[:2] == [5, 9] and len(lens.selected) == 6
    assert sorted(lens.selected[2:]) == sorted(want)
    rows = page.locator("[data-role=rows] .sl-row.sl-similar")
    assert sorted(rows.evaluate_all("rs => rs.map(r => +r.dataset.id)")) == sorted(want)
    for i in want:
        assert js(page, "s.flagOf(arg)", i) == 2
        got = float(page.get_attribute(f".sl-row[data-id='{i}']", "data-similar"))
        assert abs(got - sims[i]) < 1e-3

    # k larger than the slice: a clear message, the widget still works
    page.fill("[data-role=similar-k]", "500")
    page.click("[data-role=similar]")
    settle(lens, h)
    banner = page.locator("[data-role=errors] .sl-banner")
    assert "k: 500 is out of range" in banner.inner_text()
    light_page.errors.clear()
    assert len(lens.selected) == 6
    page.click("[data-role=errors] .sl-x")


def test_setting_selected_from_python_highlights_the_dots(light_page, data):
    lens = make(data)
    h = mount(light_page, lens)
    page = h.page
    n = len(data["val"])
    ids, xy = isolated(page, n, exclude=set(lens.selected), min_px=20)
    pick = ids[:3]
    ring = {pick[0]: 8.2, pick[1]: 5.7, pick[2]: 5.7}  # px from the centre: the viewed is larger
    rings_before = [pixel(page, xy[i][0] + ring[i], xy[i][1]) for i in pick]
    lens.selected = pick
    h.sync()
    js(page, "s.frame()")
    assert [js(page, "s.flagOf(arg)", i) for i in pick] == [3, 1, 1]  # the first is viewed
    for i, before in zip(pick, rings_before, strict=True):
        after = pixel(page, xy[i][0] + ring[i], xy[i][1])
        assert max(after[:3]) < 90 and min(before[:3]) > 200, (i, before, after)  # a dark ring
    others = [i for i in range(n) if i not in pick]
    assert all(js(page, "s.flagOf(arg)", i) == 0 for i in others[:20])


def test_morph_from_the_pca_preview_to_the_background_map(light_page, data, monkeypatch):
    started = threading.Event()

    class FakeBackground:  # stands in for UMAP: a known layout, delivered on demand
        def __init__(self, features, on_done, **kw):
            self.features, self.on_done = features, on_done
            started.set()

        def finish(self):
            n = len(self.features)
            t = np.linspace(0, 2 * np.pi, n, endpoint=False)
            coords = np.stack([np.cos(t), np.sin(t)], 1).astype(np.float32)
            self.on_done(Projection(coords, "umap"))

        def cancel(self):
            pass

        def join(self, timeout=None):  # Population.close waits for the thread
            return True

    made = []
    monkeypatch.setattr(
        population,
        "project_in_background",
        lambda f, cb, **kw: made.append(FakeBackground(f, cb)) or made[-1],
    )
    monkeypatch.setattr(population, "warm_up_umap", lambda: None)
    lens = make(data, projection="umap")
    h = mount(light_page, lens)
    page = h.page
    assert started.is_set()
    status = page.locator("[data-role=scatter-status]")
    assert "PCA preview, UMAP running" in status.inner_text()
    # the projection is a phase of its own, counted in seconds, while the preview shows
    phase = page.locator("[data-role=scatter-phases] [data-phase=projection]")
    assert phase.is_visible()
    assert "projection: UMAP" in phase.inner_text() and " s" in phase.inner_text()
    before = screen(page, 80)
    made[0].finish()
    settle(lens, h)
    page.wait_for_function(f"() => {SC}.morphT() >= 1", timeout=5000)
    assert status.inner_text().endswith("UMAP")
    # every phase done: the phases line is gone
    assert not page.locator("[data-role=scatter-phases]").is_visible()
    after = screen(page, 80)
    # the points now lie on a circle (normalised into the stage), not where PCA put them
    centre = after.mean(0)
    radii = np.linalg.norm(after - centre, axis=1)
    assert radii.std() / radii.mean() < 0.02
    assert np.abs(after - before).max() > 20


def test_one_sample_slice_and_a_bad_embed_layer_show_clear_messages(light_page, data):
    other = fakes.TinyNet(seed=1)
    other.features = other.features[:4]  # no module 'features.6': the embed layer is missing
    other.head = torch.nn.Sequential(other.head[0], other.head[1], torch.nn.Linear(12, 5))
    lens = SampleLens(
        fakes.TinyNet(),
        data["one"],
        slices=data,
        models={"a": fakes.TinyNet(), "b": other},
        label_names=fakes.NAMES,
        projection="pca",
        cache_dir=None,
        embed_layer="features.6",
    )
    h = light_page(lens)
    settle(lens, h)
    wait_until(lambda: ready(h.page), h.page, 20, "the scatter")
    page = h.page
    assert "one sample" in page.inner_text("[data-role=scatter-note]")
    page.click("[data-role=similar]")
    settle(lens, h)
    # nothing left to fetch: said in words in the list, not raised as an error
    page.wait_for_function(
        "() => document.querySelector('[data-role=list-note]').innerText.includes('nothing left')"
    )
    assert "all 1 samples of slice 'one' are in the list already" in page.inner_text(
        "[data-role=list-note]"
    )
    assert page.inner_text("[data-role=errors]") == ""
    light_page.errors.clear()
    # a model without the embed layer: the scatter says why, the rest still works
    lens.model_name = "b"
    settle(lens, h)
    msg = page.locator("[data-role=scatter-msg]")
    msg.wait_for(state="visible")
    assert "embed_layer: 'features.6'" in msg.inner_text()
    assert "embed_layer" in page.inner_text("[data-role=errors]")
    light_page.errors.clear()
    lens.model_name = "a"
    settle(lens, h)
    wait_until(lambda: ready(page), page, 20, "the scatter of model a")
    assert page.locator("[data-role=rows] .sl-row").count() == 1


def test_a_progress_bar_shows_while_the_features_are_computed(light_page, data, request):
    release, halfway = threading.Event(), threading.Event()
    lens = make(data)
    lens._population.chunk = 20  # 80 samples: batches of at most 20
    passes, key = lens._session.stats.passes, (lens.model_name, lens.slice)

    def slow(_module, args):  # a slow model: once the pass is past item 40 it waits
        if args[0].shape[0] <= 1 or halfway.is_set():  # an analysis, or past the halfway wait
            return
        time.sleep(0.12)  # progress messages are sent at most every 0.1 s
        if passes._done.get(key, (0, 0))[0] >= 40:
            halfway.set()
            release.wait(20)

    hook = lens._session.models[lens.model_name].register_forward_pre_hook(slow)
    request.addfinalizer(hook.remove)
    h = light_page(lens)
    assert halfway.wait(20)
    done = passes._done[key][0]  # what the pass reported last (its batches are timed)
    assert 40 <= done < 80
    wait_until(
        lambda: f"{done} / 80" in h.page.inner_text("[data-role=scatter-msg]") or h.sync(),
        h.page,
        10,
        "the progress text",
    )
    # one pass gives both, and the phase says so
    assert f"features + statistics {done} / 80" in h.page.inner_text("[data-role=scatter-msg]")
    assert h.page.locator("[data-role=scatter-progress]").is_visible()
    width = h.page.evaluate(
        "() => document.querySelector('[data-role=scatter-progress] .sl-progress-bar').style.width"
    )
    assert float(width.rstrip("%")) == pytest.approx(100 * done / 80, abs=0.06)
    # meanwhile the rest of the widget works: a click on a row shows that sample (the trait
    # reaches Python once its analysis is drawn, or within VIEWED_SAVE_MAX_MS: here the pass
    # holds the model, so after that)
    h.page.click("[data-role=rows] .sl-row[data-id='3']")
    assert h.page.evaluate("() => document.querySelector('.sl-row.sl-active').dataset.id") == "3"
    wait_until(lambda: lens.viewed == 3 or h.sync(), h.page, 5, "the viewed trait in Python")
    release.set()
    settle(lens, h)
    wait_until(lambda: ready(h.page), h.page, 20, "the scatter")
    assert not h.page.locator("[data-role=scatter-progress]").is_visible()


def test_with_cached_features_the_dots_show_while_the_statistics_run(
    light_page, data, tmp_path, request
):
    first = make(data, cache_dir=tmp_path)
    first.population()  # the features on disk
    first.close()
    release, halfway = threading.Event(), threading.Event()
    lens = make(data, cache_dir=tmp_path)
    lens._population.chunk = 20
    passes, key = lens._session.stats.passes, (lens.model_name, lens.slice)

    def slow(_module, args):  # the statistics' pass waits once it is past item 40
        if args[0].shape[0] <= 1 or halfway.is_set():
            return
        time.sleep(0.12)
        if passes._done.get(key, (0, 0))[0] >= 40:
            halfway.set()
            release.wait(20)

    hook = lens._session.models[lens.model_name].register_forward_pre_hook(slow)
    request.addfinalizer(hook.remove)
    request.addfinalizer(release.set)
    h = light_page(lens)
    assert halfway.wait(20)
    page = h.page
    wait_until(lambda: ready(page) or h.sync(), page, 20, "the scatter before the statistics")
    assert lens._session.stats.known(*key) is None  # the pass is still held
    phase = page.locator("[data-role=scatter-phases] [data-phase=pass]")
    wait_until(lambda: phase.is_visible() or h.sync(), page, 10, "the statistics phase")
    done = passes._done[key][0]
    assert f"statistics {done} / 80" in phase.inner_text()
    assert "features" not in phase.inner_text()  # they came from the cache
    assert page.locator("[data-role=scatter-progress]").is_visible()
    assert page.inner_text("[data-role=scatter-status]").startswith("80 samples")
    assert js(page, "s.snapshot().draws") > 0
    screenshot(page.locator("[data-role=population]"), "population-statistics-phase")
    release.set()
    settle(lens, h)
    wait_until(
        lambda: not page.locator("[data-role=scatter-phases]").is_visible() or h.sync(),
        page, 20, "the phases line to go",
    )
    assert not page.locator("[data-role=scatter-progress]").is_visible()
    # the colours followed: the legend names the dataset's classes
    legend = page.inner_text("[data-role=population]")
    for name in fakes.NAMES[:3]:
        assert name in legend
