"""Browser-test harness: JupyterLab + Chromium (tier 1) and the light page (tier 2).

Tier 1 drives a real JupyterLab in headless Chromium through Playwright's sync API. The fixtures
(``jupyter_server``, ``browser``, ``page``) live in ``conftest.py``; the helpers here take the
Playwright ``page`` and act on the notebook opened by :func:`open_notebook`.

Tier 2 (:class:`LightPage`) loads a widget's real ESM (its ``_esm`` trait) into a plain page with a
small fake anywidget model whose traffic goes to and from the real Python widget object in this
process, following the ipywidgets message protocol (``update`` with ``buffer_paths``, ``custom``).

All timeouts are in seconds. Nothing here imports Playwright at module level, so the module is
importable (and the tests skip cleanly) where Playwright is missing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
ARTIFACTS_DIR = Path(os.environ.get("SAMPLELENS_UI_ARTIFACTS", HERE / "artifacts"))
LIGHTPAGE_HTML = HERE / "lightpage.html"

CHROMIUM_PATH = os.environ.get("SAMPLELENS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1500, "height": 1000}

#: Wall times measured by the harness (seconds), filled as tests run; conftest prints them.
TIMINGS: dict[str, list[float]] = {}


def record_timing(name: str, seconds: float) -> None:
    TIMINGS.setdefault(name, []).append(seconds)


_CONSOLE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def record_console(page) -> list[str]:
    """Start recording ``page``'s console messages and page errors; returns the live list."""
    log: list[str] = []
    _CONSOLE[page] = log
    page.on("console", lambda m: log.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: log.append(f"[pageerror] {_page_exc_text(e)}"))
    return log


def console_messages(page) -> list[str]:
    """Console messages and page errors recorded for ``page`` (by the ``page`` fixture)."""
    return _CONSOLE.get(page, [])


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


# --------------------------------------------------------------------------------------------
# Tier 1: the JupyterLab server
# --------------------------------------------------------------------------------------------

ANNOUNCEMENTS_PLUGIN = "@jupyterlab/apputils-extension:announcements"


@dataclass
class JupyterServer:
    """A running JupyterLab. ``url`` has no trailing slash; ``root`` is the served folder."""

    url: str
    root: Path
    port: int
    base_dir: Path
    log_path: Path
    proc: subprocess.Popen
    env: dict[str, str]
    startup_s: float = 0.0
    _counter: int = field(default=0, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        """Call the server's REST API (no token needed); returns the decoded JSON or None."""
        req = urllib.request.Request(f"{self.url}{path}", method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def new_test_dir(self, hint: str = "") -> Path:
        """A fresh folder under the root, named after the running test."""
        self._counter += 1
        name = hint or _current_test_name()
        d = self.root / f"{self._counter:03d}-{name}"
        d.mkdir(parents=True, exist_ok=False)
        return d

    def stop(self, timeout: float = 15.0) -> None:
        """Shut kernels down, then terminate the server by its pid (kill if it lingers)."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(Exception):
            for k in self.api("/api/kernels", timeout=5):
                self.api(f"/api/kernels/{k['id']}", method="DELETE", timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def _current_test_name() -> str:
    cur = os.environ.get("PYTEST_CURRENT_TEST", "nb")
    name = cur.split("::")[-1].split(" ")[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "nb"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def prepare_jupyter_dirs(base_dir: Path) -> dict[str, Path]:
    """Own config/data/runtime/root folders: no announcements, a kernelspec on sys.executable."""
    dirs = {k: base_dir / k for k in ("config", "data", "runtime", "root", "ipython")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    # What `jupyter labextension disable --level=user <plugin>` writes (checked against
    # JupyterLab 4.6), written directly: the CLI costs 2.4 s per session.
    _write_json(
        dirs["config"] / "labconfig" / "page_config.json",
        {"disabledExtensions": {ANNOUNCEMENTS_PLUGIN: True}},
    )
    # No news or update checks (no network), whatever the plugin state.
    _write_json(
        dirs["config"]
        / "lab"
        / "user-settings"
        / "@jupyterlab"
        / "apputils-extension"
        / "notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    # The kernel runs on this very interpreter (the data dir comes first in the kernel path).
    _write_json(
        dirs["data"] / "kernels" / "python3" / "kernel.json",
        {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "metadata": {"debugger": True},
        },
    )
    return dirs


def start_jupyter_server(base_dir: Path, timeout: float = 60.0) -> JupyterServer:
    """Start JupyterLab on 127.0.0.1 (free port, no token) and wait until /api/status answers."""
    t0 = time.perf_counter()
    dirs = prepare_jupyter_dirs(base_dir)
    port = free_port()
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        IPYTHONDIR=str(dirs["ipython"]),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    env.pop("JUPYTER_TOKEN", None)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.extension_manager=readonly",
        f"--ServerApp.root_dir={dirs['root']}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = base_dir / "jupyter_server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=dirs["root"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = JupyterServer(
        url=f"http://127.0.0.1:{port}",
        root=dirs["root"],
        port=port,
        base_dir=base_dir,
        log_path=log_path,
        proc=proc,
        env=env,
    )
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {proc.returncode} before answering.\n"
                f"Command: {cmd}\nLog ({log_path}):\n{server.log_tail()}"
            )
        try:
            server.api("/api/status", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                server.stop()
                raise TimeoutError(
                    f"JupyterLab did not answer /api/status within {timeout:.0f} s.\n"
                    f"Log ({log_path}):\n{server.log_tail()}"
                ) from None
            time.sleep(0.1)
    server.startup_s = time.perf_counter() - t0
    record_timing("server start", server.startup_s)
    return server


# --------------------------------------------------------------------------------------------
# Tier 1: notebooks
# --------------------------------------------------------------------------------------------


def write_notebook(path: str | Path, cells: Iterable[str | tuple[str, str]]) -> Path:
    """Write a notebook (python3 kernel) whose cells are code strings or (kind, source) pairs,
    kind being "code" or "markdown"."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for cell in cells:
        kind, src = ("code", cell) if isinstance(cell, str) else cell
        if kind == "code":
            nb.cells.append(nbformat.v4.new_code_cell(src))
        elif kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            raise ValueError(f"cell kind must be 'code' or 'markdown', got {kind!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


_JS_PANEL_STATE = """
() => {
  const p = window.__harnessPanel;
  const s = p && p.sessionContext;
  const k = s && s.session && s.session.kernel;
  const dialog = document.querySelector('.jp-Dialog');
  let running = 0;
  if (p && p.content) {
    for (const c of p.content.widgets) {
      if (c.model && c.model.executionState === 'running') running++;
    }
  }
  return {
    panel: !!p,
    ready: !!(s && s.isReady),
    kernel: k ? k.status : null,
    connection: k ? k.connectionStatus : null,
    pending: window.__harnessPending || 0,
    running,
    dialog: dialog ? dialog.innerText.slice(0, 500) : null,
    url: location.href,
  };
}
"""

_JS_IDLE = """
() => {
  const p = window.__harnessPanel;
  const s = p && p.sessionContext;
  const k = s && s.session && s.session.kernel;
  if (!(s && s.isReady && k && k.status === 'idle' && k.connectionStatus === 'connected')) {
    return false;
  }
  if ((window.__harnessPending || 0) > 0) return false;
  for (const c of p.content.widgets) {
    if (c.model && c.model.executionState === 'running') return false;
  }
  return true;
}
"""

_JS_FIND_PANEL = """
(path) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return false;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.sessionContext && w.content) {
      window.__harnessPanel = w;
      return true;
    }
  }
  return false;
}
"""


def _panel_state(page) -> dict:
    try:
        return page.evaluate(_JS_PANEL_STATE)
    except Exception as exc:  # the page itself may be gone
        return {"error": repr(exc)}


def _wait_js(page, predicate: str, arg: Any, timeout: float, what: str) -> None:
    from playwright.sync_api import TimeoutError as PwTimeout

    try:
        page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000, polling=100)
    except PwTimeout:
        raise AssertionError(
            f"Timed out after {timeout:.0f} s waiting for {what}. State: {_panel_state(page)}"
        ) from None


def wait_kernel_idle(page, timeout: float = 60.0, settle: float = 0.15) -> None:
    """Wait until the notebook's kernel is idle and connected, no cell is running and no
    harness request is pending, twice in a row ``settle`` seconds apart."""
    deadline = time.monotonic() + timeout
    while True:
        left = max(deadline - time.monotonic(), 0.1)
        _wait_js(page, _JS_IDLE, None, left, "the kernel to be idle")
        page.wait_for_timeout(settle * 1000)
        if page.evaluate(_JS_IDLE):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Kernel never stayed idle within {timeout:.0f} s. State: {_panel_state(page)}"
            )


def open_notebook(
    page,
    server: JupyterServer,
    nb_path: str | Path,
    *,
    extra_files: Sequence[str | Path] = (),
    timeout: float = 60.0,
    ui: str = "lab",
) -> str:
    """Copy ``nb_path`` (and ``extra_files``) into a fresh per-test folder under the server root,
    open it in JupyterLab (``ui="lab"``) or Jupyter Notebook 7 (``ui="notebook"``, the same
    server) and wait for the kernel to be ready and idle.

    Returns the notebook's path relative to the server root (``server.root / rel`` on disk).
    """
    t0 = time.perf_counter()
    nb_path = Path(nb_path)
    if not nb_path.is_file():
        raise FileNotFoundError(f"open_notebook: no notebook at {nb_path}")
    folder = server.new_test_dir()
    shutil.copy2(nb_path, folder / nb_path.name)
    for f in extra_files:
        f = Path(f)
        if f.is_dir():
            shutil.copytree(f, folder / f.name)
        else:
            shutil.copy2(f, folder / f.name)
    rel = (folder / nb_path.name).relative_to(server.root).as_posix()
    url = (
        f"{server.url}/lab/tree/{quote(rel)}?reset"
        if ui == "lab"
        else f"{server.url}/notebooks/{quote(rel)}"
    )
    page.goto(url, wait_until="domcontentloaded")
    _wait_js(page, _JS_FIND_PANEL, rel, timeout, f"JupyterLab to open {rel}")
    t1 = time.perf_counter()
    record_timing("open: lab loaded", t1 - t0)
    wait_kernel_idle(page, timeout=max(timeout - (t1 - t0), 5))
    record_timing("open: kernel idle", time.perf_counter() - t1)
    record_timing("open notebook", time.perf_counter() - t0)
    return rel


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def notebook_errors(page) -> list[str]:
    """Error outputs of the open notebook's cells, as plain text."""
    errs = page.evaluate(
        """() => {
          const out = [];
          const cells = window.__harnessPanel.content.widgets;
          cells.forEach((c, i) => {
            const o = c.model && c.model.outputs;
            if (!o) return;
            for (let j = 0; j < o.length; j++) {
              const m = o.get(j).toJSON();
              if (m.output_type === 'error') {
                out.push(`cell ${i}: ${m.ename}: ${m.evalue}\\n${(m.traceback || []).join('\\n')}`);
              }
            }
          });
          return out;
        }"""
    )
    return [_ANSI.sub("", e) for e in errs]


def run_all_cells(page, timeout: float = 120.0, raise_on_error: bool = True) -> None:
    """Run every cell of the open notebook and wait for the kernel to be idle again.

    Raises AssertionError with the tracebacks when a cell produced an error output."""
    t0 = time.perf_counter()
    page.evaluate(
        """async (ms) => {
          const p = window.__harnessPanel;
          const run = window.jupyterapp.commands.execute(
            'notebook:run-all-cells', {widgetId: p.id});
          const timer = new Promise((_, rej) => setTimeout(
            () => rej(new Error('notebook:run-all-cells did not finish in ' + ms + ' ms')), ms));
          await Promise.race([run, timer]);
        }""",
        timeout * 1000,
    )
    wait_kernel_idle(page, timeout=max(timeout - (time.perf_counter() - t0), 5))
    record_timing("run all cells", time.perf_counter() - t0)
    if raise_on_error:
        errs = notebook_errors(page)
        if errs:
            raise AssertionError("Notebook cells raised:\n" + "\n\n".join(errs))


_JS_EXECUTE = """
async ([code, userExpressions, silent, wait, ms]) => {
  const p = window.__harnessPanel;
  const k = p && p.sessionContext.session && p.sessionContext.session.kernel;
  if (!k) return {status: 'error', ename: 'HarnessError', evalue: 'no kernel', traceback: []};
  const future = k.requestExecute(
    {code, user_expressions: userExpressions, silent, store_history: false}, true);
  window.__harnessPending = (window.__harnessPending || 0) + 1;
  const done = future.done.finally(() => { window.__harnessPending -= 1; });
  if (!wait) {
    done.catch((e) => console.error('kernel_exec (not awaited) failed', e));
    return {status: 'sent'};
  }
  let timer;
  const reply = await Promise.race([
    done,
    new Promise((_, rej) => { timer = setTimeout(
      () => rej(new Error('no execute_reply within ' + ms + ' ms')), ms); }),
  ]).finally(() => clearTimeout(timer));
  return reply.content;
}
"""


def _format_kernel_error(c: dict) -> str:
    tb = _ANSI.sub("", "\n".join(c.get("traceback") or []))
    return f"{c.get('ename')}: {c.get('evalue')}\n{tb}"


def kernel_exec(page, code: str, wait: bool = True, timeout: float = 60.0) -> None:
    """Run ``code`` silently in the notebook's kernel (no output in the notebook).

    With ``wait=False`` it returns once the request is sent (the kernel may stay busy: use
    :func:`wait_kernel_idle` later). With ``wait=True`` a Python error raises AssertionError
    with the kernel's traceback."""
    c = page.evaluate(_JS_EXECUTE, [code, {}, True, wait, timeout * 1000])
    if wait and c.get("status") != "ok":
        raise AssertionError(f"kernel_exec({code!r}) failed:\n{_format_kernel_error(c)}")


def kernel_eval(page, expr: str, timeout: float = 30.0) -> str:
    """Evaluate a Python expression in the notebook's kernel; return its ``text/plain`` repr.

    ``kernel_eval(page, "w.value") == "3"``; use ``ast.literal_eval`` for structured values."""
    c = page.evaluate(_JS_EXECUTE, ["", {"x": expr}, False, True, timeout * 1000])
    if c.get("status") != "ok":
        raise AssertionError(f"kernel_eval({expr!r}): request failed:\n{_format_kernel_error(c)}")
    r = c["user_expressions"]["x"]
    if r.get("status") != "ok":
        raise AssertionError(f"kernel_eval({expr!r}) raised:\n{_format_kernel_error(r)}")
    return r["data"]["text/plain"]


def shutdown_kernel(page, timeout: float = 30.0) -> None:
    """Shut the open notebook's kernel down (no-op when nothing is open)."""
    page.evaluate(
        """async (ms) => {
          const p = window.__harnessPanel;
          if (!p || !p.sessionContext.session) return;
          await Promise.race([p.sessionContext.shutdown(),
                              new Promise((r) => setTimeout(r, ms))]);
        }""",
        timeout * 1000,
    )


def screenshot(target, name: str, **kwargs: Any) -> Path:
    """Save a PNG of a Page or Locator as tests/ui/artifacts/<name>.png; returns the path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    path = ARTIFACTS_DIR / (safe if safe.endswith(".png") else f"{safe}.png")
    target.screenshot(path=str(path), **kwargs)
    return path


# --------------------------------------------------------------------------------------------
# Tier 2: the light page
# --------------------------------------------------------------------------------------------

LIGHT_ORIGIN = "http://localhost:47831"


def _b64(buf: Any) -> str:
    data = bytes(buf) if isinstance(buf, (bytes, bytearray)) else memoryview(buf).tobytes()
    return base64.b64encode(data).decode()


def _unb64(s: str) -> memoryview:
    return memoryview(base64.b64decode(s))


def _page_exc_text(exc: Any) -> str:
    stack = getattr(exc, "stack", None)
    return f"{exc}\n{stack}" if stack and str(exc) not in stack else str(stack or exc)


class LightHandle:
    """A widget mounted in the light page.

    ``el`` is a Playwright Locator of the element the ESM rendered into."""

    def __init__(self, light: LightPage, widget: Any, model_id: str) -> None:
        self.light = light
        self.page = light.page
        self.widget = widget
        self.model_id = model_id
        self.el = self.page.locator(f'[data-lp-model="{model_id}"] > .lp-el')
        #: custom messages the Python side sent to this widget's page model: (content, buffers)
        self.sent_to_page: list[tuple[dict, list[bytes]]] = []
        self._orig_publish = None

    def sync(self, timeout: float = 10.0) -> None:
        """Deliver everything pending in both directions and let the page settle a frame."""
        self.light.sync(timeout)

    def js_get(self, name: str) -> Any:
        """The page model's value of ``name`` (binary values come back as bytes)."""
        v = self.page.evaluate("([id, n]) => window.__lp.getJSON(id, n)", [self.model_id, name])
        return _decode_binary_json(v)

    def js_set(self, name: str, value: Any, save: bool = True) -> None:
        """``model.set(name, value)`` (and ``save_changes()``) in the page, then sync.
        bytes/bytearray values become DataViews."""
        self.page.evaluate(
            "([id, n, v, s]) => window.__lp.setFromTest(id, n, v, s)",
            [self.model_id, name, _encode_binary_json(value), save],
        )
        self.sync()

    def js_send(self, content: dict, buffers: Sequence[bytes] = ()) -> None:
        """``model.send(content, undefined, buffers)`` from the page, then sync."""
        self.page.evaluate(
            "([id, c, b]) => window.__lp.sendFromTest(id, c, b)",
            [self.model_id, content, [_b64(b) for b in buffers]],
        )
        self.sync()

    def unmount(self) -> None:
        self.light._unmount(self)


def _encode_binary_json(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"__lp_b64__": _b64(v)}
    if isinstance(v, dict):
        return {k: _encode_binary_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode_binary_json(x) for x in v]
    return v


def _decode_binary_json(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"__lp_b64__"}:
            return base64.b64decode(v["__lp_b64__"])
        return {k: _decode_binary_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode_binary_json(x) for x in v]
    return v


class _CaptureLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.records.append(text)


class LightPage:
    """Mounts anywidgets into a plain page; ``light_page(widget)`` is ``light_page.mount(widget)``.

    Python-to-page traffic is intercepted at the widget's comm (its ``publish_msg``, on that comm
    instance only), so hold_sync batching, echo suppression and ``to_json`` serializers behave
    as in a kernel. Page-to-Python traffic calls ``widget.set_state`` / the ``on_msg`` callbacks.
    Messages sent from other threads wait in a queue that the page polls every 100 ms and that
    :meth:`sync` drains.
    """

    def __init__(self, page: Any, origin: str = LIGHT_ORIGIN) -> None:
        self.page = page
        self.origin = origin
        self.handles: dict[str, LightHandle] = {}
        #: Python tracebacks and page errors seen so far; the fixture fails the test on any.
        self.errors: list[str] = []
        self.console: list[str] = []
        self._esm: dict[str, str] = {}
        self._queue: list[dict] = []
        self._lock = threading.Lock()
        self._owner = threading.get_ident()
        self._ready = False

    # -- page set-up --------------------------------------------------------------------------
    def _setup(self, timeout: float) -> None:
        if self._ready:
            return
        page = self.page
        page.route(f"{self.origin}/**", self._serve)
        page.expose_function("__lp_py", self._from_page)
        page.on("pageerror", lambda exc: self.errors.append("page error: " + _page_exc_text(exc)))
        page.on("console", self._on_console)
        page.goto(f"{self.origin}/index.html", timeout=timeout * 1000)
        page.wait_for_function("() => window.__lp && window.__lp.ready", timeout=timeout * 1000)
        self._ready = True

    def _on_console(self, msg: Any) -> None:
        text = f"[{msg.type}] {msg.text}"
        self.console.append(text)

    def _serve(self, route: Any) -> None:
        path = route.request.url[len(self.origin) :].split("?")[0]
        if path in ("/", "/index.html"):
            route.fulfill(status=200, content_type="text/html", body=LIGHTPAGE_HTML.read_text())
        elif path.startswith("/esm/") and path[5:] in self._esm:
            route.fulfill(status=200, content_type="text/javascript", body=self._esm[path[5:]])
        else:
            route.fulfill(status=404, content_type="text/plain", body=f"not found: {path}")

    # -- mounting -----------------------------------------------------------------------------
    def __call__(self, widget: Any, **kwargs: Any) -> LightHandle:
        return self.mount(widget, **kwargs)

    def mount(self, widget: Any, *, style: str = "", timeout: float = 15.0) -> LightHandle:
        """Render ``widget`` (an anywidget instance) with its real ESM; returns a handle.

        ``style``: extra CSS for the widget's container (e.g. ``"width: 900px"``)."""
        from ipywidgets.widgets.widget import _remove_buffers

        t0 = time.perf_counter()
        self._setup(timeout)
        comm = getattr(widget, "comm", None)
        if comm is None:
            raise ValueError(f"light_page.mount: widget {widget!r} has no open comm (closed?)")
        model_id = widget.model_id
        if model_id in self.handles:
            raise ValueError(f"light_page.mount: widget {model_id} is already mounted")
        state, paths, buffers = _remove_buffers(widget.get_state())
        esm = state.get("_esm")
        if not isinstance(esm, str) or not esm.strip():
            raise ValueError("light_page.mount: the widget has no _esm source")
        if esm.startswith(("http://", "https://")):
            esm_url = esm
        else:
            key = f"{model_id}.js"
            self._esm[key] = esm
            esm_url = f"{self.origin}/esm/{key}"
        handle = LightHandle(self, widget, model_id)
        self.handles[model_id] = handle
        handle._orig_publish = comm.__dict__.get("publish_msg")

        def publish_msg(msg_type, data=None, metadata=None, buffers=None, **keys):
            self._publish(handle, msg_type, data, buffers)

        comm.publish_msg = publish_msg
        try:
            self.page.evaluate(
                "(a) => window.__lp.mount(a)",
                {
                    "id": model_id,
                    "state": state,
                    "buffer_paths": paths,
                    "buffers": [_b64(b) for b in buffers],
                    "esm": esm_url,
                    "style": style,
                    "timeout": timeout * 1000,
                },
            )
        except Exception as exc:
            self._unmount(handle, remove_dom=False)
            raise AssertionError(
                f"light_page.mount failed for {type(widget).__name__}: {exc}\n"
                + "\n".join(self.errors[-5:])
            ) from None
        self.sync()
        record_timing("light mount", time.perf_counter() - t0)
        return handle

    def _unmount(self, handle: LightHandle, remove_dom: bool = True) -> None:
        comm = getattr(handle.widget, "comm", None)
        if comm is not None:
            if handle._orig_publish is None:
                comm.__dict__.pop("publish_msg", None)
            else:
                comm.publish_msg = handle._orig_publish
        self.handles.pop(handle.model_id, None)
        if remove_dom:
            with contextlib.suppress(Exception):
                self.page.evaluate("(id) => window.__lp.unmount(id)", handle.model_id)

    def close(self) -> None:
        for h in list(self.handles.values()):
            self._unmount(h)

    # -- Python -> page -----------------------------------------------------------------------
    def _publish(self, handle: LightHandle, msg_type: str, data: Any, buffers: Any) -> None:
        if msg_type == "comm_close":  # widget.close(): the front end destroys its views
            self.handles.pop(handle.model_id, None)
            data, buffers = {"method": "__close__"}, None
        elif msg_type != "comm_msg" or not isinstance(data, dict):
            return
        method = data.get("method")
        if method not in ("update", "custom", "__close__"):
            return  # echo_update only matters with several front ends
        bufs = [_b64(b) for b in (buffers or [])]
        msg = {"id": handle.model_id, "data": data, "buffers": bufs}
        if method == "custom":
            handle.sent_to_page.append(
                (data.get("content"), [memoryview(b).tobytes() for b in buffers or []])
            )
        msg = json.loads(json.dumps(msg, default=_json_default))
        if threading.get_ident() == self._owner:
            # messages queued earlier by other threads go first: publish order is kept
            self._deliver([*self._drain(), msg])
        else:
            with self._lock:
                self._queue.append(msg)

    def _deliver(self, msgs: list[dict]) -> None:
        if not msgs:
            return
        try:
            self.page.evaluate("(m) => window.__lp.deliver(m)", msgs)
        except Exception as exc:
            self.errors.append(f"delivering {msgs!r:.300} to the page failed: {exc}")

    def _drain(self) -> list[dict]:
        with self._lock:
            q, self._queue = self._queue, []
        return q

    # -- page -> Python -----------------------------------------------------------------------
    def _from_page(self, kind: str, model_id: str, payload: dict) -> Any:
        if kind == "pull":
            return self._drain()
        if kind == "error":
            self.errors.append(f"page: {payload}")
            return None
        handle = self.handles.get(model_id)
        if handle is None:
            return None
        w = handle.widget
        buffers = [_unb64(b) for b in payload.get("buffers", [])]
        cap = _CaptureLog()
        loggers = {logging.getLogger("traitlets"), w.log, w._msg_callbacks.log}
        for lg in loggers:
            lg.addHandler(cap)
        try:
            if kind == "update":
                from ipywidgets.widgets.widget import _put_buffers

                state = payload["state"]
                _put_buffers(state, payload.get("buffer_paths", []), buffers)
                w.set_state(state)
            elif kind == "custom":
                w._handle_custom_msg(payload["content"], buffers)
        except Exception:
            self.errors.append(
                f"Python raised handling {kind} from the page for {type(w).__name__}:\n"
                + traceback.format_exc()
            )
        finally:
            for lg in loggers:
                lg.removeHandler(cap)
        self.errors.extend(f"Python logged handling {kind} from the page: {r}" for r in cap.records)
        return self._drain()

    # -- synchronisation ----------------------------------------------------------------------
    def sync(self, timeout: float = 10.0) -> None:
        """Wait until every page->Python call has been answered and every queued
        Python->page message delivered, then one animation frame more."""
        deadline = time.monotonic() + timeout
        while True:
            self.page.evaluate("(ms) => window.__lp.idle(ms)", timeout * 1000)
            q = self._drain()
            if not q:
                break
            self._deliver(q)
            if time.monotonic() > deadline:
                raise AssertionError(f"light page did not settle within {timeout} s")
        js_errors = self.page.evaluate("() => window.__lp.takeErrors()")
        self.errors.extend(js_errors)

    def check_errors(self) -> None:
        """Raise AssertionError listing any Python/page errors so far (and clear them)."""
        if self._ready:
            with contextlib.suppress(Exception):
                self.errors.extend(self.page.evaluate("() => window.__lp.takeErrors()"))
        if self.errors:
            errs, self.errors = self.errors, []
            raise AssertionError("light page errors:\n" + "\n---\n".join(errs))


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def wait_until(
    predicate: Callable[[], bool], page: Any, timeout: float = 10.0, what: str = ""
) -> None:
    """Poll a Python predicate while letting Playwright dispatch page events."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        page.wait_for_timeout(50)
