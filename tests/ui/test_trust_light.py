"""The Trust tab (light page, the demo model, real Chromium): the curve fills in for every depth
with the engine's numbers, the depth shown is marked, a click on a point moves the depth slider
there, *Sanity check* shows its progress and then the engine's rho per stage; the layout keeps
to its width with the Trust view open. Screenshots: tests/ui/artifacts/trust-1000.png (the
whole widget, medium width), trust-panel-1000.png, trust-panel-sanity-1000.png (scrolled to
the sanity check), trust-panel-720.png and trust-panel-1280.png (another sample, narrow and
wide)."""
# ruff: noqa: E501  (long lines are embedded JavaScript and page selectors)

from __future__ import annotations

import pytest
from harness import screenshot, wait_until
from test_layout_light import check_fits, set_width
from widget_helpers import settle, wait_canvas

from samplelens_widget import SampleLens
from samplelens_widget.demo import load_demo

pytestmark = pytest.mark.ui

OVERLAY = "canvas[data-role=overlay]"
CHART = "[data-role=trust-chart]"
SID = 5

# every sanity_progress element the page ever showed (they are replaced as stages come in)
WATCH_PROGRESS = """() => { window.__progress = [];
  const root = document.querySelector('[data-role=sanity]');
  new MutationObserver((records) => { for (const r of records) for (const n of r.addedNodes) {
    if (n.nodeType === 1 && n.dataset.role === 'sanity-progress') window.__progress.push(
      [Number(n.dataset.done), Number(n.dataset.total), n.textContent.trim()]); } })
    .observe(root, {childList: true, subtree: true}); }"""


@pytest.fixture(scope="module")
def demo():
    model, data, names = load_demo(n_train=60, n_val=40)
    return model, data, names


def points(page):
    return page.evaluate(
        """(sel) => [...document.querySelectorAll(sel + ' [data-role=trust-point]')].map(
             (c) => [Number(c.dataset.depth), Number(c.dataset.score)])""",
        CHART,
    )


def chart(page):
    return page.evaluate(
        """(sel) => { const s = document.querySelector(sel); if (!s) return null;
             const m = s.querySelector('[data-role=trust-current]');
             return {points: Number(s.dataset.points), depths: Number(s.dataset.depths),
                     current: m && m.dataset.depth ? Number(m.dataset.depth) : null,
                     text: s.textContent, random: !!s.querySelector('[data-role=trust-band-random]'),
                     edges: !!s.querySelector('[data-role=trust-band-edges]')}; }""",
        CHART,
    )


def kinds(h):
    return [c.get("type") for c, _ in h.sent_to_page]


def test_the_trust_view_fills_in_marks_the_depth_and_moves_the_slider(light_page, demo):
    model, data, names = demo
    lens = SampleLens(model, data["val"], label_names=names, projection="pca", cache_dir=None)
    lens.selected = list(range(8))
    lens.viewed = SID
    page = light_page.page
    page.set_viewport_size({"width": 1400, "height": 1100})
    h = light_page(lens, style="width: 1000px")
    settle(lens, h)
    wait_canvas(page, OVERLAY)
    # hidden: nothing computed
    assert "trust" not in kinds(h)
    assert page.locator("[data-role=trust]").is_hidden()

    page.click("[data-role=side-tab-trust]")
    depths = [int(d) for d in lens.result.depths]

    def filled():
        settle(lens, h, rounds=1)
        c = chart(page)
        return c is not None and c["points"] == len(depths) and c["random"] and c["edges"]

    wait_until(filled, page, 60, "every depth's point and both baselines")
    settle(lens, h)
    c = chart(page)
    assert c["depths"] == len(depths)
    assert c["current"] == depths[-1]  # depth None: the deepest is shown
    assert "insertion − deletion" in c["text"] and "depth" in c["text"]
    legend = page.locator("[data-role=trust] .sl-trust-legend").inner_text()
    assert "random" in legend and "edges" in legend
    # the kernel sent the depths nearest the one shown first
    first = next(m for m, _ in h.sent_to_page if m.get("type") == "trust")
    assert first["depths"][0] == depths[-1]
    # the numbers on the page: the engine's (lens.faithfulness is CamEngine.faithfulness)
    want = lens.faithfulness()
    got = dict(points(page))
    assert sorted(got) == want.depths
    for d, s in zip(want.depths, want.score, strict=True):
        assert got[d] == pytest.approx(float(s), abs=1e-5)
    status = page.locator("[data-role=trust-status]").inner_text()
    assert "best: depth" in status and "computing" not in status

    screenshot(page.locator(".sl-root"), "trust-1000")
    screenshot(page.locator("[data-role=error-analysis]"), "trust-panel-1000")

    # a click on a point: the depth slider and the trait move there, the mark follows
    target = depths[len(depths) // 3]
    page.click(f"{CHART} [data-role=trust-point][data-depth='{target}']", force=True)
    settle(lens, h)
    assert lens.depth == target
    assert page.input_value("[data-role=depth]") == str(target)
    assert page.is_checked("[data-role=depth-custom]")
    assert chart(page)["current"] == target
    # the slider moves the mark too (page-side, no kernel round trip)
    other = depths[2]
    page.evaluate(
        """(v) => { const s = document.querySelector('[data-role=depth]'); s.value = String(v);
             s.dispatchEvent(new Event('input', {bubbles: true})); }""",
        other,
    )
    assert chart(page)["current"] == other
    settle(lens, h)
    assert lens.depth == other

    # Sanity check: progress, then rho per stage (the engine's, at the depth shown)
    page.evaluate(WATCH_PROGRESS)
    page.click("[data-role=sanity-run]")

    def done():
        settle(lens, h, rounds=1)
        return page.locator("[data-role=sanity-row]").count() > 0

    wait_until(done, page, 60, "the sanity check's rows")
    want_rhos = lens.sanity_check()  # at the trait depth, as the page asked
    rows = page.evaluate(
        """() => [...document.querySelectorAll('[data-role=sanity-row]')].map((r) =>
             [r.dataset.stage, Number(r.dataset.rho), r.querySelector('.sl-bar-name').textContent,
              r.querySelector('.sl-bar-name').title])"""
    )
    assert [r[0] for r in rows] == [s for s, _ in want_rhos]
    for (_, rho, short, title), (name, want_rho) in zip(rows, want_rhos, strict=True):
        assert rho == pytest.approx(want_rho, abs=1e-6)
        assert title == name and len(short) <= 13 and (short == name or "…" in short)
    progress = page.evaluate("() => window.__progress")
    n = len(want_rhos)
    assert progress, "no progress was shown"
    shown = [(d, t) for d, t, _ in progress if t]
    assert shown and all(t == n for _, t in shown) and all("of" in text for _, t, text in progress if t)
    assert [m for m in kinds(h) if m == "sanity_progress"]
    assert f"depth {other}" in page.locator("[data-role=trust]").inner_text()
    page.locator("[data-role=sanity]").scroll_into_view_if_needed()
    screenshot(page.locator("[data-role=error-analysis]"), "trust-panel-sanity-1000")

    # another sample: its own curve (the old one stopped or done), errors none
    lens.viewed = 2
    settle(lens, h)
    wait_until(filled, page, 60, "the new sample's points")
    assert not [m for m in kinds(h) if m == "trust_error"]

    # the layout keeps to its width with the Trust view open
    for w in (720, 1000, 1280):
        set_width(page, w)
        settle(lens, h, rounds=1)
        check_fits(page, w, overlay=False)
        screenshot(page.locator("[data-role=error-analysis]"), f"trust-panel-{w}")
    # back to the error analysis: the curve's computation is not asked for any more
    page.click("[data-role=side-tab-errors]")
    settle(lens, h)
    assert page.locator("[data-role=trust]").is_hidden()
    assert page.locator("[data-role=error-analysis] .sl-errors-body").is_visible()
    # the tab is the side_panel trait: Python sees the page's choice
    assert lens.side_panel == "errors"


def test_side_panel_opens_the_trust_view_from_python(light_page, demo):
    model, data, names = demo
    lens = SampleLens(model, data["val"], label_names=names, projection="pca", cache_dir=None)
    lens.selected = [0, 1]
    with pytest.raises(Exception, match="side_panel") as err:
        lens.side_panel = "trusted"
    assert "errors" in str(err.value) and "trust" in str(err.value)
    h = light_page(lens)
    settle(lens, h)
    page = light_page.page
    assert page.locator("[data-role=trust]").is_hidden()
    lens.side_panel = "trust"  # as the quickstart does
    settle(lens, h)
    assert page.locator("[data-role=trust]").is_visible()
    wait_until(lambda: (settle(lens, h, rounds=1) or True) and (chart(page) or {}).get("points")
               == len(lens.result.depths), page, 60, "the curve opened from Python")
    page.click("[data-role=side-tab-errors]")
    settle(lens, h)
    assert lens.side_panel == "errors"
