"""End to end in real JupyterLab: notebooks/quickstart.ipynb with the demo model.

The notebook shows two widgets: the main one (population first) and, at its end, one with user
visualizers. ``W`` scopes locators to the first, ``V`` to the second. The kernel runs with
``SAMPLELENS_PROJECTION=pca`` (tests/ui/conftest.py): no UMAP in browser tests."""

from __future__ import annotations

import shutil

import pytest
from harness import (
    _panel_state,
    kernel_eval,
    kernel_exec,
    open_notebook,
    run_all_cells,
    screenshot,
    wait_kernel_idle,
)
from widget_helpers import ROOT, canvas, set_slider, wait_canvas

pytestmark = pytest.mark.ui

QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"
OVERLAY = "canvas[data-role=overlay]"
W = ".sl-root >> nth=0"
V = ".sl-root >> nth=1"
SC = "document.querySelector('.sl-root').__samplelens.debug()"  # js/debug.ts: the scatter probe


def run_quickstart(page, jupyter_server):
    open_notebook(page, jupyter_server, QUICKSTART)
    run_all_cells(page, timeout=180)
    page.locator(W).scroll_into_view_if_needed()
    return wait_canvas(page, OVERLAY, timeout=60)


def kernel_value(page, expr):
    return kernel_eval(page, expr)


def test_quickstart_end_to_end(page, jupyter_server):
    run_quickstart(page, jupyter_server)
    w = page.locator(W)
    for role in ("population", "sample-list", "viewer", "controller", "error-analysis"):
        assert w.locator(f"[data-role={role}]").is_visible(), role
    # the notebook's last cells set the state from Python; the page follows
    ids = w.locator("[data-role=rows] .sl-row").evaluate_all("rs => rs.map(r => +r.dataset.id)")
    assert ids == [3, 7, 12, 21]
    assert w.locator("[data-role=algorithm]").input_value() == "layercam"
    assert (tmp := kernel_value(page, "lens.viewed")) == "7", tmp
    # the quickstart opened the Trust view (lens.side_panel = "trust"): sample 7's curve fills
    # in over every depth, the baselines with it, through the real kernel
    assert kernel_value(page, "lens.side_panel") == "'trust'"
    assert w.locator("[data-role=trust]").is_visible()
    page.wait_for_function(
        "() => { const c = document.querySelector('.sl-root [data-role=trust-chart]');"
        " return !!c && +c.dataset.points === +c.dataset.depths && +c.dataset.depths > 0"
        " && !!c.querySelector('[data-role=trust-band-random]'); }",
        timeout=90_000,
    )
    assert "best: depth" in w.locator("[data-role=trust-status]").inner_text()
    screenshot(w, "trust-jupyterlab")
    w.locator("[data-role=side-tab-errors]").click()
    page.wait_for_function(
        "() => document.querySelector('.sl-root').__samplelens.get('side_panel') === 'errors'"
    )

    # the population: every sample a dot; clicking one puts it in the list and shows its overlay
    page.wait_for_function(
        f"() => {{ const s = {SC}; return s && s.pos.length === 2000 && s.snapshot().draws > 0; }}",
        timeout=90_000,
    )
    w.locator("[data-role=population]").scroll_into_view_if_needed()
    target, x, y = page.evaluate(
        f"""() => {{
          const s = {SC};
          const sel = new Set(document.querySelector('.sl-root').__samplelens.get('selected'));
          for (let i = 0; i < s.pos.length / 2; i++) {{
            const p = s.screenOf(i);
            if (sel.has(i) || s.hitAt(p.x, p.y) !== i) continue;
            let lonely = true;  // no other dot within 10 px
            for (const dx of [-10, 10]) for (const dy of [-10, 10])
              if (s.hitAt(p.x + dx, p.y + dy) !== -1) lonely = false;
            if (lonely) return [i, p.x, p.y];
          }}
          return [-1, 0, 0];
        }}"""
    )
    assert target >= 0, "no isolated dot on the scatter"
    before = canvas(page)["hash"]
    page.mouse.click(x, y)
    w.locator(f"[data-role=rows] .sl-row[data-id='{target}']").wait_for(timeout=30000)
    wait_canvas(page, OVERLAY, differs_from=before, timeout=30)
    assert kernel_value(page, "lens.viewed") == str(target)
    assert kernel_value(page, "lens.selected") == str([3, 7, 12, 21, target])
    page.wait_for_function(
        "(t) => document.querySelector('[data-role=error-analysis]').innerText.includes('#' + t)",
        arg=target,
    )

    # a lasso (added to the selection: shift) reaches the kernel as one binary buffer
    lassoed = page.evaluate(
        f"""(t) => {{
          const s = {SC}, p = s.screenOf(t), poly = [];
          for (let k = 0, a = 0; k < 24; k++, a = k * Math.PI / 12)
            poly.push([p.x + 40 * Math.cos(a), p.y + 40 * Math.sin(a)]);
          return s.lassoClient(poly, 'add');
        }}""",
        target,
    )
    assert target in lassoed
    want = [3, 7, 12, 21, target] + [i for i in lassoed if i not in (3, 7, 12, 21, target)]
    page.wait_for_function(
        "(n) => document.querySelector('.sl-root').__samplelens.get('selected').length === n",
        arg=len(want),
    )
    assert kernel_value(page, f"lens.selected == {want!r}") == "True"

    # selecting a sample shows its overlay
    before = canvas(page)["hash"]
    w.locator("[data-role=rows] .sl-row[data-id='12']").click()
    wait_canvas(page, OVERLAY, differs_from=before, timeout=30)
    assert kernel_value(page, "lens.viewed") == "12"
    page.wait_for_function(
        "() => document.querySelector('[data-role=error-analysis]').innerText.includes('#12')"
    )

    # changing the label changes the heatmap
    w.locator("[data-role=depth-custom]").click()
    set_slider(page, "[data-role=depth]", 12)
    page.wait_for_timeout(300)
    before = canvas(page)["hash"]
    pred = int(kernel_value(page, "int(lens.result.predictions[0])"))
    other = (pred + 3) % 6
    w.locator("[data-role=label]").select_option(str(other))
    wait_canvas(page, OVERLAY, differs_from=before, timeout=30)
    assert kernel_value(page, "lens.label") == str(other)
    assert kernel_value(page, "int(lens.result.targets[0])") == str(other)

    # a bad sample id shows an error in the widget; the widget still works
    w.locator("[data-role=add-id]").fill("99999")
    w.locator("[data-role=add]").click()
    banner = w.locator("[data-role=errors] .sl-banner")
    banner.wait_for(timeout=30000)
    assert "sample id 99999 is out of range 0..999 for slice 'val'" in banner.inner_text()
    before = canvas(page)["hash"]
    w.locator("[data-role=rows] .sl-row[data-id='21']").click()
    wait_canvas(page, OVERLAY, differs_from=before, timeout=30)
    assert kernel_value(page, "lens.viewed") == "21"
    banner.wait_for(state="detached", timeout=30000)  # the next success clears it

    # user visualizer tabs (the notebook's second widget): text and a plotly figure
    v = page.locator(V)
    v.scroll_into_view_if_needed()
    v.locator(".sl-tab[data-tab=Stats]").click()
    v.locator("[data-role=visual] pre").wait_for(timeout=30000)
    assert v.locator("[data-role=visual] pre").inner_text().startswith("sample 12 (data)")
    v.locator(".sl-tab[data-tab=Histogram]").click()
    v.locator("[data-role=plotly] .main-svg").first.wait_for(timeout=60000)

    # a screenshot for the README: a sample and its most similar ones selected
    w.scroll_into_view_if_needed()
    kernel_exec(page, "lens.selected = [i for i, _ in lens.similar([21], k=24)] + [21]")
    kernel_exec(page, "lens.viewed = 21; lens.label = None; lens.depth = None")
    page.wait_for_function(
        "() => document.querySelectorAll('.sl-root [data-role=rows] img.sl-thumb').length >= 25",
        timeout=60000,
    )
    page.wait_for_timeout(600)
    wait_kernel_idle(page)
    path = screenshot(w, "widget-jupyterlab")
    (ROOT / "docs").mkdir(exist_ok=True)
    shutil.copy(path, ROOT / "docs" / "screenshot.png")

    # the widget follows JupyterLab's theme (its --jp-* variables)
    page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', "
        "{theme: 'JupyterLab Dark'})"
    )
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
    page.wait_for_timeout(500)
    bg, want = page.evaluate(
        """() => [getComputedStyle(document.querySelector('.sl-root')).backgroundColor,
                  (() => { const d = document.createElement('div');
                           d.style.background = 'var(--jp-layout-color1)';
                           document.body.append(d);
                           const c = getComputedStyle(d).backgroundColor;
                           d.remove(); return c; })()]"""
    )
    assert bg == want
    screenshot(w, "widget-jupyterlab-dark")


def test_depth_drag_is_instant_while_the_kernel_is_busy(page, jupyter_server):
    run_quickstart(page, jupyter_server)
    page.locator(W).locator("[data-role=depth-custom]").click()
    page.wait_for_timeout(300)
    wait_kernel_idle(page)
    deepest = int(kernel_value(page, "lens.result.depths[-1]"))
    assert kernel_value(page, "lens.depth") == str(deepest)

    kernel_exec(page, "import time; time.sleep(10)", wait=False)
    page.wait_for_function(
        "() => window.__harnessPanel.sessionContext.session.kernel.status === 'busy'"
    )
    assert _panel_state(page)["pending"] == 1
    seen = set()
    for depth in (3, 9, 15):
        before = canvas(page)
        set_slider(page, "[data-role=depth]", depth)
        after = canvas(page)  # read right away: no kernel round trip is possible
        assert after["depth"] == str(depth)
        assert after["draws"] > before["draws"] and after["hash"] != before["hash"]
        seen.add(after["hash"])
    # the arrow keys move the slider inside JupyterLab too (its shortcuts don't take them)
    page.locator(W).locator("[data-role=depth]").focus()
    page.keyboard.press("ArrowLeft")
    assert canvas(page)["depth"] == "14"
    # still sleeping: the execute request has no reply yet. (The kernel's status may read
    # 'idle' meanwhile: the widget's comm messages get their own busy/idle status.)
    assert _panel_state(page)["pending"] == 1
    assert len(seen) == 3
    wait_kernel_idle(page, timeout=40)
    page.wait_for_timeout(300)
    assert kernel_value(page, "lens.depth") == "14"
