"""The population engine: per-sample features, their 2-D projection and nearest neighbours.

- ``check_layer`` / ``layer_names``: the layer names accepted, checked before any work.
- ``extract_features`` runs the model over a data set in batches on its device and keeps one
  layer's output per sample (globally average-pooled when it is a map); ``cached_features`` puts
  a ``FeatureCache`` (memory + disk) in front of it.
- ``pca_2d`` (torch, milliseconds) is the preview; ``umap_2d`` (umap-learn, seeded, on an exact
  k-NN graph computed with torch up to ``UMAP_EXACT_KNN_MAX`` samples) the map; ``project``
  picks one with the fallbacks for small slices, ``project_in_background`` runs UMAP in a
  daemon thread and calls back; ``warm_up_umap`` compiles umap-learn's numba code early.
- ``SimilarityIndex`` / ``nearest``: exact cosine nearest neighbours with torch on the device.
- ``pack_coords`` / ``encode_colors``: the binary payloads the page receives.

Pure torch + numpy (umap-learn imported lazily); nothing from the widget.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from samplelens_widget.engine.cache import (
    USER_CACHE_DIR,
    FeatureCache,
    dataset_fingerprint,
    feature_key,
    model_hash,
    resolve_cache_dir,
)
from samplelens_widget.engine.capture import eval_mode, leaf_modules
from samplelens_widget.engine.items import split_item

__all__ = [
    "MIN_UMAP_SAMPLES",
    "PCA_EXACT_DIM",
    "UMAP_EXACT_KNN_MAX",
    "UMAP_SHORT_EPOCHS_FROM",
    "BackgroundProjection",
    "Features",
    "Projection",
    "SimilarityIndex",
    "cached_features",
    "check_layer",
    "default_layer",
    "encode_colors",
    "extract_features",
    "layer_names",
    "nearest",
    "pack_coords",
    "pca_2d",
    "project",
    "project_in_background",
    "umap_2d",
    "warm_up_umap",
]

Progress = Callable[[int, int], Any]

MIN_UMAP_SAMPLES = 20  # fewer samples: PCA, with a note


# ========================================================================= features
def _model_device(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")


def _check_dataset(dataset) -> int:
    try:
        n = len(dataset)
    except TypeError as err:
        raise TypeError(
            f"dataset: expected a map-style data set (len(ds), ds[i]), got {type(dataset).__name__}"
        ) from err
    if n == 0:
        raise ValueError("dataset: it is empty; the population view needs at least one sample")
    return n


def layer_names(model: nn.Module) -> list[str]:
    """The module paths ``extract_features(layer=...)`` accepts (leaf modules, in definition
    order); ``path#2``, ``path#3``, ... name a module's later calls in one forward."""
    return [name for name, _ in leaf_modules(model)]


def _describe_allowed(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return f"None (the deepest spatial layer) or a leaf-module path: {shown}{more}"


def _parse_layer(model: nn.Module, layer, argname: str = "layer") -> tuple[str, nn.Module, int]:
    """``"path"`` / ``"path#k"`` -> (path, module, k)."""
    names = layer_names(model)
    if not isinstance(layer, str):
        raise TypeError(
            f"{argname}: expected a str or None, got {type(layer).__name__} {layer!r}"[:300]
        )
    path, sep, call = layer.partition("#")
    k = 1
    if sep:
        if not call.isdigit() or int(call) < 1:
            raise ValueError(
                f"{argname}: {layer!r} has a bad call suffix; use 'path#k' with k >= 2 for the "
                f"k-th call of a module; allowed: {_describe_allowed(names)}"
            )
        k = int(call)
    modules = dict(leaf_modules(model))
    if path not in modules:
        raise ValueError(
            f"{argname}: {layer!r} does not exist; allowed: {_describe_allowed(names)}"
        )
    return path, modules[path], k


def check_layer(model: nn.Module, layer, *, argname: str = "layer") -> str | None:
    """Check a layer name before any work (for an early, clear error naming ``argname``, e.g.
    the widget's ``embed_layer``): ``None`` or an existing leaf-module path (``path#k``
    allowed; whether the module is called k times shows only in a forward). Returns the
    normalised name (``path#1`` -> ``path``) or ``None``."""
    _check_model(model)
    if layer is None:
        return None
    path, _, call = _parse_layer(model, layer, argname)
    return path if call == 1 else f"{path}#{call}"


def default_layer(model: nn.Module, sample_inputs: Sequence[torch.Tensor], device=None) -> str:
    """The deepest spatial layer of ``model`` for one sample's inputs (as ``CamEngine.layers``
    sees them on input 0): the last layer in execution order at the largest depth."""
    from samplelens_widget.engine.cam_engine import CamEngine

    try:
        infos = CamEngine(model, device=device).layers(list(sample_inputs))
    except ValueError as err:
        raise ValueError(
            f"layer: None asks for the deepest spatial layer, but {type(model).__name__} has "
            f"none on these inputs ({err}); choose one: {_describe_allowed(layer_names(model))}"
        ) from err
    return infos[-1].name


def _pool(output, layer: str, batch: int) -> torch.Tensor:
    """One layer output (N, ...) -> (N, D): maps are averaged over every dimension after the
    channels (N, C, h, w) -> (N, C); (N, D) is taken as is; (N,) becomes (N, 1)."""
    if not isinstance(output, torch.Tensor):
        raise ValueError(
            f"layer: {layer!r} returns {type(output).__name__}, not a tensor; choose a layer "
            f"whose output is a tensor (N, C, ...) or (N, D)"
        )
    if not output.is_floating_point():
        raise ValueError(
            f"layer: {layer!r} returns a {output.dtype} tensor; features must be real floating "
            f"point"
        )
    if output.dim() == 0 or output.shape[0] != batch:
        raise ValueError(
            f"layer: {layer!r} returns shape {tuple(output.shape)}, which has no batch dimension "
            f"of {batch}; choose a layer whose output is (N, C, ...) or (N, D)"
        )
    out = output.detach()
    if out.dim() == 1:
        out = out[:, None]
    elif out.dim() > 2:
        out = out.mean(dim=tuple(range(2, out.dim())))
    return out.float().clone()  # a copy: a later in-place operation must not change it


@contextmanager
def _layer_hook(module: nn.Module, layer: str, call: int):
    """Keep the pooled output of the ``call``-th call of ``module`` in each forward."""
    state: dict[str, Any] = {"calls": 0, "out": None, "batch": 0}

    def hook(_module, _args, output):
        state["calls"] += 1
        if state["calls"] == call:
            state["out"] = _pool(output, layer, state["batch"])

    handle = module.register_forward_hook(hook)
    try:
        yield state
    finally:
        handle.remove()


def _collate(dataset, start: int, stop: int) -> list[torch.Tensor]:
    columns: list[list[torch.Tensor]] | None = None
    for i in range(start, stop):
        inputs, _ = split_item(dataset[i])
        if columns is None:
            columns = [[] for _ in inputs]
        if len(inputs) != len(columns):
            raise ValueError(
                f"dataset: item {i} has {len(inputs)} input(s), item {start} has {len(columns)}; "
                f"every item must have the same inputs"
            )
        for col, t in zip(columns, inputs, strict=True):
            col.append(t)
    assert columns is not None
    try:
        return [torch.stack(col) for col in columns]
    except RuntimeError as err:
        raise ValueError(
            f"dataset: items {start}..{stop - 1} cannot be batched (inputs of different shapes?):"
            f" {err}"
        ) from err


def extract_features(
    model: nn.Module,
    dataset,
    layer: str | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, str]:
    """Features of every sample of ``dataset`` from one layer: ``(features (N, D) float32,
    layer name)``.

    ``layer=None`` takes the deepest spatial layer (see ``default_layer``); a name is a leaf
    module's path from ``layer_names(model)``, ``path#k`` for its k-th call in one forward.
    Outputs ``(N, C, h, w)`` (any ``(N, C, ...)``) are globally average-pooled to ``(N, C)``;
    ``(N, D)`` outputs are taken as they are.

    The model runs in eval mode under ``torch.no_grad()`` in batches of ``batch_size`` on
    ``device`` (default: the device of its parameters; inputs are moved there, the model is
    not). ``progress(done, total)`` is called with ``(0, N)`` first and after every batch; an
    exception raised by it stops the extraction (a way to cancel) and propagates.
    The model is never changed: the hook is removed and every module's train/eval flag restored
    on every path, errors included.
    """
    _check_model(model)
    n = _check_dataset(dataset)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    device = _model_device(model) if device is None else torch.device(device)
    if layer is None:
        first, _ = split_item(dataset[0])
        layer = default_layer(model, first, device)
    path, module, call = _parse_layer(model, layer)
    name = path if call == 1 else f"{path}#{call}"

    features: np.ndarray | None = None
    if progress is not None:
        progress(0, n)
    with eval_mode(model), torch.no_grad(), _layer_hook(module, name, call) as state:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            batch = [t.to(device, non_blocking=True) for t in _collate(dataset, start, stop)]
            state.update(calls=0, out=None, batch=stop - start)
            try:
                model(*batch)
            except ValueError as err:
                if str(err).startswith("layer: "):
                    raise
                raise _rejected(batch, start, stop, err) from err
            except Exception as err:
                raise _rejected(batch, start, stop, err) from err
            if state["out"] is None:
                count = state["calls"]
                raise ValueError(
                    f"layer: {name!r} is never computed: module {path!r} is called {count} "
                    f"time(s) per forward"
                    + (f"; allowed: {_call_names(path, count)}" if count else "")
                )
            out = state["out"]
            if features is None:
                features = np.empty((n, out.shape[1]), dtype=np.float32)
            features[start:stop] = out.cpu().numpy()
            if progress is not None:
                progress(stop, n)
    assert features is not None
    return features, name


def _call_names(path: str, count: int) -> str:
    return ", ".join(repr(path if k == 1 else f"{path}#{k}") for k in range(1, count + 1))


def _rejected(batch, start, stop, err) -> ValueError:
    shapes = ", ".join(f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}" for t in batch)
    return ValueError(
        f"dataset: the model rejected items {start}..{stop - 1} (inputs: {shapes}): "
        f"{type(err).__name__}: {err}"
    )


@dataclass(frozen=True)
class Features:
    """Features of a data set: ``features`` (N, D) float32 (read-only), the ``layer`` they come
    from, the cache ``key`` and their ``source``: ``"computed"``, ``"memory"`` or ``"disk"``."""

    features: np.ndarray
    layer: str
    key: str
    source: str


def cached_features(
    model: nn.Module,
    dataset,
    layer: str | None = None,
    *,
    cache: FeatureCache | None = None,
    cache_dir: Any = USER_CACHE_DIR,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
) -> Features:
    """``extract_features`` behind a ``FeatureCache``: running it again with the same weights,
    data set and layer loads the features instead of recomputing them (``progress`` is then not
    called). ``cache`` is the cache to use; without one, a ``FeatureCache(cache_dir)`` is made
    (``cache_dir=None``: memory only, which then lasts for this call only: keep a cache object
    to reuse). ``layer=None`` is resolved to the deepest spatial layer (one sample's forward)
    before the lookup, so both spellings share one entry."""
    _check_model(model)
    n = _check_dataset(dataset)
    if cache is None:
        cache = FeatureCache(cache_dir)
    elif not isinstance(cache, FeatureCache):
        raise TypeError(f"cache: expected a FeatureCache or None, got {type(cache).__name__}")
    if layer is None:
        first, _ = split_item(dataset[0])
        dev = _model_device(model) if device is None else torch.device(device)
        layer = default_layer(model, first, dev)
    path, _, call = _parse_layer(model, layer)
    name = path if call == 1 else f"{path}#{call}"
    key = feature_key(model_hash(model), dataset_fingerprint(dataset), name)
    hit = cache.lookup(key)
    if hit is not None and hit[0].shape[0] == n and hit[1] == name:
        return Features(*hit[:2], key, hit[2])
    features, name = extract_features(
        model, dataset, name, batch_size=batch_size, device=device, progress=progress
    )
    stored, name = cache.put(key, features, name)
    return Features(stored, name, key, "computed")


# ======================================================================= projection
@dataclass(frozen=True)
class Projection:
    """2-D coordinates ``coords`` (N, 2) float32, the ``method`` that made them (``"umap"``,
    ``"pca"`` or ``"none"`` for a single sample) and a ``note`` for the user when the method is
    not the one asked for (else ``None``)."""

    coords: np.ndarray
    method: str
    note: str | None = None


def _as_features(features, name: str = "features") -> torch.Tensor:
    if isinstance(features, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(features))
    elif isinstance(features, torch.Tensor):
        t = features.detach()
    else:
        raise TypeError(
            f"{name}: expected a numpy array or tensor (N, D), got {type(features).__name__}"
        )
    if t.dim() != 2 or not t.is_floating_point():
        raise ValueError(
            f"{name}: expected a floating (N, D) array, got shape {tuple(t.shape)} {t.dtype}"
        )
    if t.shape[0] == 0:
        raise ValueError(f"{name}: it has no rows (N = 0)")
    finite = torch.isfinite(t).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        raise ValueError(
            f"{name}: {len(bad)} row(s) hold NaN or infinite values (first: sample "
            f"{int(bad[0])}); every sample needs finite features"
        )
    return t


PCA_EXACT_DIM = 256  # up to this many features (or rows fitted): an exact eigendecomposition


def pca_2d(
    features, *, device: torch.device | str | None = None, max_fit_samples: int = 4096
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
    x = _as_features(features)
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


def _top2_randomized(a: torch.Tensor, block: int = 10, iters: int = 7):
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
    try:
        path = root / "numba"
        path.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(path)
    except OSError:
        pass


UMAP_SHORT_EPOCHS_FROM = 5000  # from this many samples on, 200 optimisation epochs
UMAP_EXACT_KNN_MAX = 20_000  # up to this many samples, the k-NN graph is computed with torch


def _exact_knn(x: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of each row of ``x`` (L2-normalised, on its device), itself
    first, as umap-learn's ``precomputed_knn``: (indices int64, Euclidean distances float32)."""
    n = x.shape[0]
    rows = max(1, min(n, (1 << 25) // n))  # at most 32M similarities (128 MB) at a time
    idx, dist = [], []
    for chunk in x.split(rows):
        top = (chunk @ x.T).topk(k, dim=1)
        idx.append(top.indices)
        dist.append(torch.sqrt((2.0 - 2.0 * top.values).clamp_min(0.0)))
    return (
        torch.cat(idx).cpu().numpy().astype(np.int64),
        torch.cat(dist).cpu().numpy().astype(np.float32),
    )


_KNN_WARNING = r"precomputed_knn\[2\] \(knn_search_index\) is not an NNDescent object"


def umap_2d(
    features,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_epochs: int | None = None,
    device: torch.device | str | None = None,
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
    ``warm_up_umap``)."""
    x = _as_features(features)
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"features: UMAP needs at least 3 samples, got {n}; use pca_2d")
    _check_int("seed", seed, 0)
    _check_int("n_neighbors", n_neighbors, 2)
    if n_epochs is not None:
        _check_int("n_epochs", n_epochs, 1)
    elif n >= UMAP_SHORT_EPOCHS_FROM:
        n_epochs = 200
    k = min(n_neighbors, n - 1)
    if device is not None:
        x = x.to(device)
    xn = F.normalize(x.float(), dim=1)
    knn = _exact_knn(xn, k) if n <= UMAP_EXACT_KNN_MAX else (None, None, None)
    data = xn.cpu().numpy()
    _numba_cache_dir()
    import umap  # lazily: importing it costs seconds

    # our k-NN graph has no search index (only needed by .transform, which is not used)
    warnings.filterwarnings("ignore", message=_KNN_WARNING, category=UserWarning)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        min_dist=min_dist,
        n_epochs=n_epochs,
        metric="euclidean",
        random_state=seed,
        n_jobs=1,
        init="spectral" if n > n_neighbors + 1 else "random",
        precomputed_knn=knn,
    )
    coords = reducer.fit_transform(data)
    return np.ascontiguousarray(coords, dtype=np.float32)


def warm_up_umap() -> threading.Thread:
    """Compile umap-learn's numba code in a daemon thread (a 10-epoch UMAP of 512 random 8-D
    points, through the same code path as ``umap_2d`` up to ``UMAP_EXACT_KNN_MAX`` samples),
    so that the first real fit does not pay for it: call it when a widget is created, while
    the features are still being extracted. Returns the (started) thread."""

    def run() -> None:
        try:
            points = np.random.default_rng(0).random((512, 8), dtype=np.float32)
            umap_2d(points, n_epochs=10)
        except Exception:  # a warm-up only: the real fit reports errors
            pass

    thread = threading.Thread(target=run, name="samplelens-umap-warm-up", daemon=True)
    thread.start()
    return thread


def project(
    features,
    method: str = "umap",
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    device: torch.device | str | None = None,
) -> Projection:
    """2-D coordinates of the features by ``method`` (``"umap"`` or ``"pca"``), with the
    fallbacks a slice of any size needs: one sample -> the origin (``method="none"``); fewer
    than ``MIN_UMAP_SAMPLES`` -> PCA; UMAP failing -> PCA. Each fallback comes with a ``note``.
    """
    if method not in ("umap", "pca"):
        raise ValueError(f"method: {method!r} is unknown; allowed: 'umap', 'pca'")
    x = _as_features(features)
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
    try:
        return Projection(umap_2d(x, seed=seed, n_neighbors=n_neighbors, device=device), "umap")
    except (ValueError, TypeError) as err:
        if str(err).startswith(("seed:", "n_neighbors:")):
            raise
        return _umap_failed(x, err, device)
    except Exception as err:
        return _umap_failed(x, err, device)


def _umap_failed(x: torch.Tensor, err: Exception, device) -> Projection:
    msg = f"{type(err).__name__}: {err}"[:300]
    return Projection(pca_2d(x, device=device), "pca", f"UMAP failed ({msg}): showing PCA")


class BackgroundProjection:
    """UMAP in a daemon thread: ``project(features, "umap", ...)`` then ``on_done(projection)``
    from that thread (the widget applies it; with its fallbacks it always gets a projection).

    ``done`` is a ``threading.Event``; ``result`` the ``Projection`` once done; ``error`` an
    exception raised by ``on_done`` itself, if any. ``cancel()`` drops the result (a running
    UMAP fit cannot be interrupted; ``on_done`` is then not called). ``wait(timeout)`` waits
    and returns the result (``None`` on timeout or when cancelled).
    """

    def __init__(
        self,
        features,
        on_done: Callable[[Projection], Any] | None = None,
        *,
        seed: int = 0,
        n_neighbors: int = 15,
        device: torch.device | str | None = None,
    ) -> None:
        _check_int("seed", seed, 0)
        _check_int("n_neighbors", n_neighbors, 2)
        self._features = _as_features(features)
        self._on_done = on_done
        self._seed, self._n_neighbors, self._device = seed, n_neighbors, device
        self.done = threading.Event()
        self.result: Projection | None = None
        self.error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="samplelens-umap", daemon=True)
        self._thread.start()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def wait(self, timeout: float | None = None) -> Projection | None:
        self.done.wait(timeout)
        return None if self.cancelled else self.result

    def _run(self) -> None:
        try:
            result = project(
                self._features,
                "umap",
                seed=self._seed,
                n_neighbors=self._n_neighbors,
                device=self._device,
            )
            if self.cancelled:
                return
            self.result = result
            if self._on_done is not None:
                self._on_done(result)
        except BaseException as err:  # reported, never raised in a thread nobody watches
            self.error = err
        finally:
            self._features = None  # type: ignore[assignment]
            self.done.set()


def project_in_background(
    features,
    on_done: Callable[[Projection], Any] | None = None,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    device: torch.device | str | None = None,
) -> BackgroundProjection:
    """Start UMAP in a daemon thread; see ``BackgroundProjection``. Show ``pca_2d`` meanwhile."""
    return BackgroundProjection(
        features, on_done, seed=seed, n_neighbors=n_neighbors, device=device
    )


# ========================================================================= similarity
def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}"[:200])
    if value < low:
        raise ValueError(f"{name}: {value} is out of range; allowed: an int >= {low}")
    return int(value)


class SimilarityIndex:
    """Exact cosine nearest neighbours over a feature matrix, with torch on ``device``
    (default: the features' device; numpy arrays: the CPU). The rows are normalised once here;
    each query is one matrix product and one ``topk``."""

    def __init__(self, features, device: torch.device | str | None = None) -> None:
        x = _as_features(features)
        if device is not None:
            x = x.to(device)
        self.vectors = F.normalize(x.float(), dim=1)
        self.n = self.vectors.shape[0]

    def __len__(self) -> int:
        return self.n

    def _ids(self, ids, name: str = "ids") -> torch.Tensor:
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            ids = [ids]
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple, range)) or len(ids) == 0:
            raise ValueError(
                f"{name}: expected a non-empty list of sample ids (ints 0..{self.n - 1}), "
                f"got {ids!r}"[:300]
            )
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"{name}: expected int sample ids, got {i!r}"[:200])
            if not 0 <= i < self.n:
                raise ValueError(
                    f"{name}: {i} is out of range; the slice has {self.n} sample(s), "
                    f"allowed: 0..{self.n - 1}"
                )
        return torch.as_tensor([int(i) for i in ids], dtype=torch.long, device=self.vectors.device)

    def _k(self, k, high: int, reason: str) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k: expected an int, got {type(k).__name__} {k!r}"[:200])
        if not 1 <= k <= high:
            allowed = f"1..{high}" if high >= 1 else "none"
            raise ValueError(f"k: {k} is out of range; {reason}, allowed: {allowed}")
        return int(k)

    def nearest(
        self, query_ids, k: int, *, exclude_self: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per query: its ``k`` most similar samples, ``(ids (Q, k) int64, similarities (Q, k)
        float32)``, most similar first; with ``exclude_self`` a query is not its own
        neighbour. ``k``: 1..N-1 (1..N without ``exclude_self``)."""
        q = self._ids(query_ids, "query_ids")
        high = self.n - 1 if exclude_self else self.n
        k = self._k(k, high, f"the slice has {self.n} sample(s)")
        ids_out, sims_out = [], []
        for chunk in q.split(1024):
            sims = (self.vectors @ self.vectors[chunk].T).T  # (N, Q) product: the fast layout
            if exclude_self:
                sims[torch.arange(len(chunk), device=sims.device), chunk] = -torch.inf
            top = sims.topk(k, dim=1)
            ids_out.append(top.indices)
            sims_out.append(top.values)
        return (
            torch.cat(ids_out).cpu().numpy().astype(np.int64),
            torch.cat(sims_out).cpu().numpy().astype(np.float32),
        )

    def similar(self, ids, k: int) -> list[tuple[int, float]]:
        """The ``k`` samples most similar to any of ``ids`` (the selection), the ids themselves
        left out: ``[(id, cosine similarity), ...]``, most similar first (each candidate ranked
        by its largest similarity to one of ``ids``). ``k``: 1..N - len(set(ids))."""
        q = torch.unique(self._ids(ids))
        high = self.n - len(q)
        k = self._k(k, high, f"the slice has {self.n} sample(s) and {len(q)} of them are the query")
        best: torch.Tensor | None = None
        for chunk in q.split(256):
            sims = (self.vectors @ self.vectors[chunk].T).amax(dim=1)  # (N,)
            best = sims if best is None else torch.maximum(best, sims)
        assert best is not None
        best[q] = -torch.inf
        top = best.topk(k)
        return [
            (int(i), float(s))
            for i, s in zip(top.indices.tolist(), top.values.tolist(), strict=True)
        ]


def nearest(
    features,
    query_ids,
    k: int,
    *,
    exclude_self: bool = True,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One-off ``SimilarityIndex(features, device).nearest(query_ids, k, ...)``; keep an index
    to query the same features repeatedly (it normalises them once)."""
    return SimilarityIndex(features, device).nearest(query_ids, k, exclude_self=exclude_self)


# =========================================================================== payloads
def pack_coords(coords) -> bytes:
    """(N, 2) coordinates as float32 little-endian bytes, x0 y0 x1 y1 ... (8 bytes a point)."""
    arr = np.asarray(coords)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"coords: expected an (N, 2) array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype="<f4").tobytes()


def encode_colors(values, n: int, name: str = "values") -> dict[str, Any]:
    """One colour-by column for the page: ``values`` (one per sample: a list, array, tensor or
    pandas Series) of numbers or of categories (str/bool/int labels).

    Returns ``{"kind": "category", "dtype": "uint8"|"uint16"|"uint32", "categories": [...],
    "data": bytes}`` (indices into the sorted categories, little-endian) for strings, bools and
    integers with at most 256 distinct values, or ``{"kind": "value", "dtype": "float32",
    "min", "max", "data"}`` for other numbers (NaN: missing). Wrong length: ``ValueError``;
    other types (objects, nested lists): ``TypeError``; both name ``name``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    elif hasattr(values, "to_numpy"):  # pandas Series / Index
        values = values.to_numpy()
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name}: cannot read it as one value per sample: {err}") from err
    if arr.ndim != 1:
        raise ValueError(
            f"{name}: expected one value per sample (a 1-D sequence of length {n}), got shape "
            f"{arr.shape}"
        )
    if len(arr) != n:
        raise ValueError(f"{name}: has {len(arr)} values; the slice has {n} samples")
    if arr.dtype == object:
        kinds = {type(v) for v in arr.tolist()}
        if kinds <= {str}:
            arr = arr.astype(str)
        elif kinds <= {int, float, bool} and not kinds <= {bool}:
            arr = arr.astype(np.float64)
        elif kinds <= {bool}:
            arr = arr.astype(bool)
        else:
            names = sorted(k.__name__ for k in kinds)
            raise TypeError(
                f"{name}: values of type(s) {names} are not supported; allowed: numbers, bools "
                f"or strings (categories)"
            )
    if arr.dtype.kind in "USb" or (arr.dtype.kind in "iu" and len(np.unique(arr)) <= 256):
        categories, codes = np.unique(arr, return_inverse=True)
        dtype = "uint8" if len(categories) <= 256 else "uint16"
        if len(categories) > 65536:
            dtype = "uint32"
        return {
            "kind": "category",
            "dtype": dtype,
            "categories": [c.item() if hasattr(c, "item") else c for c in categories],
            "data": codes.astype(f"<{np.dtype(dtype).str[1:]}").tobytes(),
        }
    if arr.dtype.kind in "iuf":
        data = arr.astype("<f4")
        finite = data[np.isfinite(data)]
        return {
            "kind": "value",
            "dtype": "float32",
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "data": data.tobytes(),
        }
    raise TypeError(
        f"{name}: values of dtype {arr.dtype} are not supported; allowed: numbers, bools or "
        f"strings (categories)"
    )
