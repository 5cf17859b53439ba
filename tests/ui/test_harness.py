"""The harness proves itself with a tiny counter anywidget, in JupyterLab and in the light page.

The counter's Python source (``COUNTER_SRC``) is executed here for the light page and written
as a notebook cell for JupyterLab, so both tiers exercise exactly the same widget.
"""

from __future__ import annotations

import ast
import sys
import threading
import time

import pytest
from harness import (
    ANNOUNCEMENTS_PLUGIN,
    kernel_eval,
    kernel_exec,
    open_notebook,
    run_all_cells,
    screenshot,
    shutdown_kernel,
    wait_kernel_idle,
    wait_until,
    write_notebook,
)

pytestmark = pytest.mark.ui

COUNTER_SRC = r'''
import anywidget
import traitlets


class Counter(anywidget.AnyWidget):
    _esm = """
export default {
  render({ model, el }) {
    const btn = document.createElement("button");
    btn.className = "counter-btn";
    const value = document.createElement("span");
    value.className = "counter-value";
    const blob = document.createElement("span");
    blob.className = "counter-blob";
    const echo = document.createElement("span");
    echo.className = "counter-echo";
    const bytesOf = (dv) => Array.from(new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength));
    const show = () => {
      btn.textContent = `count is ${model.get("value")}`;
      value.textContent = String(model.get("value"));
      const b = model.get("blob");
      blob.textContent = `${b && b.constructor.name}:${b ? bytesOf(b).join(",") : ""}`;
    };
    btn.addEventListener("click", () => {
      model.set("value", model.get("value") + 1);
      model.save_changes();
    });
    const onMsg = (msg, buffers) => {
      if (msg.kind !== "echo") return;
      const dv = buffers[0];
      const bytes = bytesOf(dv);
      echo.textContent = `${msg.text}:${bytes.join(",")}:${dv.constructor.name}`;
      model.send({ kind: "echoed", text: msg.text }, undefined, [new Uint8Array(bytes.reverse())]);
    };
    model.on("change:value", show);
    model.on("change:blob", show);
    model.on("msg:custom", onMsg);
    show();
    el.append(btn, " ", value, " ", blob, " ", echo);
    return () => {
      model.off("change:value", show);
      model.off("change:blob", show);
      model.off("msg:custom", onMsg);
    };
  },
};
"""
    _css = ".counter-btn { font-weight: bold; min-width: 8em; }"
    value = traitlets.Int(0).tag(sync=True)
    # Binary state from the page arrives as a memoryview (as from a real kernel's comm): a
    # plain Bytes trait would reject it, hence from_json.
    blob = traitlets.Bytes(b"").tag(sync=True, from_json=lambda v, w: bytes(v))

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.received = []
        self.on_msg(self._on_custom)

    def _on_custom(self, widget, content, buffers):
        self.received.append((content, [bytes(b) for b in buffers]))

    def echo(self, text, data):
        self.send({"kind": "echo", "text": text}, [data])
'''

_ns: dict = {"__name__": "counter_widget"}
exec(COUNTER_SRC, _ns)
Counter = _ns["Counter"]


def _expect():
    from playwright.sync_api import expect

    return expect


# ---------------------------------------------------------------------------------------------
# Tier 2: the light page
# ---------------------------------------------------------------------------------------------


def test_light_click_updates_python(light_page):
    expect = _expect()
    w = Counter()
    h = light_page(w)
    btn = h.el.locator(".counter-btn")
    expect(btn).to_have_text("count is 0")
    for _ in range(3):
        btn.click()
    h.sync()
    assert w.value == 3
    expect(h.el.locator(".counter-value")).to_have_text("3")
    assert h.js_get("value") == 3


def test_light_python_set_updates_page_at_once(light_page):
    w = Counter(value=5)
    h = light_page(w)
    value = h.el.locator(".counter-value")
    assert value.inner_text() == "5"
    w.value = 42  # pushed to the page before the assignment returns
    assert value.inner_text() == "42"
    with w.hold_sync():  # batched: one update message
        w.value = 43
        w.value = 44
    assert value.inner_text() == "44"


def test_light_binary_round_trip(light_page):
    expect = _expect()
    w = Counter(blob=b"\x00\x01")
    h = light_page(w)
    blob = h.el.locator(".counter-blob")
    expect(blob).to_have_text("DataView:0,1")
    w.blob = bytes([1, 2, 255])
    assert blob.inner_text() == "DataView:1,2,255"
    assert h.js_get("blob") == bytes([1, 2, 255])

    w.echo("hi", b"\x01\x02\x03")
    expect(h.el.locator(".counter-echo")).to_have_text("hi:1,2,3:DataView")
    h.sync()
    assert w.received[-1] == ({"kind": "echoed", "text": "hi"}, [b"\x03\x02\x01"])
    assert h.sent_to_page[-1] == ({"kind": "echo", "text": "hi"}, [b"\x01\x02\x03"])

    h.js_send({"kind": "direct"}, [b"abc", memoryview(b"de")])
    assert w.received[-1] == ({"kind": "direct"}, [b"abc", b"de"])
    h.js_set("blob", b"\x09\x08")  # page -> Python as a buffer
    assert w.blob == b"\x09\x08"
    assert h.js_get("blob") == b"\x09\x08"


def test_light_mimics_lab_buffer_quirks(light_page):
    """JupyterLab 4.6 (checked by hand in both tiers): model.send() buffers that are views not
    covering their whole ArrayBuffer arrive as the start of that buffer, or throw RangeError;
    binary state from save_changes() sends a view's whole underlying buffer."""
    from playwright.sync_api import Error as PlaywrightError

    w = Counter()
    h = light_page(w)
    h.page.evaluate(
        """(id) => {
          const m = window.__lp.models.get(id);
          const u8 = new Uint8Array([1, 2, 3, 4, 5]);
          m.send({ kind: "views" }, undefined, [u8.subarray(2, 4), new Uint8Array(6).fill(9)]);
          m.set("blob", u8.subarray(2, 4));
          m.save_changes();
        }""",
        h.model_id,
    )
    h.sync()
    assert w.received[-1] == ({"kind": "views"}, [b"\x01\x02", b"\x09" * 6])
    assert w.blob == b"\x01\x02\x03\x04\x05"
    with pytest.raises(PlaywrightError, match="offset is out of bounds"):
        h.page.evaluate(
            """(id) => window.__lp.models.get(id).send(
                 {}, undefined, [new Uint8Array([1, 2, 3]).subarray(1)])""",
            h.model_id,
        )


def test_light_update_from_other_thread(light_page):
    expect = _expect()
    w = Counter()
    h = light_page(w)
    t = threading.Thread(target=lambda: setattr(w, "value", 7))
    t.start()
    t.join()
    # queued, then fetched by the page's poll while Playwright waits
    expect(h.el.locator(".counter-value")).to_have_text("7", timeout=5000)
    # publish order is kept: a queued message never lands after a newer one from this thread
    t = threading.Thread(target=lambda: setattr(w, "value", 8))
    t.start()
    t.join()
    w.value = 9
    h.sync()
    assert h.el.locator(".counter-value").inner_text() == "9"


def test_light_errors_are_reported(light_page):
    w = Counter()
    h = light_page(w)

    def boom(widget, content, buffers):
        raise RuntimeError("handler exploded")

    w.on_msg(boom)
    h.js_send({"kind": "x"})
    assert any("handler exploded" in e for e in light_page.errors)
    h.js_set("value", "not an int")  # TraitError in set_state
    assert any("TraitError" in e for e in light_page.errors)
    light_page.errors.clear()


def test_light_other_esm_shapes_and_close(light_page):
    import anywidget
    import traitlets

    class Legacy(anywidget.AnyWidget):
        _esm = (
            "export function render({ model, el }) { el.textContent = 'legacy ' + model.get('x'); }"
        )
        x = traitlets.Int(1).tag(sync=True)

    class Factory(anywidget.AnyWidget):
        _esm = """
        export default async () => {
          let inits = 0;
          return {
            initialize({ model }) { inits += 1; },
            render({ model, el }) { el.textContent = `factory ${model.get('x')} ${inits}`; },
          };
        };"""
        x = traitlets.Int(2).tag(sync=True)

    a = light_page(Legacy())
    f = Factory()
    b = light_page(f)
    assert a.el.inner_text() == "legacy 1"
    assert b.el.inner_text() == "factory 2 1"
    f.close()  # the front end drops the view
    a.sync()
    assert b.el.count() == 0


# ---------------------------------------------------------------------------------------------
# Tier 1: JupyterLab
# ---------------------------------------------------------------------------------------------


def _wait_kernel_value(page, expr: str, expected: str, timeout: float = 10.0) -> None:
    last = []

    def ok() -> bool:
        last[:] = [kernel_eval(page, expr)]
        return last[0] == expected

    try:
        wait_until(ok, page, timeout=timeout, what=f"{expr} == {expected}")
    except AssertionError:
        raise AssertionError(f"{expr} is {last[0] if last else '?'}, expected {expected}") from None


def test_lab_counter(page, jupyter_server, tmp_path):
    expect = _expect()
    nb = write_notebook(tmp_path / "counter.ipynb", [COUNTER_SRC, "w = Counter()\nw"])
    t0 = time.perf_counter()
    rel = open_notebook(page, jupyter_server, nb)
    assert (jupyter_server.root / rel).is_file()
    assert ast.literal_eval(kernel_eval(page, "__import__('sys').executable")) == sys.executable
    assert not page.evaluate("(p) => window.jupyterapp.isPluginActivated(p)", ANNOUNCEMENTS_PLUGIN)

    run_all_cells(page)
    out = page.locator(".jp-OutputArea-output")
    btn = out.locator(".counter-btn")
    expect(btn).to_be_visible(timeout=30_000)
    drawn = time.perf_counter() - t0
    print(f"open + run + widget drawn: {drawn:.2f} s")

    for _ in range(3):
        btn.click()
    expect(out.locator(".counter-value")).to_have_text("3")
    _wait_kernel_value(page, "w.value", "3")

    kernel_exec(page, "w.value = 10")
    expect(out.locator(".counter-value")).to_have_text("10")

    kernel_exec(page, "w.echo('hi', bytes([1, 2, 3]))")
    expect(out.locator(".counter-echo")).to_have_text("hi:1,2,3:DataView")
    _wait_kernel_value(
        page, "w.received[-1]", "({'kind': 'echoed', 'text': 'hi'}, [b'\\x03\\x02\\x01'])"
    )

    # The page stays responsive while the kernel is busy; the change reaches Python afterwards.
    kernel_exec(page, "import time; time.sleep(3)", wait=False)
    t1 = time.perf_counter()
    btn.click()
    expect(out.locator(".counter-value")).to_have_text("11", timeout=1500)
    assert time.perf_counter() - t1 < 2.5
    wait_kernel_idle(page, timeout=20)
    _wait_kernel_value(page, "w.value", "11")

    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        kernel_eval(page, "1/0")
    with pytest.raises(AssertionError, match="NameError"):
        kernel_exec(page, "undefined_name")

    screenshot(page, "lab_counter")
    screenshot(out.locator(".counter-btn").locator(".."), "lab_counter_widget")
    shutdown_kernel(page)


def test_lab_cell_error_is_reported(page, jupyter_server, tmp_path):
    nb = write_notebook(tmp_path / "broken.ipynb", ["x = 1", "raise ValueError('broken cell')"])
    open_notebook(page, jupyter_server, nb)
    with pytest.raises(AssertionError, match="ValueError: broken cell"):
        run_all_cells(page)
    assert kernel_eval(page, "x") == "1"
    shutdown_kernel(page)
