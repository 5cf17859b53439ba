"""Helpers shared by the SampleLens browser tests (canvas reading, waiting on the widget)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "widget"))
import fakes  # noqa: E402  (tests/widget/fakes.py: small models and data sets)

__all__ = ["ROOT", "canvas", "fakes", "pixels", "set_slider", "settle", "wait_canvas"]

JS_CANVAS = """
(sel) => {
  const c = document.querySelector(sel);
  if (!c || !c.width) return null;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let hash = 0, sum = 0;
  for (let i = 0; i < d.length; i++) { hash = (Math.imul(hash, 31) + d[i]) | 0; sum += d[i]; }
  return {hash, sum, w: c.width, h: c.height, depth: c.dataset.depth || null,
          draws: Number(c.dataset.draws || 0)};
}
"""

JS_PIXELS = """
(sel) => {
  const c = document.querySelector(sel);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  return {w: c.width, h: c.height, data: Array.from(d)};
}
"""


def canvas(page, sel: str = "canvas[data-role=overlay]"):
    return page.evaluate(JS_CANVAS, sel)


def pixels(page, sel: str = "canvas[data-role=overlay]"):
    import numpy as np

    r = page.evaluate(JS_PIXELS, sel)
    return np.array(r["data"], dtype=np.uint8).reshape(r["h"], r["w"], 4)


def wait_canvas(page, sel="canvas[data-role=overlay]", timeout=20.0, differs_from=None):
    """Wait until the canvas has been drawn (and, if given, its hash differs from a value)."""
    deadline = time.monotonic() + timeout
    while True:
        c = canvas(page, sel)
        if c and c["draws"] > 0 and (differs_from is None or c["hash"] != differs_from):
            return c
        if time.monotonic() > deadline:
            raise AssertionError(f"canvas {sel} not drawn (or unchanged) after {timeout} s: {c}")
        page.wait_for_timeout(50)


def settle(lens, handle, rounds: int = 3) -> None:
    """Let the widget's worker answer and the page take the answers, a few rounds."""
    for _ in range(rounds):
        lens.wait(30)
        handle.sync()
        handle.page.wait_for_timeout(30)
    lens.wait(30)
    handle.sync()


def set_slider(page, sel: str, value: int) -> None:
    """Move a range input as a drag does: set the value and fire `input` (not `change`)."""
    page.evaluate(
        """([sel, v]) => { const s = document.querySelector(sel); s.value = String(v);
             s.dispatchEvent(new Event('input', {bubbles: true})); }""",
        [sel, value],
    )
