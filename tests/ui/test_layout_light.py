"""The widget's layout follows its own width (js/layout.ts), from 720 px to 1600 px.

Light page, the demo model. At each container width: no sideways scrolling (the root and every
panel), every panel and the controller's selects inside the root's box, the overlay canvas at
least 300 px wide with the input's aspect, the heatmap readout inside the viewer's box when the
pointer is on the heatmap. Live resizing (a ResizeObserver on the root, not the window) and the
scatter's canvas following its box are checked too. Screenshots at 720, 900 and 1280 px land in
tests/ui/artifacts/ (layout-720.png, layout-900.png, layout-1280.png).
"""
# ruff: noqa: E501  (long lines are embedded JavaScript and page selectors)

from __future__ import annotations

import pytest
import torch
from harness import screenshot, wait_until
from widget_helpers import settle, wait_canvas

from samplelens_widget import SampleLens
from samplelens_widget.demo import load_demo

pytestmark = pytest.mark.ui

OVERLAY = "canvas[data-role=overlay]"
PANELS = ("population", "sample-list", "viewer", "controller", "error-analysis")
#: The width classes js/layout.ts sets (its thresholds: narrow < 900 <= medium < 1200 <= wide).
EXPECTED = {720: "narrow", 800: "narrow", 900: "medium", 1000: "medium", 1280: "wide", 1600: "wide"}

MEASURE = """
() => {
  const root = document.querySelector('.sl-root');
  const box = (e) => { const r = e.getBoundingClientRect();
    return {l: r.left, t: r.top, r: r.right, b: r.bottom, w: r.width, h: r.height}; };
  const panels = {};
  const overflow = {};
  for (const role of __PANELS__) {
    const e = root.querySelector(`[data-role=${role}]`);
    panels[role] = e ? box(e) : null;
    if (e) overflow[role] = [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight, getComputedStyle(e).overflowY];
  }
  // every scrolling/clipping box inside the root: none may hide content sideways
  const clipped = [];
  for (const e of root.querySelectorAll('*')) {
    const s = getComputedStyle(e);
    if (s.display === 'none' || e.tagName === 'CANVAS' || e.tagName === 'SELECT' || e.tagName === 'INPUT') continue;
    if ((s.overflowX !== 'visible') && e.scrollWidth > e.clientWidth + 1) {
      clipped.push(`${e.className || e.tagName} ${e.scrollWidth}>${e.clientWidth}`);
    }
  }
  const selects = [...root.querySelectorAll('[data-role=controller] select')]
    .filter((e) => e.offsetParent !== null).map((e) => ({role: e.dataset.role, ...box(e)}));
  const ov = root.querySelector('canvas[data-role=overlay]');
  const lp = root.closest('.lp-widget');
  return {
    width: root.dataset.width, root: box(root), scroll: [root.scrollWidth, root.clientWidth],
    host: [lp.scrollWidth, lp.clientWidth],
    page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    panels, overflow, clipped, selects,
    overlay: ov ? {...box(ov), iw: ov.width, ih: ov.height} : null,
  };
}
""".replace("__PANELS__", str(list(PANELS)))


@pytest.fixture(scope="module")
def demo():
    model, data, names = load_demo(n_train=120, n_val=60)
    return model, data, names


def misclassified(demo):
    model, data, _ = demo
    with torch.no_grad():
        for i in range(len(data["val"])):
            x, y = data["val"][i]
            if int(model(x[None]).argmax()) != int(y):
                return i
    raise AssertionError("the demo model gets every validation sample right")


def make(demo):
    model, data, names = demo
    return SampleLens(model, data["val"], slices=data, label_names=names, projection="pca", cache_dir=None)


def mount(light_page, lens, width):
    page = light_page.page
    page.set_viewport_size({"width": max(1000, width + 60), "height": 1100})
    h = light_page(lens, style=f"width: {width}px")
    settle(lens, h)
    wait_canvas(page, OVERLAY)
    return h


def set_width(page, width):
    page.evaluate("(w) => { document.querySelector('.lp-widget').style.width = w + 'px'; }", width)
    # the ResizeObserver answers before the next paint
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def inside(inner, outer, tol=0.5):
    return (
        inner["l"] >= outer["l"] - tol
        and inner["r"] <= outer["r"] + tol
        and inner["t"] >= outer["t"] - tol
        and inner["b"] <= outer["b"] + tol
    )


def check_fits(page, width, overlay=True):
    m = page.evaluate(MEASURE)
    assert m["width"] == EXPECTED[width], (width, m["width"])
    assert abs(m["root"]["w"] - min(width, 1500)) <= 1, m["root"]  # fills its container
    assert m["scroll"][0] <= m["scroll"][1], ("root overflows sideways", width, m["scroll"])
    assert m["host"][0] <= m["host"][1], ("the output area would scroll", width, m["host"])
    assert m["page"][0] <= m["page"][1], ("the page scrolls sideways", width, m["page"])
    assert not m["clipped"], (width, m["clipped"])
    for role in PANELS:
        b = m["panels"][role]
        assert b is not None and b["w"] > 0 and b["h"] > 0, (role, b)
        assert inside(b, m["root"]), (width, role, b, m["root"])
        sw, cw, sh, ch, oy = m["overflow"][role]
        assert sw <= cw + 1, (width, role, "overflows sideways", sw, cw)
        # taller content scrolls inside the panel, never spills over a neighbour
        assert oy in ("auto", "scroll") or sh <= ch + 1, (width, role, "spills downwards", sh, ch, oy)
    ctl = m["panels"]["controller"]
    assert len(m["selects"]) >= 3, m["selects"]
    for s in m["selects"]:
        assert inside(s, ctl), (width, s, ctl)
        assert s["w"] >= 80, (width, s)  # holds a class name: not crushed
    if not overlay:
        return m
    ov = m["overlay"]
    assert ov is not None
    assert ov["w"] >= 300, (width, ov)
    # the input's aspect (the demo's inputs are square), drawn at its own pixel aspect
    assert abs(ov["w"] / ov["h"] - ov["iw"] / ov["ih"]) < 0.02, ov
    assert inside(ov, m["panels"]["viewer"]), (width, ov, m["panels"]["viewer"])
    return m


def hover_readout(page):
    """Hover the heatmap's right edge; the readout's box and the viewer's."""
    box = page.locator(OVERLAY).bounding_box()
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    wait_until(
        lambda: page.locator("[data-role=readout]").inner_text().startswith("heat"),
        page,
        5,
        "the heat readout",
    )
    r = page.evaluate(
        """() => { const b = (e) => { const r = e.getBoundingClientRect();
              return {l: r.left, t: r.top, r: r.right, b: r.bottom, w: r.width, h: r.height}; };
              const v = document.querySelector('[data-role=viewer]');
              const o = v.querySelector('[data-role=readout]');
              const range = document.createRange(); range.selectNodeContents(o);
              const t = range.getBoundingClientRect();
              return {viewer: b(v), readout: b(o), text: {l: t.left, t: t.top, r: t.right, b: t.bottom}}; }"""
    )
    page.mouse.move(0, 0)
    return r


#: how many times the scatter's canvas has been drawn
SCATTER_DRAWS = "() => Number(document.querySelector('[data-role=scatter]').dataset.draws || 0)"


def wait_scatter_drawn(page):
    wait_until(lambda: page.evaluate(SCATTER_DRAWS) > 0, page, 20, "the scatter drawn")


@pytest.mark.parametrize("width", [720, 800, 1000, 1280, 1600])
def test_fits_its_width_without_sideways_scrolling(light_page, demo, width):
    lens = make(demo)
    h = mount(light_page, lens, width)
    check_fits(h.page, width)
    r = hover_readout(h.page)
    assert inside(r["readout"], r["viewer"]), (width, r)
    assert inside(r["text"], r["viewer"]), (width, r)
    # the tallest state: a misclassified sample (three error maps) and a grid of 12 samples
    lens.selected = list(range(12))
    lens.viewed = misclassified(demo)
    lens.grid = True
    settle(lens, h)
    wait_until(lambda: h.page.locator("[data-role=error-maps] canvas").count() == 3, h.page, 20, "error maps")
    settle(lens, h)
    check_fits(h.page, width, overlay=False)


def test_layout_follows_the_widget_not_the_window(light_page, demo):
    lens = make(demo)
    h = mount(light_page, lens, 1600)
    page = h.page
    wait_scatter_drawn(page)
    check_fits(page, 1600)
    gl0 = page.evaluate("() => { const c = document.querySelector('[data-role=scatter]'); return [c.width, c.height]; }")
    draws = SCATTER_DRAWS
    for w in (800, 1000, 1280, 720, 1600, 900):  # each step changes the scatter's box
        d0 = page.evaluate(draws)
        set_width(page, w)  # the window stays as it is: only the widget's box changes
        check_fits(page, w)
        wait_until(lambda d0=d0: page.evaluate(draws) > d0, page, 5, f"a scatter redraw at {w} px")
        # the scatter's canvas follows its box (device pixels = CSS pixels x dpr; the panel
        # sizes it from the stage's border box, 2 px more than the canvas shows) and redraws
        wait_until(
            lambda: page.evaluate(
                """() => { const c = document.querySelector('[data-role=scatter]');
                     const r = c.getBoundingClientRect(); const d = window.devicePixelRatio || 1;
                     return Math.abs(c.width - r.width * d) <= 2 * d + 1
                         && Math.abs(c.height - r.height * d) <= 2 * d + 1; }"""
            ),
            page,
            5,
            f"the scatter canvas resized at {w} px",
        )
    gl1 = page.evaluate("() => { const c = document.querySelector('[data-role=scatter]'); return [c.width, c.height]; }")
    assert gl1 != gl0  # 1600 -> 900 px: the scatter's box changed, so did its canvas
    r = hover_readout(page)
    assert inside(r["readout"], r["viewer"]), r


def test_lasso_and_slider_still_work_when_narrow(light_page, demo):
    lens = make(demo)
    h = mount(light_page, lens, 760)
    page = h.page
    wait_scatter_drawn(page)
    # box-select over the middle of the scatter: the selection reaches Python
    before = list(lens.selected)
    page.click("[data-mode=box]")
    b = page.locator("[data-role=scatter-overlay]").bounding_box()
    page.mouse.move(b["x"] + b["width"] * 0.1, b["y"] + b["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] * 0.5, b["y"] + b["height"] * 0.5, steps=5)
    page.mouse.move(b["x"] + b["width"] * 0.9, b["y"] + b["height"] * 0.9, steps=5)
    page.mouse.up()
    wait_until(lambda: (h.sync() or True) and list(lens.selected) != before, page, 10, "a box selection")
    # the depth slider repaints at a narrow width too
    page.click("[data-role=depth-custom]")
    settle(lens, h)
    c0 = wait_canvas(page, OVERLAY)
    page.evaluate(
        """() => { const s = document.querySelector('[data-role=depth]'); s.value = s.min;
             s.dispatchEvent(new Event('input', {bubbles: true})); }"""
    )
    wait_canvas(page, OVERLAY, differs_from=c0["hash"])


@pytest.mark.parametrize("width", [720, 900, 1280])
def test_screenshots(light_page, demo, width):
    lens = make(demo)
    lens.selected = list(range(40))
    h = mount(light_page, lens, width)
    page = h.page
    wait_scatter_drawn(page)
    settle(lens, h)
    page.wait_for_timeout(300)
    box = page.locator("[data-role=overlay]").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.4)
    page.wait_for_timeout(100)
    path = screenshot(page.locator(".sl-root"), f"layout-{width}")
    assert path.exists()
    check_fits(page, width)
