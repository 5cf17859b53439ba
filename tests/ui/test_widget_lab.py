"""End to end in real JupyterLab: notebooks/quickstart.ipynb with the demo model."""

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


def run_quickstart(page, jupyter_server):
    open_notebook(page, jupyter_server, QUICKSTART)
    run_all_cells(page, timeout=180)
    page.locator(".sl-root").scroll_into_view_if_needed()
    return wait_canvas(page, OVERLAY, timeout=60)


def kernel_value(page, expr):
    return kernel_eval(page, expr)


def test_quickstart_end_to_end(page, jupyter_server):
    run_quickstart(page, jupyter_server)
    for role in ("sample-list", "viewer", "controller", "error-analysis"):
        assert page.locator(f"[data-role={role}]").is_visible(), role
    # the notebook's last cells set the state from Python; the page follows
    ids = page.locator("[data-role=rows] .sl-row").evaluate_all("rs => rs.map(r => +r.dataset.id)")
    assert ids == [3, 7, 12, 21]
    assert page.input_value("[data-role=algorithm]") == "layercam"
    assert (tmp := kernel_value(page, "lens.viewed")) == "7", tmp

    # selecting a sample shows its overlay
    before = canvas(page)["hash"]
    page.click("[data-role=rows] .sl-row[data-id='12']")
    wait_canvas(page, OVERLAY, differs_from=before, timeout=30)
    assert kernel_value(page, "lens.viewed") == "12"
    page.wait_for_function(
        "() => document.querySelector('[data-role=error-analysis]').innerText.includes('#12')"
    )

    # changing the label changes the heatmap
    page.click("[data-role=depth-custom]")
    set_slider(page, "[data-role=depth]", 12)
    page.wait_for_timeout(300)
    before = canvas(page)["hash"]
    pred = int(kernel_value(page, "int(lens.result.predictions[0])"))
    other = (pred + 3) % 6
    page.select_option("[data-role=label]", str(other))
    wait_canvas(page, OVERLAY, differs_from=before, timeout=30)
    assert kernel_value(page, "lens.label") == str(other)
    assert kernel_value(page, "int(lens.result.targets[0])") == str(other)

    # user visualizer tabs: text and a plotly figure
    page.click(".sl-tab[data-tab=Stats]")
    page.wait_for_selector("[data-role=visual] pre", timeout=30000)
    assert page.inner_text("[data-role=visual] pre").startswith("sample 12 (val)")
    page.click(".sl-tab[data-tab=Histogram]")
    page.wait_for_selector("[data-role=plotly] .main-svg", timeout=60000)
    page.click(".sl-tab[data-tab=CAM]")
    wait_canvas(page, OVERLAY)

    # a bad sample id shows an error in the widget; the widget still works
    page.fill("[data-role=add-id]", "99999")
    page.click("[data-role=add]")
    banner = page.locator("[data-role=errors] .sl-banner")
    banner.wait_for(timeout=30000)
    assert "sample id 99999 is out of range 0..999 for slice 'val'" in banner.inner_text()
    before = canvas(page)["hash"]
    page.click("[data-role=rows] .sl-row[data-id='21']")
    wait_canvas(page, OVERLAY, differs_from=before, timeout=30)
    assert kernel_value(page, "lens.viewed") == "21"
    page.click("[data-role=errors] .sl-x")
    assert banner.count() == 0

    # a screenshot for the README
    page.click("[data-role=select-all]")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-role=rows] img.sl-thumb').length === 200",
        timeout=60000,
    )
    assert "1–200 of 1000" in page.inner_text(".sl-pager")
    page.select_option("[data-role=label]", "")
    page.click("[data-role=depth-last]")
    page.wait_for_timeout(600)
    wait_kernel_idle(page)
    path = screenshot(page.locator(".sl-root"), "widget-jupyterlab")
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
    screenshot(page.locator(".sl-root"), "widget-jupyterlab-dark")


def test_depth_drag_is_instant_while_the_kernel_is_busy(page, jupyter_server):
    run_quickstart(page, jupyter_server)
    page.click("[data-role=depth-custom]")
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
    page.focus("[data-role=depth]")
    page.keyboard.press("ArrowLeft")
    assert canvas(page)["depth"] == "14"
    # still sleeping: the execute request has no reply yet. (The kernel's status may read
    # 'idle' meanwhile: the widget's comm messages get their own busy/idle status.)
    assert _panel_state(page)["pending"] == 1
    assert len(seen) == 3
    wait_kernel_idle(page, timeout=40)
    page.wait_for_timeout(300)
    assert kernel_value(page, "lens.depth") == "14"
