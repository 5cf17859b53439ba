"""A kernel restart with the widget on the page (real JupyterLab): the page keeps what it showed,
says in words that the kernel is gone, stays usable, and the re-run cell brings a working
widget back."""

from __future__ import annotations

import pytest
from harness import open_notebook, run_all_cells, wait_kernel_idle, write_notebook
from widget_helpers import canvas, wait_canvas

pytestmark = pytest.mark.ui

CELL = """\
from samplelens_widget import SampleLens
from samplelens_widget.demo import load_demo
model, data, names = load_demo()
lens = SampleLens(model, data["val"], label_names=names, cache_dir=None)
lens"""
OVERLAY = "canvas[data-role=overlay]"


def test_a_kernel_restart_leaves_a_clear_message_and_a_re_run_brings_the_widget_back(
    page, jupyter_server, tmp_path
):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_notebook(page, jupyter_server, write_notebook(tmp_path / "restart.ipynb", [CELL]))
    run_all_cells(page, timeout=120)
    wait_canvas(page, OVERLAY, timeout=60)
    wait_kernel_idle(page, timeout=60)
    assert page.locator("[data-role=disconnected]").count() == 0
    shown = canvas(page)["hash"]

    page.evaluate("() => window.__harnessPanel.sessionContext.session.kernel.restart()")
    notice = page.locator("[data-role=disconnected]")
    notice.wait_for(timeout=30_000)
    assert "restarted or shut down" in notice.inner_text()
    assert "run the cell again" in notice.inner_text()
    assert page.inner_text("[data-role=status]") == "no kernel"
    assert canvas(page)["hash"] == shown  # what it showed stays
    # still a page, not a crash: the controls respond without a kernel
    page.locator(".sl-row[data-id='3']").click()
    page.select_option("[data-role=colormap]", "gray")
    page.wait_for_timeout(300)
    assert page.locator(".sl-root").count() == 1 and errors == []

    wait_kernel_idle(page, timeout=60)
    run_all_cells(page, timeout=120)  # the re-run: a new widget replaces the dead one
    page.wait_for_function(
        "() => document.querySelectorAll('.sl-root').length === 1"
        " && !document.querySelector('[data-role=disconnected]')"
        " && document.querySelector('canvas[data-role=overlay][data-draws]')",
        timeout=60_000,
    )
    assert page.inner_text("[data-role=status]") in ("ready", "kernel working…")
    assert errors == []
