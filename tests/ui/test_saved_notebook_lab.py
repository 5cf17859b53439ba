"""A saved notebook still shows something (issue 12): the picture of the last view and the line how
to bring the widget back where the widget cannot run (nbconvert's HTML, JupyterLab reopened with
a new kernel), the live widget alone where it runs (``samplelens_widget/snapshot.py``)."""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from harness import (
    kernel_eval,
    kernel_exec,
    open_notebook,
    record_timing,
    run_all_cells,
    screenshot,
    shutdown_kernel,
    wait_kernel_idle,
    write_notebook,
)
from PIL import Image
from widget_helpers import wait_canvas

from samplelens_widget.snapshot import MARK, RUN_LINE, WIDGET_MIME, WIDGET_TEXT, scale_of

pytestmark = pytest.mark.ui

CELL = """\
from samplelens_widget import SampleLens
from samplelens_widget.demo import load_demo
model, data, names = load_demo()
lens = SampleLens(model, data["val"], label_names=names, projection="pca", cache_dir=None)
lens"""
#: the view changed from Python after the cell ran: the saved picture must be this one
LAST_VIEW = "lens.viewed = 7; lens.label = 2; lens.depth = 5"
OVERLAY_HASH = "__import__('hashlib').sha256(lens.overlay().tobytes()).hexdigest()"

JS_OUTPUTS = """() => window.__harnessPanel.content.widgets[0].model.outputs.toJSON()"""
JS_VISIBLE_TEXT = """() => window.__harnessPanel.content.widgets[0].node.innerText"""
JS_SAVE = """async () => {
  await window.jupyterapp.commands.execute('docmanager:save');
  return window.__harnessPanel.context.model.dirty;
}"""


def _snapshot_outputs(outputs: list[dict]) -> list[dict]:
    return [o for o in outputs if "image/png" in o.get("data", {})]


def _overlay_hash_of(png_b64: str, shape: tuple[int, int]) -> str:
    """The overlay inside a snapshot's PNG, back at the overlay's size, hashed like the kernel."""
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("RGB"))
    up, down = scale_of(shape)
    assert down == 1, "the demo's 64x64 images are enlarged, never reduced"
    h, w = shape
    overlay = np.ascontiguousarray(img[: h * up : up, : w * up : up])
    return hashlib.sha256(overlay.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def saved(browser, jupyter_server, tmp_path_factory):
    """Run the notebook, change the view from Python, save from the page, shut the kernel down.

    Returns the saved file, its JSON and what the kernel said of the last view."""
    tmp = tmp_path_factory.mktemp("saved")
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        rel = open_notebook(page, jupyter_server, write_notebook(tmp / "saved.ipynb", [CELL]))
        run_all_cells(page, timeout=180)
        wait_canvas(page, timeout=90)
        wait_kernel_idle(page, timeout=90)
        # live: the widget shows, its snapshot (published before it) does not
        first = _snapshot_outputs(page.evaluate(JS_OUTPUTS))
        assert len(first) == 1, page.evaluate(JS_OUTPUTS)
        assert "sample 0" in first[0]["data"]["text/plain"]
        assert page.locator(".sl-root").is_visible()
        assert not page.locator(f"[{MARK}]").is_visible()
        assert RUN_LINE not in page.evaluate(JS_VISIBLE_TEXT)
        screenshot(page, "saved-notebook-live")

        kernel_exec(page, LAST_VIEW + "\nfrom samplelens_widget import snapshot as _s")
        caption = ast.literal_eval(kernel_eval(page, "_s.caption(lens)"))
        assert "sample 7" in caption and "depth 5" in caption, caption
        overlay_hash = ast.literal_eval(kernel_eval(page, OVERLAY_HASH))
        shape = tuple(ast.literal_eval(kernel_eval(page, "lens.overlay().shape[:2]")))
        t0 = time.perf_counter()  # the analysis is done: from here, the update itself
        # update_display reaches the page's output model (the snapshot follows the view)
        deadline = time.monotonic() + 60
        while True:
            snaps = _snapshot_outputs(page.evaluate(JS_OUTPUTS))
            if snaps and caption in snaps[0]["data"]["text/plain"]:
                record_timing("snapshot follows", time.perf_counter() - t0)
                break
            assert time.monotonic() < deadline, f"the snapshot never followed the view: {snaps}"
            page.wait_for_timeout(100)
        wait_kernel_idle(page, timeout=60)
        assert page.evaluate(JS_SAVE) is False  # saved: not dirty
        path = jupyter_server.root / rel
        nb = nbformat.read(str(path), as_version=4)  # its strings joined (saved as lines)
        assert errors == [], errors
        shutdown_kernel(page, timeout=30)
        yield {"path": path, "nb": nb, "caption": caption, "overlay_hash": overlay_hash,
               "shape": shape}
    finally:
        context.close()


def test_the_saved_file_holds_the_picture_of_the_last_view_before_the_widget(saved):
    outputs = saved["nb"]["cells"][0]["outputs"]
    kinds = [sorted(o.get("data", {})) for o in outputs]
    assert len(outputs) == 2, kinds
    snap, widget = outputs
    assert snap["output_type"] == "display_data"
    assert {"text/html", "image/png", "text/plain"} <= set(snap["data"])
    assert saved["caption"] in snap["data"]["text/plain"]
    assert _overlay_hash_of(snap["data"]["image/png"], saved["shape"]) == saved["overlay_hash"]
    png = base64.b64decode(snap["data"]["image/png"])
    assert len(png) < 60_000, len(png)
    assert Image.open(io.BytesIO(png)).text["Description"] == saved["caption"]
    assert WIDGET_MIME in widget["data"] and widget["data"]["text/plain"] == WIDGET_TEXT


def test_nbconvert_html_shows_the_last_view_and_how_to_bring_the_widget_back(saved, page, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", str(saved["path"]),
         "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    html_path = tmp_path / (Path(saved["path"]).stem + ".html")
    html = html_path.read_text()
    assert "SampleLens object at 0x" not in html
    # no network here: the template's CDN scripts are refused at once
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
               else r.abort())
    page.goto(html_path.as_uri(), wait_until="load")
    img = page.locator(f"[{MARK}] img")
    img.wait_for(timeout=30_000)
    assert img.is_visible()
    assert "sample 7" in img.get_attribute("alt")
    src = img.get_attribute("src")
    png_b64 = src.split(",", 1)[1]
    assert _overlay_hash_of(png_b64, saved["shape"]) == saved["overlay_hash"]
    text = page.inner_text("body")
    assert text.count(RUN_LINE) == 1, text
    assert WIDGET_TEXT not in text  # the widget's own text line is hidden
    assert "Error displaying widget" not in text
    screenshot(page, "saved-notebook-nbconvert")


def test_reopened_in_lab_the_picture_shows_and_a_run_brings_the_live_widget_back(
    saved, page, jupyter_server
):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_notebook(page, jupyter_server, saved["path"], timeout=90)  # a new kernel, cells not run
    # the widget manager restores (nothing in the new kernel), then the renderer gives up
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-OutputArea-output')].some("
        "n => n.textContent.includes('Error displaying widget'))",
        timeout=60_000,
    )
    page.wait_for_timeout(300)
    text = page.evaluate(JS_VISIBLE_TEXT)
    assert "Error displaying widget" not in text, text
    assert RUN_LINE in text, text
    img = page.locator(f"[{MARK}] img")
    assert img.is_visible()
    assert "sample 7" in img.get_attribute("alt")
    assert img.evaluate("i => i.complete && i.naturalWidth > 0")
    screenshot(page, "saved-notebook-reopened-lab")

    run_all_cells(page, timeout=180)
    wait_canvas(page, timeout=90)
    wait_kernel_idle(page, timeout=90)
    assert page.locator(".sl-root").count() == 1 and page.locator(".sl-root").is_visible()
    assert page.locator(f"[{MARK}]").count() == 1  # the new run's snapshot, hidden
    assert not page.locator(f"[{MARK}]").is_visible()
    text = page.evaluate(JS_VISIBLE_TEXT)
    assert RUN_LINE not in text and "Error displaying widget" not in text
    screenshot(page, "saved-notebook-rerun-lab")
    assert errors == [], errors
