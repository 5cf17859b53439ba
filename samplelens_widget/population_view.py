"""Kernel-side state of the population view: features, 2-D maps, colour columns, similarity.

One :class:`Population` per widget. Per ``(model, slice)`` it keeps the features of every sample
(from ``embed_layer``, through the engine's ``FeatureCache``), the PCA preview, the UMAP map once
it is ready (computed in a background thread), a ``SimilarityIndex`` and the colour-by columns.
Nothing here knows about traitlets or the page; ``widget.py`` wires it to both.

The features come from the slice's one pass (``slice_pass.py``, which gives the slice's
statistics too; ``feature_plan`` says what it taps), in batches of ``chunk`` samples, each under
the session's model lock, so that an interactive analysis never waits long behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samplelens_widget.population import (
    MIN_UMAP_SAMPLES,
    BackgroundProjection,
    FeatureCache,
    Projection,
    SimilarityIndex,
    check_layer,
    layer_reader,
    pca_2d,
    project_in_background,
    umap_worker,
    warm_up_umap,
)
from samplelens_widget.population.cache import USER_CACHE_DIR
from samplelens_widget.population.features import FeaturePlan, LayerTap, plan_features
from samplelens_widget.protocol.buffers import encode_colors, metadata_columns, slice_columns
from samplelens_widget.protocol.messages import ColumnMeta
from samplelens_widget.session import Session

__all__ = ["BUILTIN_COLUMNS", "PROJECTIONS", "Population", "check_metadata"]

PROJECTIONS = ("umap", "pca")
#: colour-by columns every slice has: key -> title
BUILTIN_COLUMNS = {
    "label": "True label",
    "prediction": "Predicted",
    "correct": "Correct",
    "loss": "Loss",
}


def _metadata_columns(metadata: Any, argname: str) -> dict[str, Any]:
    """A dict of arrays or a pandas DataFrame -> {column name: values}."""
    if (
        hasattr(metadata, "columns")
        and hasattr(metadata, "__getitem__")
        and hasattr(metadata, "to_dict")
    ):  # a DataFrame
        return {str(c): metadata[c] for c in metadata.columns}
    if isinstance(metadata, Mapping):
        out = {}
        for k, v in metadata.items():
            if not isinstance(k, str):
                raise TypeError(f"{argname}: column names must be strings, got {k!r}")
            out[k] = v
        return out
    raise TypeError(
        f"{argname}: expected a dict of arrays (column name -> one value per sample) or a pandas "
        f"DataFrame, got {type(metadata).__name__}"
    )


def check_metadata(
    metadata: Any, n: int, argname: str = "metadata"
) -> dict[str, dict[str, Any]]:
    """Validate metadata for a slice of ``n`` samples and encode every column for the page
    (``encode_colors``). Wrong length: ``ValueError``; unsupported types: ``TypeError``; both
    name the column. Names of the built-in columns are refused."""
    if metadata is None:
        return {}
    cols = _metadata_columns(metadata, argname)
    out: dict[str, dict[str, Any]] = {}
    for name, values in cols.items():
        if name in BUILTIN_COLUMNS:
            raise ValueError(
                f"{argname}: the column name {name!r} is reserved (built-in colour-by columns: "
                f"{list(BUILTIN_COLUMNS)}); rename it"
            )
        out[name] = encode_colors(values, n, name=f"{argname}[{name!r}]")
    return out


@dataclass
class PopState:
    """What is known of one (model, slice): features, maps, status."""

    model: str
    slice: str
    n: int
    layer: str | None = None
    features: np.ndarray | None = None
    source: str | None = None
    pca: np.ndarray | None = None
    umap: np.ndarray | None = None
    method: str | None = None  # of the coordinates shown last: "pca", "umap", "none"
    note: str | None = None
    umap_pending: bool = False
    error: str | None = None
    index: SimilarityIndex | None = None
    background: BackgroundProjection | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def coords(self) -> np.ndarray | None:
        return self.umap if self.umap is not None else self.pca


class Population:
    """Features, projections, colour columns and nearest neighbours of a widget's slices.

    ``embed_layer``: the layer the features come from (``None``: the deepest spatial layer,
    globally pooled). ``cache_dir``: the feature cache's folder (default: the user's cache
    directory; ``None``: memory only). ``projection``: ``"umap"`` (PCA first, UMAP in the
    background) or ``"pca"`` (the PCA preview only). ``metadata``: ``{slice: {column: encoded}}``
    from ``check_metadata``.
    """

    def __init__(
        self,
        session: Session,
        *,
        embed_layer: str | None = None,
        cache_dir: Any = USER_CACHE_DIR,
        projection: str = "umap",
        metadata: Mapping[str, dict[str, dict[str, Any]]] | None = None,
        chunk: int = 256,
    ) -> None:
        if projection not in PROJECTIONS:
            raise ValueError(f"projection: {projection!r} is unknown; allowed: {list(PROJECTIONS)}")
        self.session = session
        self.embed_layer = embed_layer
        self.cache = FeatureCache(cache_dir)
        self.projection = projection
        self.metadata = {k: dict(v) for k, v in (metadata or {}).items()}
        self.chunk = chunk
        self._states: dict[tuple[str, str], PopState] = {}
        self._lock = threading.RLock()  # one feature extraction at a time
        self._warmed = False
        self.umap_thread_name = "samplelens-umap"  # the widget names it after itself
        self._closed = False
        self._guard = threading.Lock()  # _closed and the start of a UMAP thread
        session.stats.passes.source = self  # the slice's one pass computes our features

    # ----------------------------------------------------------------- layers
    def check_embed_layer(self, model_name: str) -> str | None:
        if self.embed_layer is None:
            return None
        return check_layer(self.session.models[model_name], self.embed_layer, argname="embed_layer")

    def feature_plan(
        self, model_name: str, slice_name: str
    ) -> tuple[FeaturePlan, LayerTap | None]:
        """For the slice's one pass: the cached features of (model, slice), or the tap on the
        embed layer that the pass fills (``slice_pass.FeatureSource``). It runs inside the
        pass, on the stats thread too: it takes the model lock only, never ``self._lock``."""
        s = self.session
        model, engine = s.models[model_name], s.engines[model_name]
        layer = check_layer(model, self.embed_layer, argname="embed_layer")
        plan = plan_features(
            model, s.slices[slice_name], layer, self.cache, device=engine.device,
            layout=engine.layout, lock=s.lock, argname="embed_layer",
        )
        if plan.hit is not None:
            return plan, None
        reader = plan.reader
        if isinstance(reader, str):  # a named layer: one analysis says how to read it
            with s.lock:
                inputs = s.inputs(slice_name, 0)
                reader = layer_reader(model, inputs, plan.layer, engine.device, engine.layout)
        return plan, LayerTap(model, plan.layer, reader, "embed_layer")

    def columns(self, slice_name: str) -> list[tuple[str, str]]:
        """(key, title) of the colour-by columns of a slice."""
        return list(BUILTIN_COLUMNS.items()) + [(k, k) for k in self.metadata.get(slice_name, {})]

    # --------------------------------------------------------------- features
    def state(self, model_name: str, slice_name: str) -> PopState:
        key = (model_name, slice_name)
        with self._lock:
            st = self._states.get(key)
            if st is None:
                st = PopState(model_name, slice_name, self.session.slice_len(slice_name))
                self._states[key] = st
            return st

    def ensure(
        self,
        model_name: str,
        slice_name: str,
        progress: Callable[[int, int], Any] | None = None,
        on_umap: Callable[[PopState], Any] | None = None,
    ) -> PopState:
        """Features, the PCA preview and the similarity index of (model, slice), computed once
        (and UMAP started in the background when asked for). Raises on a bad layer or data."""
        with self._lock:
            st = self.state(model_name, slice_name)
            if st.features is not None:
                return st
            st.error = None
            try:
                self._compute(st, progress)
            except Exception as exc:
                st.error = f"{type(exc).__name__}: {exc}"
                raise
            self._start_umap(st, on_umap)
            return st

    def _compute(self, st: PopState, progress: Callable[[int, int], Any] | None) -> None:
        s = self.session
        engine = s.engines[st.model]
        device = engine.device
        n = st.n
        if n == 0:
            raise ValueError(f"slice {st.slice!r} has no samples")
        if self.projection == "umap" and n >= MIN_UMAP_SAMPLES and not self._warmed:
            self._warmed = True
            # numba compiles while the features are extracted: in the worker process where
            # there is one (off the kernel's GIL), else in a thread
            try:
                if not umap_worker.available():
                    raise umap_worker.WorkerUnavailable(umap_worker.WORKER.broken or "off")
                umap_worker.WORKER.start()
            except Exception:
                warm_up_umap()
        # features on disk or in memory: taken at once, the statistics' pass goes on without
        # us; else the slice's one pass (statistics too), run now or followed
        found = s.stats.passes.early_features(st.model, st.slice)
        if found is None:
            found = s.stats.passes.features(st.model, st.slice, progress)
        feats, name, source = found.features, found.layer, found.source
        st.layer, st.source = name, source
        st.features = feats
        x = np.array(feats, dtype=np.float32)  # writable copy for torch
        if n == 1:
            st.pca = np.zeros((1, 2), np.float32)
            st.method, st.note = "none", "one sample: nothing to lay out, shown alone"
        else:
            st.pca = pca_2d(x, device=device)
            st.method = "pca"
            if self.projection == "umap" and n < MIN_UMAP_SAMPLES:
                st.note = (
                    f"{n} samples are too few for UMAP (it needs at least {MIN_UMAP_SAMPLES}): "
                    "showing PCA"
                )
        st.index = SimilarityIndex(x, device=device)

    def _start_umap(self, st: PopState, on_umap: Callable[[PopState], Any] | None) -> None:
        if self.projection != "umap" or st.n < MIN_UMAP_SAMPLES or st.umap is not None:
            return
        if st.background is not None or self._closed:
            return

        def done(proj: Projection) -> None:
            st.umap_pending = False
            if proj.method == "umap":
                st.umap, st.method, st.note = proj.coords, "umap", None
            else:
                st.note = proj.note
            st.done.set()
            if on_umap is not None:
                on_umap(st)

        device = self.session.engines[st.model].device
        features = np.array(st.features, dtype=np.float32)
        with self._guard:
            if self._closed:
                return
            st.umap_pending = True
            st.background = project_in_background(
                features, done, device=device, name=self.umap_thread_name
            )

    def close(self, timeout: float = 10.0) -> bool:
        """Start no UMAP any more, cancel the running ones (``BackgroundProjection.cancel``)
        and wait for their threads, ``timeout`` seconds at most in all; True when they ended."""
        with self._guard:
            self._closed = True
            jobs = [st.background for st in list(self._states.values()) if st.background]
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + timeout
        ended = True
        for job in jobs:
            ended = job.join(max(0.0, deadline - time.monotonic())) and ended
        return ended

    # ---------------------------------------------------------------- columns
    def column_payloads(
        self, model_name: str, slice_name: str, wait: bool = True
    ) -> list[tuple[ColumnMeta, bytes]]:
        """(meta, data) of every colour-by column of a slice for the page; ``wait=False``:
        the user's metadata columns only while the slice's statistics are not known yet."""
        if not wait and self.session.stats.known(model_name, slice_name) is None:
            return metadata_columns(self.metadata.get(slice_name, {}))
        stats = self.session.stats.of_slice(model_name, slice_name)
        names = self.session.label_names(int(stats["num_classes"]))
        return slice_columns(stats, names, self.metadata.get(slice_name, {}))

    # ---------------------------------------------------------------- similar
    def similar(
        self, model_name: str, slice_name: str, ids: Any, k: Any
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest neighbours of ``ids`` (computing the features first if needed)."""
        st = self.ensure(model_name, slice_name)
        assert st.index is not None
        if isinstance(ids, (list, tuple)):
            ids = [self.session.check_id(slice_name, i) for i in ids]
        return st.index.similar(ids, k)
