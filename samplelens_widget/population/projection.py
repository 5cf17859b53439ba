"""2-D projections of a feature matrix: the PCA preview and the UMAP map.

- ``pca_2d`` (torch, milliseconds) is the preview; ``umap_2d`` (umap-learn, seeded, on an exact
  k-NN graph computed with torch up to ``UMAP_EXACT_KNN_MAX`` samples) the map.
- ``project`` picks one with the fallbacks for small slices (``Projection`` holds the result);
  ``project_in_background`` runs UMAP in a daemon thread (``BackgroundProjection``) and calls
  back; ``warm_up_umap`` compiles umap-learn's numba code early.
- Those threads can be cancelled (``Cancelled``, see ``_Control``) and end before the
  interpreter exits (``shutdown.py``): between the steps of their torch work (the rows, the
  k-NN graph), and inside umap-learn by an asynchronous exception.

Pure torch + numpy; umap-learn is imported lazily, inside ``umap_2d`` (importing it costs
seconds). Nothing from the widget.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from samplelens_widget.population import shutdown, umap_worker
from samplelens_widget.population.cache import USER_CACHE_DIR, resolve_cache_dir
from samplelens_widget.population.checks import as_features, check_int

__all__ = [
    "MIN_UMAP_SAMPLES",
    "PCA_EXACT_DIM",
    "UMAP_EXACT_KNN_MAX",
    "UMAP_SHORT_EPOCHS_FROM",
    "BackgroundProjection",
    "Cancelled",
    "Projection",
    "pca_2d",
    "project",
    "project_in_background",
    "umap_2d",
    "warm_up_umap",
]

MIN_UMAP_SAMPLES = 20  # fewer samples: PCA, with a note


@dataclass(frozen=True)
class Projection:
    """2-D coordinates ``coords`` (N, 2) float32, the ``method`` that made them (``"umap"``,
    ``"pca"`` or ``"none"`` for a single sample) and a ``note`` for the user when the method is
    not the one asked for (else ``None``)."""

    coords: np.ndarray
    method: str
    note: str | None = None


PCA_EXACT_DIM = 256  # up to this many features (or rows fitted): an exact eigendecomposition


def pca_2d(
    features: object, *, device: torch.device | str | None = None, max_fit_samples: int = 4096
) -> np.ndarray:
    """The first two principal components' scores, ``(N, 2) float32``, computed with torch.

    Centred on the mean of all rows. The components are fitted on at most ``max_fit_samples``
    evenly spaced rows (all rows when there are fewer), exactly (an eigendecomposition in
    float64) when the features or the fitted rows number at most ``PCA_EXACT_DIM``, else by a
    seeded randomized subspace iteration (block 10, 7 iterations: for a preview, the same top
    components up to rounding on data whose spectrum decays). So a large slice's preview costs
    two passes over the data plus a fixed amount. Each component's sign is fixed so that its
    largest-magnitude loading is positive: the same data always give the same picture.
    Missing components (one sample, one feature, constant data) are 0.
    """
    x = as_features(features)
    if device is not None:
        x = x.to(device)
    x = x.float()
    n, d = x.shape
    out = torch.zeros((n, 2), dtype=torch.float32, device=x.device)
    if n < 2:
        return out.cpu().numpy()
    mean = x.mean(dim=0)
    if n > max_fit_samples:
        rows = torch.linspace(0, n - 1, max_fit_samples, device=x.device).round().long()
        fit = x[rows] - mean
    else:
        fit = x - mean
    m = fit.shape[0]
    if d <= PCA_EXACT_DIM:
        f64 = fit.double()
        evals, evecs = torch.linalg.eigh(f64.T @ f64)  # ascending
        comps, evals = evecs[:, -2:].flip(1), evals[-2:].flip(0)
    elif m <= PCA_EXACT_DIM:  # more features than rows: the Gram matrix is the smaller one
        f64 = fit.double()
        evals, u = torch.linalg.eigh(f64 @ f64.T)
        u, evals = u[:, -2:].flip(1), evals[-2:].flip(0)
        comps = f64.T @ u
        comps = comps / comps.norm(dim=0).clamp_min(1e-300)
    else:
        comps, evals = _top2_randomized(fit)
    scale = evals.abs().max().clamp_min(1e-300)
    keep = evals > scale * 1e-10  # numerically zero variance: no component
    idx = comps.abs().argmax(dim=0)
    signs = torch.sign(comps[idx, torch.arange(comps.shape[1], device=comps.device)])
    comps = comps * torch.where(signs == 0, 1.0, signs) * keep.to(comps.dtype)
    comps32 = comps.float().T.contiguous().T  # column-major: MKL's fast layout for (N,D)@(D,2)
    scores = x @ comps32 - mean @ comps32
    out[:, : comps.shape[1]] = scores
    return out.cpu().numpy()


def _top2_randomized(
    a: torch.Tensor, block: int = 10, iters: int = 7
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-2 right singular vectors of ``a`` (m, d) and the squared singular values, by a
    randomized subspace iteration seeded with 0 (Halko et al.): deterministic on a device."""
    gen = torch.Generator(device=a.device).manual_seed(0)
    omega = torch.randn(a.shape[1], block, generator=gen, device=a.device, dtype=a.dtype)
    q = torch.linalg.qr(a @ omega).Q
    for _ in range(iters):
        q = torch.linalg.qr(a.T @ q).Q
        q = torch.linalg.qr(a @ q).Q
    _, s, vh = torch.linalg.svd((q.T @ a).double(), full_matrices=False)
    return vh[:2].T, s[:2] ** 2


def _numba_cache_dir() -> None:
    """Give numba a persistent cache (its compiled UMAP code) before umap is imported."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    root = resolve_cache_dir(USER_CACHE_DIR)
    if root is None:
        return
    try:
        path = root / "numba"
        path.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(path)
    except OSError:
        pass


class Cancelled(BaseException):
    """Raised inside a projection thread that was cancelled (``BackgroundProjection.cancel``).
    A ``BaseException``: no ``except Exception`` on its way out (``project``'s fallbacks,
    umap-learn's, numba's) takes it for a failure."""


#: set once a UMAP fit has completed in this process: numba's code is compiled from then on
_compiled = threading.Event()
#: the ``_Control`` of the projection thread running this code (none on other threads)
_current = threading.local()
#: at exit, how often an interruption is repeated (one may have been swallowed)
_REPEAT_S = 0.2


def _async_raise(ident: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in thread ``ident`` at its next Python instruction (``None``: drop one
    still pending). CPython's ``PyThreadState_SetAsyncExc``."""
    if exc is not None:
        _quiet_cancelled_unraisables()
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), None if exc is None else ctypes.py_object(exc)
    )


def _quiet_cancelled_unraisables() -> None:
    """An interruption that lands in code called back from C (a ctypes callback of llvmlite
    while numba compiles, a ``__del__``, a weakref callback) cannot propagate: Python reports
    it through ``sys.unraisablehook`` and goes on (the next interruption stops the thread).
    Ours are expected: this hook (installed over the current one) reports the others only."""
    current = sys.unraisablehook
    if getattr(current, "_samplelens_quiet", False):
        return

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, Cancelled):
            return
        current(unraisable)

    hook._samplelens_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


class _Control:
    """The cancellation and the ``phase`` of one projection thread.

    Phases: ``"torch"`` (the rows, the k-NN graph, a fallback PCA), ``"wait"`` (for the
    process's warm-up), ``"import"`` (importing umap-learn), ``"fit"`` (umap-learn's fit: numba
    and numpy only, no tensor held), ``"callback"`` (``on_done``), ``"done"``. ``check()``
    raises ``Cancelled`` once cancelled; the thread calls it between its steps (each chunk of
    the k-NN graph, while it waits, around the fit). The fit has no such step of ours, so
    ``cancel()`` raises ``Cancelled`` inside it, asynchronously (``PyThreadState_SetAsyncExc``:
    at its next Python instruction; umap-learn's epochs and scipy's eigensolver are Python
    loops, a numba function runs to its end first) once a fit has completed in this process
    (``_compiled``): an import or numba's first compilation is not interrupted, since an
    exception inside could leave half-initialised modules behind for the next fit. That is why
    a projection thread waits for the process's warm-up (``warm_up_umap``) before its fit: the
    warm-up imports umap-learn and compiles; it is shared and not cancelled by a widget.
    ``cancel(force=True)`` (the interpreter's exit, when nothing comes next) interrupts an
    import or a compilation too: no thread may be left running then, since one that comes
    back from C++ code into a finalizing interpreter aborts the process.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.phase = "torch"
        self.awaits_warm_up = True  # False: the warm-up itself
        self._lock = threading.Lock()
        self._thread: int | None = None  # while in a phase of umap-learn only
        self._interruptible = False  # ... that ``cancel()`` interrupts without ``force``
        self._raised_at: float | None = None

    def check(self) -> None:
        if self.event.is_set():
            raise Cancelled

    def cancel(self, force: bool = False) -> None:
        with self._lock:
            self.event.set()
            if self._thread is None or not (force or self._interruptible):
                return
            now = time.monotonic()
            if self._raised_at is None or (force and now - self._raised_at > _REPEAT_S):
                self._raised_at = now
                _async_raise(self._thread, Cancelled)

    @contextlib.contextmanager
    def umap_only(self, phase: str, interruptible: bool = False) -> Iterator[None]:
        """Around code of umap-learn only, without tensors: the wait for the warm-up, the
        import, the fit; ``interruptible``: ``cancel()`` may raise inside it."""
        with self._lock:
            self.check()
            self.phase = phase
            self._thread = threading.get_ident()
            self._interruptible = interruptible
        try:
            yield
        finally:
            self._leave()
        self.check()

    def _leave(self) -> None:
        with self._lock:
            self._thread = None
            self.phase = "torch"
            if self._raised_at is not None:  # one still pending must not fire later
                _async_raise(threading.get_ident(), None)


def _await_warm_up() -> None:
    """In a projection thread (not the warm-up's): wait, cancellably, until umap-learn is
    imported and numba's code compiled by the process's warm-up (see ``_Control``)."""
    control: _Control | None = getattr(_current, "control", None)
    if control is None or not control.awaits_warm_up or _compiled.is_set():
        return
    warm = warm_up_umap()
    with control.umap_only("wait"):
        while warm.is_alive():
            control.check()
            warm.join(0.05)


def _check_current() -> None:
    control: _Control | None = getattr(_current, "control", None)
    if control is not None:
        control.check()


def _umap_phase(phase: str, interruptible: bool = False) -> contextlib.AbstractContextManager[Any]:
    control: _Control | None = getattr(_current, "control", None)
    if control is None:
        return contextlib.nullcontext()
    return control.umap_only(phase, interruptible)


class _UmapThread(threading.Thread):
    """A daemon thread that runs ``work`` under a ``_Control``: ``cancel()`` stops it (see
    ``_Control``). The interpreter's exit stops it (``shutdown.stop_at_exit``: ``stop``,
    ``settle``). Started after the exit began, it is cancelled at once."""

    def __init__(
        self, work: Callable[[], None], name: str, on_end: Callable[[], None] | None = None
    ) -> None:
        super().__init__(target=self._main, name=name, daemon=True)
        self._work = work
        self._on_end = on_end
        self.control = _Control()
        shutdown.stop_at_exit(self)
        if shutdown.exiting.is_set():
            self.control.cancel()

    def _main(self) -> None:
        _current.control = self.control
        try:
            try:
                self.control.check()
                self._work()
            finally:
                self.control._leave()  # no interruption pending or to come
                self.control.phase = "done"
                if self._on_end is not None:
                    self._on_end()
        except Cancelled:  # also one that came late, at the exit, outside a phase of umap-learn
            pass

    def cancel(self) -> None:
        self.control.cancel()

    # shutdown.Stoppable
    def stop(self) -> None:
        self.control.cancel(force=True)

    def settle(self, timeout: float) -> bool:
        """Wait for the thread to end, interrupting it again as long as it runs umap-learn;
        False on timeout."""
        end = time.monotonic() + timeout
        while self.is_alive():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.join(min(left, 0.05))
            self.control.cancel(force=True)
        return True


UMAP_SHORT_EPOCHS_FROM = 5000  # from this many samples on, 200 optimisation epochs
UMAP_EXACT_KNN_MAX = 20_000  # up to this many samples, the k-NN graph is computed with torch


def _exact_knn(x: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of each row of ``x`` (L2-normalised, on its device), itself
    first, as umap-learn's ``precomputed_knn``: (indices int64, Euclidean distances float32)."""
    n = x.shape[0]
    rows = max(1, min(n, (1 << 25) // n))  # at most 32M similarities (128 MB) at a time
    idx, dist = [], []
    for chunk in torch.split(x, rows):
        _check_current()  # a cancelled projection thread stops between chunks
        top = (chunk @ x.T).topk(k, dim=1)
        idx.append(top.indices)
        dist.append(torch.sqrt((2.0 - 2.0 * top.values).clamp_min(0.0)))
    return (
        torch.cat(idx).cpu().numpy().astype(np.int64),
        torch.cat(dist).cpu().numpy().astype(np.float32),
    )


_KNN_WARNING = r"precomputed_knn\[2\] \(knn_search_index\) is not an NNDescent object"


def umap_2d(
    features: object,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_epochs: int | None = None,
    device: torch.device | str | None = None,
    worker: bool = False,
) -> np.ndarray:
    """UMAP of the features to 2-D, ``(N, 2) float32``, with umap-learn; reproducible for a
    ``seed`` (umap-learn then runs single-threaded). Rows are L2-normalised first, so that the
    neighbourhoods are those of cosine similarity (as in ``SimilarityIndex``).

    Up to ``UMAP_EXACT_KNN_MAX`` samples the exact k-nearest-neighbour graph is computed with
    torch on ``device`` (default: the features' device) and handed to umap-learn: this skips
    its nearest-neighbour descent, whose numba compilation (not cached across processes) is
    most of a first fit's cost. Larger slices use umap-learn's own approximate search.
    ``n_neighbors`` is capped at ``N - 1``. ``n_epochs=None``: 200 from
    ``UMAP_SHORT_EPOCHS_FROM`` samples on (umap-learn's own default runs 500 up to 10,000
    samples, which costs 2.5 times as much for a picture that hardly differs), else
    umap-learn's default. Needs at least 3 samples; ``project`` handles small slices. The first
    call in a process still compiles numba code (seconds to tens of seconds; see
    ``warm_up_umap``). ``worker=True``: the fit runs in the worker process (``umap_worker``)
    where it can, off this process's GIL (the background projection's choice)."""
    x = as_features(features)
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"features: UMAP needs at least 3 samples, got {n}; use pca_2d")
    check_int("seed", seed, 0)
    check_int("n_neighbors", n_neighbors, 2)
    if n_epochs is not None:
        check_int("n_epochs", n_epochs, 1)
    elif n >= UMAP_SHORT_EPOCHS_FROM:
        n_epochs = 200
    k = min(n_neighbors, n - 1)
    if device is not None:
        x = x.to(device)
    xn = F.normalize(x.float(), dim=1)
    knn = _exact_knn(xn, k) if n <= UMAP_EXACT_KNN_MAX else (None, None, None)
    data = xn.cpu().numpy()
    del x, xn  # numpy only from here on: a thread left in the fit at exit holds no tensor
    params = {
        "n_neighbors": k,
        "min_dist": min_dist,
        "n_epochs": n_epochs,
        "random_state": seed,
        "init": "spectral" if n > n_neighbors + 1 else "random",
    }
    control: _Control | None = getattr(_current, "control", None)
    if worker and umap_worker.available():
        # off the kernel's GIL: numba's compiler in the kernel stalls every other thread
        def cancelled() -> bool:
            return control is not None and control.event.is_set()

        try:
            with _umap_phase("fit"):
                return umap_worker.WORKER.fit(data, knn, params, cancelled)
        except umap_worker.WorkerUnavailable:
            pass  # no worker here: the fit runs in this thread
    _numba_cache_dir()
    _await_warm_up()
    return _fit_umap(data, knn, params)


def _fit_umap(data: np.ndarray, knn: tuple[Any, ...], params: dict[str, Any]) -> np.ndarray:
    """umap-learn's fit of the normalised rows ``data`` with the k-NN graph ``knn`` (umap's
    ``precomputed_knn``) and ``params`` (``umap_2d``'s): in a projection thread, or in the
    worker process (``umap_worker``)."""
    with _umap_phase("import"):  # in a projection thread: no torch from here on
        import umap  # type: ignore[import-untyped]  # lazily: importing it costs seconds

    # our k-NN graph has no search index (only needed by .transform, which is not used)
    warnings.filterwarnings("ignore", message=_KNN_WARNING, category=UserWarning)
    reducer = umap.UMAP(
        n_components=2, metric="euclidean", n_jobs=1, precomputed_knn=knn, **params
    )
    with _umap_phase("fit", interruptible=_compiled.is_set()):
        coords = reducer.fit_transform(data)
    _compiled.set()
    return np.ascontiguousarray(coords, dtype=np.float32)


_warm_up: _UmapThread | None = None
_warm_up_lock = threading.Lock()


def warm_up_umap() -> threading.Thread:
    """Compile umap-learn's numba code in a daemon thread (a 10-epoch UMAP of 512 random 8-D
    points, through the same code path as ``umap_2d`` up to ``UMAP_EXACT_KNN_MAX`` samples),
    so that the first real fit does not pay for it: call it when a widget is created, while
    the features are still being extracted. Returns the (started) thread, named
    ``samplelens-umap-warm-up``: one per process (the one running, or the one that has
    completed; a new one only if none has). Projection threads wait for it before their fit
    (see ``_Control``); no widget cancels it; the interpreter's exit interrupts it."""
    global _warm_up

    def run() -> None:
        try:
            points = np.random.default_rng(0).random((512, 8), dtype=np.float32)
            umap_2d(points, n_epochs=10)
        except Exception:  # a warm-up only: the real fit reports errors
            pass

    with _warm_up_lock:
        if _warm_up is not None and (_warm_up.is_alive() or _compiled.is_set()):
            return _warm_up
        thread = _warm_up = _UmapThread(run, "samplelens-umap-warm-up")
        thread.control.awaits_warm_up = False
        thread.start()
    return thread


def project(
    features: object,
    method: str = "umap",
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    device: torch.device | str | None = None,
    worker: bool = False,
) -> Projection:
    """2-D coordinates of the features by ``method`` (``"umap"`` or ``"pca"``), with the
    fallbacks a slice of any size needs: one sample -> the origin (``method="none"``); fewer
    than ``MIN_UMAP_SAMPLES`` -> PCA; UMAP failing -> PCA. Each fallback comes with a ``note``.
    ``worker``: UMAP's fit in the worker process (``umap_2d``).
    """
    if method not in ("umap", "pca"):
        raise ValueError(f"method: {method!r} is unknown; allowed: 'umap', 'pca'")
    x = as_features(features)
    n = x.shape[0]
    if n == 1:
        return Projection(
            np.zeros((1, 2), np.float32), "none", "one sample: nothing to lay out, shown alone"
        )
    if method == "pca":
        return Projection(pca_2d(x, device=device), "pca")
    if n < MIN_UMAP_SAMPLES:
        return Projection(
            pca_2d(x, device=device),
            "pca",
            f"{n} samples are too few for UMAP (it needs at least {MIN_UMAP_SAMPLES}): showing PCA",
        )
    del x  # no tensor of ours held through umap-learn's fit (see umap_2d)
    try:
        return Projection(
            umap_2d(features, seed=seed, n_neighbors=n_neighbors, device=device, worker=worker),
            "umap",
        )
    except (ValueError, TypeError) as err:
        if str(err).startswith(("seed:", "n_neighbors:")):
            raise
        return _umap_failed(features, err, device)
    except Exception as err:
        return _umap_failed(features, err, device)


def _umap_failed(x: object, err: Exception, device: torch.device | str | None) -> Projection:
    msg = f"{type(err).__name__}: {err}"[:300]
    return Projection(pca_2d(x, device=device), "pca", f"UMAP failed ({msg}): showing PCA")


class BackgroundProjection:
    """UMAP in a daemon thread: ``project(features, "umap", ...)`` (its fit in the worker
    process, ``umap_worker``, where there is one) then ``on_done(projection)`` from that
    thread (the widget applies it; with its fallbacks it always gets a projection).

    ``done`` is a ``threading.Event``; ``result`` the ``Projection`` once done; ``error`` an
    exception raised by ``on_done`` itself, if any. ``phase``: where the thread is
    (``"torch"``: the rows and the k-NN graph, ``"wait"``: for the process's warm-up,
    ``"import"``, ``"fit"``: umap-learn's fit, ``"callback"``, ``"done"``). ``cancel()`` stops
    the thread within moments and drops the result (``on_done`` is then not called): between
    the k-NN graph's chunks, while it waits, and inside the fit (which runs compiled code:
    see ``_Control``; should the warm-up have failed, a fit that compiles runs to its end).
    ``join(timeout)`` waits for the thread to end;
    ``wait(timeout)`` waits and returns the result (``None`` on timeout or when cancelled).
    The interpreter's exit interrupts it wherever it is and waits for it (``shutdown.py``).
    ``name``: the thread's name.
    """

    def __init__(
        self,
        features: object,
        on_done: Callable[[Projection], Any] | None = None,
        *,
        seed: int = 0,
        n_neighbors: int = 15,
        device: torch.device | str | None = None,
        name: str = "samplelens-umap",
    ) -> None:
        check_int("seed", seed, 0)
        check_int("n_neighbors", n_neighbors, 2)
        # kept as numpy: nothing of torch in the thread once it is in umap-learn
        self._features: np.ndarray | None = as_features(features).float().cpu().numpy()
        self._on_done = on_done
        self._seed, self._n_neighbors, self._device = seed, n_neighbors, device
        self.done = threading.Event()
        self.result: Projection | None = None
        self.error: BaseException | None = None
        self._thread = _UmapThread(self._run, name, on_end=self.done.set)
        self._thread.start()

    @property
    def cancelled(self) -> bool:
        return self._thread.control.event.is_set()

    @property
    def phase(self) -> str:
        return self._thread.control.phase

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def cancel(self) -> None:
        self._thread.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; False on timeout."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> Projection | None:
        self.done.wait(timeout)
        return None if self.cancelled else self.result

    def _run(self) -> None:
        control = self._thread.control
        try:
            result = project(
                self._features,
                "umap",
                seed=self._seed,
                n_neighbors=self._n_neighbors,
                device=self._device,
                worker=True,
            )
            control.check()
            control.phase = "callback"
            self.result = result
            if self._on_done is not None:
                self._on_done(result)
        except Cancelled:
            pass
        except BaseException as err:  # reported, never raised in a thread nobody watches
            self.error = err
        finally:
            self._features = None
            self.done.set()


def project_in_background(
    features: object,
    on_done: Callable[[Projection], Any] | None = None,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    device: torch.device | str | None = None,
    name: str = "samplelens-umap",
) -> BackgroundProjection:
    """Start UMAP in a daemon thread; see ``BackgroundProjection``. Show ``pca_2d`` meanwhile."""
    return BackgroundProjection(
        features, on_done, seed=seed, n_neighbors=n_neighbors, device=device, name=name
    )
