"""Where one click's time goes, in real JupyterLab: timestamps on the page and in the kernel on
one clock (epoch ms), for clicks on list rows once the first minute's passes and UMAP are done.

    python benchmarks/probe_lab_click.py [--clicks 10]

Same set-up as bench_lab.py's first minute (demo, 1000 samples, UMAP, empty caches). Per click,
ms after the click: the ``analyze`` request leaves the page (``sent``), reaches the widget's comm
in the kernel (``k_in``), its reply is sent (``k_out``), reaches the widget on the page (``got``),
and the overlay is on screen (``drawn``, the next frame after its canvas was drawn). Prints each
click and the medians. The kernel's side is patched in the kernel only (``lens.send``, the comm
callback); the page's on the page (``model.send``, ``app.onMessage``).
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "ui"), str(ROOT / "benchmarks")]

import harness  # noqa: E402
from bench_lab import CELLS, JS_RUN_TO_OVERLAY, JS_SCATTER_DRAWN, WIDGET_CELL  # noqa: E402
from bench_widget import JS_CLICK_TO_DRAW  # noqa: E402

PAGE_PROBE = """() => {
  const app = document.querySelector('.sl-root').__samplelens; window.__t = [];
  const now = () => performance.timeOrigin + performance.now();
  const send = app.model.send.bind(app.model);
  app.model.send = (c, cb, b) => { if (c && c.type === 'analyze') window.__t.push(['sent', now()]);
    return send(c, cb, b); };
  const on = app.onMessage.bind(app);
  app.onMessage = (c, b) => { if (c && c.type === 'analysis') window.__t.push(['got', now()]);
    on(c, b); };
}"""

KERNEL_PROBE = """
import time as _t
_k = []
_on, _send = lens._on_msg, lens.send
def _on2(w, c, b, _on=_on):
    if isinstance(c, dict) and c.get('type') == 'analyze': _k.append(('k_in', _t.time() * 1000))
    return _on(w, c, b)
def _send2(c, buffers=None, _send=_send):
    if isinstance(c, dict) and c.get('type') == 'analysis': _k.append(('k_out', _t.time() * 1000))
    return _send(c, buffers=buffers)
lens.on_msg(_on, remove=True); lens.on_msg(_on2); lens.send = _send2
"""

PHASES = ("sent", "k_in", "k_out", "got", "drawn")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clicks", type=int, default=10)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    server = harness.start_jupyter_server(Path(tempfile.mkdtemp(prefix="probe-lab-")))
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=harness.CHROMIUM_PATH, headless=True,
                                 args=harness.CHROMIUM_ARGS)
    rows = []
    try:
        page = browser.new_context(viewport=harness.VIEWPORT).new_page()
        nb = harness.write_notebook(Path(tempfile.mkdtemp()) / "probe.ipynb", [WIDGET_CELL])
        harness.open_notebook(page, server, nb)
        cache = tempfile.mkdtemp(prefix="probe-lab-cache-")
        harness.kernel_exec(page, f"CACHE = {cache!r}\n" + CELLS[0].split("\nwith")[0])
        page.evaluate(JS_RUN_TO_OVERLAY)
        page.wait_for_function(JS_SCATTER_DRAWN, arg=1000, timeout=300_000)
        harness.wait_kernel_idle(page, timeout=300)
        page.wait_for_function(
            "() => !/computing|projecting|UMAP…/i.test(document.querySelector("
            "'[data-role=population]').innerText)", timeout=300_000)
        harness.kernel_exec(page, KERNEL_PROBE)
        page.evaluate(PAGE_PROBE)
        for sid in range(1, args.clicks + 1):
            harness.kernel_exec(page, "lens._session.analyses._cache.clear(); _k.clear()")
            page.evaluate("() => { window.__t = []; }")
            t0 = page.evaluate("() => performance.timeOrigin + performance.now()")
            drawn = page.evaluate(JS_CLICK_TO_DRAW, [f".sl-row[data-id='{sid}']", "row", ""])
            stamps = dict(page.evaluate("() => window.__t"))
            stamps.update(dict(ast.literal_eval(harness.kernel_eval(page, "_k"))))
            row = {k: stamps[k] - t0 for k in PHASES[:-1] if k in stamps}
            row["drawn"] = drawn
            rows.append(row)
            print("  " + "  ".join(f"{k} {row.get(k, float('nan')):6.0f}" for k in PHASES))
        harness.shutdown_kernel(page)
    finally:
        browser.close()
        pw.stop()
        server.stop()
    print(f"median of {len(rows)} clicks, ms after the click:")
    for k in PHASES:
        got = [r[k] for r in rows if k in r]
        print(f"  {k:6} {statistics.median(got):6.0f}" if got else f"  {k:6}      -")


if __name__ == "__main__":
    main()
