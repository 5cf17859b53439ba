"""Population scatter benchmark: 100,000 points in the real bundle (headless Chromium).

    python benchmarks/bench_scatter.py [--points 100000] [--lasso 10000]

Prints a table and writes benchmarks/results/scatter.json. The page is the test harness's light
page (tests/ui/harness.py): the real ESM talking to the real Python widget in this process.
The population state (features, 2-D map, predictions) is synthetic, so that what is measured is
the widget: the payload, its decoding and first paint, a lasso's way to Python, pan and zoom.
(Feature extraction, UMAP and similarity queries: benchmarks/bench_population.py.)

Measured:
- payload: bytes of the coordinates (float32 x, y per point) and of the whole message.
- first paint: from the population message reaching the page to the first frame with every
  point drawn (page clock: decoding, colours, layout, grid index, upload, draw); also from
  Python's send to that frame (includes the light page's transport: base64 JSON through
  Playwright, and up to 100 ms of polling for messages sent from a worker thread, which a
  kernel's binary websocket does not have).
- lasso: a mouse lasso around ~10,000 points: from the mouse-up to the ids arriving in the
  widget's Python handler, as one uint32 buffer (Python clock, includes Playwright's round trip).
- pan/zoom: frame times of a pan (drag) and a zoom (wheel) at 100,000 points: the draw call +
  gl.finish() (the rendering itself), and the interval between animation frames.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "ui")]

import harness  # noqa: E402

from samplelens_widget import SampleLens  # noqa: E402
from samplelens_widget.population import SimilarityIndex  # noqa: E402
from samplelens_widget.protocol.buffers import pack_coords  # noqa: E402

SC = "document.querySelector('.sl-root').__samplelens.debug()"  # js/debug.ts: the scatter probe


class Tiny(torch.utils.data.Dataset):
    """n small images made on demand (only the ones shown are ever read)."""

    def __init__(self, n: int, classes: int = 10):
        self.n, self.classes = n, classes

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.rand(3, 16, 16, generator=g), i % self.classes


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def synthetic_population(lens, n: int, seed: int = 0) -> None:
    """Fill the widget's population state with clustered synthetic data (no model pass)."""
    rng = np.random.default_rng(seed)
    k = 10
    labels = np.arange(n) % k
    centres = rng.normal(size=(k, 2)) * 6
    coords = (centres[labels] + rng.normal(size=(n, 2))).astype(np.float32)
    feats = (np.eye(k, 32)[labels] * 3 + rng.normal(size=(n, 32))).astype(np.float32)
    preds = np.where(rng.random(n) < 0.9, labels, rng.integers(0, k, n))
    losses = rng.exponential(0.5, n)
    s = lens._session
    s._stats[(lens.model_name, lens.slice)] = {
        "predictions": preds,
        "labels": labels,
        "losses": losses,
        "confusion": np.zeros((k, k), np.int64),
        "accuracy": float((preds == labels).mean()),
        "num_classes": k,
    }
    s._num_classes[lens.model_name] = k
    st = lens._population.state(lens.model_name, lens.slice)
    st.features, st.layer, st.source = feats, "synthetic", "memory"
    st.pca, st.method, st.index = coords, "pca", SimilarityIndex(feats)


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--lasso", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n = args.points
    from playwright.sync_api import sync_playwright

    torch.set_num_threads(1)
    lens = SampleLens(Net(), Tiny(n), projection="pca", cache_dir=None, selected=[0])
    synthetic_population(lens, n)
    meta, buffers = lens._answers.population_reply(lens.model_name, lens.slice)
    coords_bytes = len(buffers[0])
    total_bytes = sum(len(b) for b in buffers) + len(json.dumps(meta))
    assert coords_bytes == len(pack_coords(np.zeros((n, 2))))

    received: list[float] = []
    orig = lens._select_ids

    def timed(content, bufs):
        received.append(time.perf_counter())
        return orig(content, bufs)

    lens._select_ids = timed
    sent_at: list[float] = []
    send = lens.send

    def send_timed(content, buffers=None):
        if isinstance(content, dict) and content.get("type") == "population":
            sent_at.append(time.time())
        return send(content, buffers=buffers)

    lens.send = send_timed
    results: dict = {"points": n, "coords_bytes": coords_bytes, "message_bytes": total_bytes}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=harness.CHROMIUM_PATH, headless=True, args=harness.CHROMIUM_ARGS
        )
        page = browser.new_context(viewport=harness.VIEWPORT).new_page()
        light = harness.LightPage(page)
        h = light(lens)
        lens.wait(60)
        h.sync()
        page.wait_for_function(
            f"() => {SC}.firstPaintMs !== null && {SC}.pos.length === {2 * n}", timeout=60_000
        )
        results["first_paint_page_ms"] = page.evaluate(f"() => {SC}.firstPaintMs")
        painted_at = page.evaluate(
            f"() => performance.timeOrigin + {SC}.popArrived + {SC}.firstPaintMs"
        )
        results["first_paint_from_python_ms"] = painted_at - sent_at[0] * 1000

        # ---- lasso around ~args.lasso points (a 48-gon, in screen coordinates)
        lasso_ms, lasso_counts = [], []
        xy = np.array(page.evaluate(f"() => Array.from({SC}.pos)"), dtype=np.float64).reshape(-1, 2)
        lens_centres = xy[np.random.default_rng(1).choice(n, args.repeats, replace=False)]
        page.click("[data-mode=lasso]")
        for cx, cy in lens_centres:
            d = np.hypot(xy[:, 0] - cx, xy[:, 1] - cy)
            r_layout = np.sort(d)[args.lasso - 1] * 1.0005
            centre = page.evaluate(
                f"([x, y]) => {{ const [a, b] = {SC}.toClient(x, y); return [a, b]; }}", [cx, cy]
            )
            ppu = page.evaluate(
                f"() => {{ const s = {SC}; return s.toClient(1, 0)[0] - s.toClient(0, 0)[0]; }}"
            )
            r = r_layout * ppu
            pts = [
                (centre[0] + r * np.cos(a), centre[1] + r * np.sin(a))
                for a in np.linspace(0, 2 * np.pi, 49)
            ]
            page.mouse.move(*pts[0])
            page.mouse.down()
            for p in pts[1:]:
                page.mouse.move(*p)
            received.clear()
            t0 = time.perf_counter()
            page.mouse.up()
            harness.wait_until(lambda: bool(received), page, 30, "the lasso in Python")
            lasso_ms.append((received[0] - t0) * 1000)
            h.sync()
            lens.wait(30)
            lasso_counts.append(len(lens.selected))
        results["lasso_points"] = lasso_counts
        results["lasso_to_python_ms"] = lasso_ms
        page.click("[data-mode=pan]")

        # ---- pan and zoom: scripted, one view change per animation frame
        frames = page.evaluate(
            f"""async () => {{
              const s = {SC};
              const gl = s.gl.gl;
              const raf = () => new Promise((r) => requestAnimationFrame(r));
              const out = {{redraw: [], redrawInterval: [], panInterval: [], zoomInterval: [],
                            idleInterval: []}};
              for (const kind of ['idle', 'pan', 'zoom', 'redraw']) {{
                s.resetView();
                s.frame();
                let last = null;
                for (let i = 0; i < 90; i++) {{
                  const t = await raf();
                  if (last !== null) out[kind + 'Interval'].push(t - last);
                  last = t;
                  const v = s.view;
                  // as the pointer handlers do: setView() on each pointer/wheel event
                  if (kind === 'pan') s.setView({{...v, cx: v.cx + 0.01, cy: v.cy - 0.005}});
                  if (kind === 'zoom') s.setView({{...v, zoom: v.zoom * 1.04}});
                  if (kind === 'redraw') {{  // a full redraw of every point, every frame
                    s.view = {{...v, cx: v.cx + 0.01}};
                    const t0 = performance.now();
                    s.frame();
                    gl.finish();
                    out.redraw.push(performance.now() - t0);
                  }}
                }}
              }}
              return out;
            }}"""
        )
        for k in ("redraw", "redrawInterval", "panInterval", "zoomInterval", "idleInterval"):
            results[f"{k}_ms"] = {
                "median": statistics.median(frames[k]),
                "p90": pct(frames[k], 0.9),
                "max": max(frames[k]),
            }
        light.close()
        browser.close()
    lens.close()

    rows = [
        ("points", f"{n:,}", ""),
        ("coordinates payload", f"{coords_bytes / 1e6:.2f} MB", "<= 2 MB"),
        ("whole population message", f"{total_bytes / 1e6:.2f} MB", "coords + 4 colour columns"),
        ("first paint (page)", f"{results['first_paint_page_ms']:.0f} ms", "<= 2 s"),
        (
            "first paint (from Python send)",
            f"{results['first_paint_from_python_ms']:.0f} ms",
            "incl. the light page's base64 + 100 ms polling",
        ),
        (
            f"lasso -> Python (median of {len(lasso_ms)})",
            f"{statistics.median(lasso_ms):.0f} ms",
            f"<= 200 ms; {statistics.median(lasso_counts):,.0f} ids",
        ),
        ("lasso -> Python (max)", f"{max(lasso_ms):.0f} ms", ""),
        (
            "pan frame interval",
            f"{results['panInterval_ms']['median']:.1f} / "
            f"{results['panInterval_ms']['p90']:.1f} / "
            f"{results['panInterval_ms']['max']:.0f} ms",
            "median / p90 / max (rAF), drag",
        ),
        (
            "zoom frame interval",
            f"{results['zoomInterval_ms']['median']:.1f} / "
            f"{results['zoomInterval_ms']['p90']:.1f} / "
            f"{results['zoomInterval_ms']['max']:.0f} ms",
            "median / p90 / max (rAF), wheel",
        ),
        (
            "full redraw (draw + finish)",
            f"{results['redraw_ms']['median']:.1f} / {results['redraw_ms']['p90']:.1f} / "
            f"{results['redraw_ms']['max']:.0f} ms",
            "median / p90 / max, every point",
        ),
        (
            "full redraw frame interval",
            f"{results['redrawInterval_ms']['median']:.1f} / "
            f"{results['redrawInterval_ms']['p90']:.1f} / "
            f"{results['redrawInterval_ms']['max']:.0f} ms",
            "median / p90 / max (rAF)",
        ),
        (
            "idle frame interval",
            f"{results['idleInterval_ms']['median']:.1f} / "
            f"{results['idleInterval_ms']['p90']:.1f} / "
            f"{results['idleInterval_ms']['max']:.0f} ms",
            "rAF with nothing drawn",
        ),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{w}}  {'value':>22}  note")
    print("-" * (w + 50))
    for name, value, note in rows:
        print(f"{name:<{w}}  {value:>22}  {note}")
    out = ROOT / "benchmarks" / "results" / "scatter.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results["machine"] = "software WebGL (headless Chromium, --disable-gpu)"
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
