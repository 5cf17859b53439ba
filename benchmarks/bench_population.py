"""The population engine's numbers: UMAP, PCA, fetch-similar, payload size, feature extraction.

    python benchmarks/bench_population.py [--umap-n 10000] [--n 100000] [--dim 512] [--reps 20]

Rows (targets from the issue in brackets):
  import umap                    seconds, numba's cache state noted (first use on a machine is
                                 slower: compilation; NUMBA_CACHE_DIR keeps it across processes)
  UMAP first fit in process      10,000 x 512 [<= 60 s on 2 CPU cores], includes numba load/compile
  UMAP second fit in process     the same data again (reproducible: same coordinates); both
                                 fits run as the widget runs them, in a background thread
  longest main-thread stall      during a background UMAP fit: the largest gap a 10 ms ticker on
                                 the main thread saw (how long the kernel cannot answer the page)
  PCA preview                    10,000 and 100,000 x 512, median ms
  similarity index build         100,000 x 512: rows normalised once
  one fetch-similar query        100,000 x 512, k=10, median ms [<= 100 ms on the CPU]
  coordinates payload            100,000 points, bytes [<= 2 MB]
  feature extraction             the demo's validation split (1000 x 3x64x64), samples/s, cold
                                 and from the disk cache
  item reads of a page start     the same split in a SampleLens: construction, the first rows and
                                 analysis, the statistics and the population [<= 1 pass + 100]
Prints a markdown table and writes benchmarks/results/population.json. Synthetic features:
clustered Gaussian blobs (UMAP's cost depends little on the values).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samplelens_widget.population import (  # noqa: E402
    SimilarityIndex,
    cached_features,
    pca_2d,
    project_in_background,
)
from samplelens_widget.population.projection import _numba_cache_dir  # noqa: E402
from samplelens_widget.protocol.buffers import pack_coords  # noqa: E402


def blobs(n: int, d: int, k: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)).astype(np.float32) * 3.0
    x = centres[rng.integers(0, k, n)] + rng.standard_normal((n, d), dtype=np.float32)
    return np.maximum(x, 0.0)  # like pooled ReLU features: non-negative


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def stall_during(job_done: threading.Event, tick: float = 0.01) -> float:
    """Largest gap between 10 ms sleeps of this (main) thread while the job runs, seconds."""
    worst = 0.0
    last = time.perf_counter()
    while not job_done.is_set():
        time.sleep(tick)
        now = time.perf_counter()
        worst = max(worst, now - last - tick)
        last = now
    return worst


class Counted:
    """A data set whose item reads are counted (everything else is the data set's own)."""

    def __init__(self, ds: object) -> None:
        self.ds, self.reads = ds, 0

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> object:
        self.reads += 1
        return self.ds[i]  # type: ignore[index]

    def __getattr__(self, name: str) -> object:
        return getattr(self.ds, name)


def page_start_reads(model: torch.nn.Module, ds: object) -> int:
    """Item reads of a SampleLens from construction through what its page asks for first: the
    first rows, the viewed sample's analysis, the slice's statistics and the population."""
    from samplelens_widget import SampleLens

    counted = Counted(ds)
    with tempfile.TemporaryDirectory() as tmp:
        lens = SampleLens(model, counted, background=False, cache_dir=tmp, projection="pca")
        lens.send = lambda *a, **k: None  # type: ignore[method-assign]
        where = {"model": lens.model_name, "slice": lens.slice}
        for req in (
            {"type": "rows", **where, "ids": list(range(12))},
            {"type": "analyze", "rid": 1, "keys": [lens._key().as_dict()]},
            {"type": "stats", **where},
            {"type": "population", **where},
        ):
            lens._on_msg(lens, req, [])
        lens.close()
    return counted.reads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--umap-n", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--skip-umap", action="store_true")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "population.json"))
    args = ap.parse_args()

    rows: list[tuple[str, str, str]] = []  # (what, value, target)

    def row(what: str, value: str, target: str = "") -> None:
        rows.append((what, value, target))
        print(f"  {what}: {value} {target}", flush=True)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        flush=True,
    )

    if not args.skip_umap:
        _numba_cache_dir()
        cache = Path(os.environ["NUMBA_CACHE_DIR"])
        warm = any(p.name.startswith("pynndescent") for p in cache.glob("*"))
        t = time.perf_counter()
        import umap  # noqa: F401

        row(
            "import umap",
            f"{time.perf_counter() - t:.1f} s",
            f"(numba cache {'warm' if warm else 'cold'})",
        )
        x = blobs(args.umap_n, args.dim)
        fits = []
        for _ in range(2):  # both in the background, as the widget runs them
            t = time.perf_counter()
            job = project_in_background(x, seed=0)
            stall = stall_during(job.done)
            fits.append((time.perf_counter() - t, stall, job.result))
            assert job.result is not None and job.result.method == "umap", job.error
        size = f"{args.umap_n:,} x {args.dim}"
        row(f"UMAP first fit in process, {size}", f"{fits[0][0]:.1f} s", "[<= 60 s]")
        same = np.array_equal(fits[0][2].coords, fits[1][2].coords)
        row(
            f"UMAP second fit in process, {size}",
            f"{fits[1][0]:.1f} s",
            "(same seed: identical)" if same else "(DIFFERENT)",
        )
        row(
            "longest main-thread stall during background UMAP (first / second fit)",
            f"{fits[0][1] * 1e3:.0f} / {fits[1][1] * 1e3:.0f} ms",
        )

    small = blobs(args.umap_n, args.dim, seed=2)
    row(
        f"PCA preview, {args.umap_n:,} x {args.dim}",
        f"{median_ms(lambda: pca_2d(small), 5):.0f} ms",
    )
    feats = blobs(args.n, args.dim, seed=1)
    row(f"PCA preview, {args.n:,} x {args.dim}", f"{median_ms(lambda: pca_2d(feats), 5):.0f} ms")
    t = time.perf_counter()
    index = SimilarityIndex(feats)
    row(
        f"similarity index build, {args.n:,} x {args.dim}",
        f"{(time.perf_counter() - t) * 1e3:.0f} ms",
    )
    rng = np.random.default_rng(0)
    queries = iter(rng.integers(0, args.n, 10 * args.reps + 10).tolist())
    ms = median_ms(lambda: index.similar([next(queries)], 10), args.reps)
    row(f"one fetch-similar query (k=10), {args.n:,} x {args.dim}", f"{ms:.1f} ms", "[<= 100 ms]")
    ms = median_ms(lambda: index.similar([next(queries) for _ in range(8)], 10), args.reps)
    row(f"fetch-similar for 8 selected (k=10), {args.n:,} x {args.dim}", f"{ms:.1f} ms")
    payload = len(pack_coords(np.zeros((args.n, 2), np.float32)))
    row(f"coordinates payload, {args.n:,} points", f"{payload:,} bytes", "[<= 2 MB]")

    if not args.skip_demo:
        try:
            from samplelens_widget.demo import load_demo
        except ImportError:
            load_demo = None
        if load_demo is not None:
            model, data, _ = load_demo()
            ds = data["val"]
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                f = cached_features(model, ds, cache_dir=tmp)
                cold = time.perf_counter() - t
                t = time.perf_counter()
                g = cached_features(model, ds, cache_dir=tmp)
                hot = time.perf_counter() - t
            assert g.source == "disk"
            n, d = f.features.shape
            row(
                f"feature extraction, demo val ({n} samples, {f.layer}, D={d})",
                f"{n / cold:.0f} samples/s ({cold:.1f} s)",
            )
            row("  the same from the disk cache", f"{hot * 1e3:.0f} ms (hashing + load)")
            reads = page_start_reads(model, ds)
            row(
                f"item reads of a widget's page start, demo val ({n} samples)",
                f"{reads:,}",
                "[<= 1 pass + 100; two passes before issue 10]",
            )

    print()
    print("| what | value | target |")
    print("|---|---|---|")
    for what, value, target in rows:
        print(f"| {what} | {value} | {target} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps([dict(zip(("what", "value", "target"), r, strict=True)) for r in rows], indent=1)
    )


if __name__ == "__main__":
    main()
