"""Beyond JupyterLab: the quickstart in Jupyter Notebook 7 (the ``notebook`` package, on the same
server as the JupyterLab tests). The widget renders, a row click reaches the kernel and the depth
slider repaints from the maps on the page, as in JupyterLab."""

from __future__ import annotations

import importlib.util

import pytest
from harness import kernel_eval, open_notebook, run_all_cells, screenshot, wait_kernel_idle
from widget_helpers import ROOT, canvas, set_slider, wait_canvas

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(importlib.util.find_spec("notebook") is None,
                       reason="the notebook package (Notebook 7) is not installed"),
]

OVERLAY = "canvas[data-role=overlay]"
W = ".sl-root >> nth=0"


def test_quickstart_in_notebook_7(page, jupyter_server):
    open_notebook(page, jupyter_server, ROOT / "notebooks" / "quickstart.ipynb", ui="notebook")
    assert "/notebooks/" in page.url and page.locator("#main-panel, .jp-NotebookPanel").count()
    assert page.locator(".jp-LabShell").count() == 0  # Notebook 7's own shell, not Lab's
    run_all_cells(page, timeout=180)
    w = page.locator(W)
    w.scroll_into_view_if_needed()
    wait_canvas(page, OVERLAY, timeout=60)
    for role in ("population", "sample-list", "viewer", "controller", "error-analysis"):
        assert w.locator(f"[data-role={role}]").is_visible(), role

    # a row click reaches the kernel and shows that sample
    before = canvas(page)["hash"]
    w.locator("[data-role=rows] .sl-row[data-id='12']").click()
    wait_canvas(page, OVERLAY, differs_from=before, timeout=30)
    assert kernel_eval(page, "lens.viewed") == "12"

    # the depth slider: each depth repaints the overlay, the kernel's trait follows
    w.locator("[data-role=depth-custom]").click()
    hashes = set()
    for depth in (4, 9, 14):
        set_slider(page, "[data-role=depth]", depth)
        page.wait_for_function(
            "(d) => document.querySelector('canvas[data-role=overlay]').dataset.depth"
            " === String(d)",
            arg=depth,
        )
        hashes.add(canvas(page)["hash"])
    assert len(hashes) == 3
    wait_kernel_idle(page, timeout=40)
    page.wait_for_timeout(300)
    assert kernel_eval(page, "lens.depth") == "14"  # the last drag reached Python
    screenshot(w, "notebook7-widget")
