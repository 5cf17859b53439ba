"""Fixtures for the browser tests: JupyterLab + Chromium (tier 1) and the light page (tier 2).

Session-scoped: ``jupyter_server`` (JupyterLab on a free loopback port, no token), ``browser``
(Debian's Chromium through Playwright). Function-scoped: ``page`` (fresh context, 1500x1000) and
``light_page`` (``light_page(widget) -> LightHandle``). Helpers are in ``harness.py``.

Without Chromium or Playwright the tests skip, except under ``CI=true`` where they fail.
On a failure the page's screenshot and console log land in ``tests/ui/artifacts/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

# Browser tests never run UMAP (numba compiles for tens of seconds): widgets made by the notebooks'
# kernels show the PCA map only. Their feature caches go to a temporary folder.
os.environ["SAMPLELENS_PROJECTION"] = "pca"
os.environ.setdefault("SAMPLELENS_CACHE_DIR", tempfile.mkdtemp(prefix="samplelens-ui-cache-"))


def _unavailable(reason: str) -> None:
    if harness.in_ci():
        pytest.fail(f"{reason}. CI=true: the UI tests must run there.", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def pytest_terminal_summary(terminalreporter):
    if not harness.TIMINGS:
        return
    terminalreporter.section("ui harness timings (s)")
    for name, values in harness.TIMINGS.items():
        vals = sorted(values)
        med = vals[len(vals) // 2]
        terminalreporter.write_line(
            f"{name:>18}: n={len(vals):<3} median={med:6.2f} min={vals[0]:6.2f} max={vals[-1]:6.2f}"
        )
    harness.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    (harness.ARTIFACTS_DIR / "timings.json").write_text(json.dumps(harness.TIMINGS, indent=1))


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of the Chromium binary (``SAMPLELENS_CHROMIUM``, default /usr/bin/chromium)."""
    path = harness.CHROMIUM_PATH
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright Python package is not installed (pip install playwright)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        _unavailable(
            f"no Chromium at {path} (apt-get install chromium, or set SAMPLELENS_CHROMIUM); "
            "`playwright install` is not used"
        )
    return path


@pytest.fixture(scope="session")
def playwright_driver(chromium_executable):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    yield pw
    pw.stop()


@pytest.fixture(scope="session")
def browser(playwright_driver, chromium_executable):
    """Headless Chromium (Playwright gives it a fresh profile)."""
    t0 = time.perf_counter()
    b = playwright_driver.chromium.launch(
        executable_path=chromium_executable, headless=True, args=harness.CHROMIUM_ARGS
    )
    harness.record_timing("browser launch", time.perf_counter() - t0)
    yield b
    b.close()


@pytest.fixture
def page(browser, request):
    """A page in a new browser context (viewport 1500x1000, 30 s default timeout).

    At teardown: screenshot + console log into the artifacts on failure, and the kernel of a
    notebook opened with ``open_notebook`` is shut down."""
    context = browser.new_context(viewport=harness.VIEWPORT)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    log = harness.record_console(pg)
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        name = request.node.name
        try:
            harness.screenshot(pg, f"FAILED-{name}")
        except Exception as exc:  # the page may be gone
            log.append(f"(screenshot failed: {exc})")
        harness.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        (harness.ARTIFACTS_DIR / f"FAILED-{name}.console.txt").write_text("\n".join(log))
    try:
        if pg.evaluate("() => !!window.__harnessPanel"):
            harness.shutdown_kernel(pg, timeout=10)
    except Exception:
        pass
    context.close()


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory, chromium_executable):
    """JupyterLab on 127.0.0.1 with its own config/data/runtime dirs; ``.url``, ``.root``."""
    if importlib.util.find_spec("jupyterlab") is None:
        _unavailable("jupyterlab is not installed")
    server = harness.start_jupyter_server(tmp_path_factory.mktemp("jupyter"))
    yield server
    server.stop()


@pytest.fixture
def light_page(page):
    """``light_page(widget) -> LightHandle``: the widget's real ESM in a plain page, wired to
    the Python object. The test fails at teardown if Python or the page reported errors
    (``light_page.errors.clear()`` for expected ones)."""
    lp = harness.LightPage(page)
    yield lp
    errors = list(lp.errors)
    if lp._ready:
        try:
            errors += page.evaluate("() => window.__lp.takeErrors()")
        except Exception:
            pass
    lp.close()
    if errors:
        pytest.fail("light page errors:\n" + "\n---\n".join(errors), pytrace=False)
