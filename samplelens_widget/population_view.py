"""Kernel-side state of the population view: features, 2-D maps, colour columns, similarity.

One :class:`Population` per widget. Per ``(model, slice)`` it keeps the features of every sample
(from ``embed_layer``, through the engine's ``FeatureCache``), the PCA preview, the UMAP map once
it is ready (computed in a background thread), a ``SimilarityIndex`` and the colour-by columns.
Nothing here knows about traitlets or the page; ``widget.py`` wires it to both.

The model forward passes run in chunks of ``chunk`` samples, each under the session's lock, so
that an interactive analysis never waits long behind a feature extraction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samplelens_widget.payload import encode_colors, pack_coords
from samplelens_widget.population import (
    MIN_UMAP_SAMPLES,
    SimilarityIndex,
    check_layer,
    extract_features,
    pca_2d,
    project_in_background,
    resolve_layer,
    warm_up_umap,
)
from samplelens_widget.population.cache import (
    USER_CACHE_DIR,
    FeatureCache,
    dataset_fingerprint,
    feature_key,
    model_hash,
)
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


def check_metadata(metadata: Any, n: int, argname: str = "metadata") -> dict[str, dict]:
    """Validate metadata for a slice of ``n`` samples and encode every column for the page
    (``encode_colors``). Wrong length: ``ValueError``; unsupported types: ``TypeError``; both
    name the column. Names of the built-in columns are refused."""
    if metadata is None:
        return {}
    cols = _metadata_columns(metadata, argname)
    out: dict[str, dict] = {}
    for name, values in cols.items():
        if name in BUILTIN_COLUMNS:
            raise ValueError(
                f"{argname}: the column name {name!r} is reserved (built-in colour-by columns: "
                f"{list(BUILTIN_COLUMNS)}); rename it"
            )
        out[name] = encode_colors(values, n, name=f"{argname}[{name!r}]")
    return out


class _Range:
    """Samples ``start:stop`` of a data set (a map-style view for chunked extraction)."""

    def __init__(self, ds, start: int, stop: int):
        self.ds, self.start, self.stop = ds, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.ds[self.start + i]


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
    background: Any = None
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
        metadata: Mapping[str, dict[str, dict]] | None = None,
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

    # ----------------------------------------------------------------- layers
    def check_embed_layer(self, model_name: str) -> str | None:
        if self.embed_layer is None:
            return None
        return check_layer(self.session.models[model_name], self.embed_layer, argname="embed_layer")

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

    def _compute(self, st: PopState, progress) -> None:
        s = self.session
        model = s.models[st.model]
        ds = s.slices[st.slice]
        engine = s.engines[st.model]
        device = engine.device
        n = st.n
        if n == 0:
            raise ValueError(f"slice {st.slice!r} has no samples")
        if self.projection == "umap" and n >= MIN_UMAP_SAMPLES and not self._warmed:
            self._warmed = True
            warm_up_umap()  # numba compiles while the features are extracted
        layer = self.embed_layer
        with s.lock:
            inputs, _, _ = s.item(st.slice, 0)
            if layer is not None:
                layer = check_layer(model, layer, argname="embed_layer")
            layer, reader = resolve_layer(model, inputs, layer, device, engine.layout)
            key = feature_key(model_hash(model), dataset_fingerprint(ds), layer)
        hit = self.cache.lookup(key)
        if hit is not None and hit[0].shape[0] == n and hit[1] == layer:
            feats, name, source = hit[0], hit[1], hit[2]
        else:
            if progress is not None:
                progress(0, n)
            parts = []
            name = layer
            for start in range(0, n, self.chunk):
                stop = min(n, start + self.chunk)
                with s.lock:  # one chunk at a time: analyses interleave
                    try:
                        f, name = extract_features(
                            model,
                            _Range(ds, start, stop),
                            layer,
                            device=device,
                            batch_size=self.chunk,
                            reader=reader,
                        )
                    except ValueError as exc:
                        msg = str(exc)
                        if msg.startswith("layer: "):
                            msg = "embed_layer: " + msg[len("layer: ") :]
                        raise ValueError(msg) from None
                parts.append(f)
                if progress is not None:
                    progress(stop, n)
            feats, name = self.cache.put(key, np.concatenate(parts), name)
            source = "computed"
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
        # predictions of the whole slice (the colour columns); cached by the session
        s.slice_stats(st.model, st.slice)

    def _start_umap(self, st: PopState, on_umap) -> None:
        if self.projection != "umap" or st.n < MIN_UMAP_SAMPLES or st.umap is not None:
            return
        if st.background is not None:
            return
        st.umap_pending = True

        def done(proj) -> None:
            st.umap_pending = False
            if proj.method == "umap":
                st.umap, st.method, st.note = proj.coords, "umap", None
            else:
                st.note = proj.note
            st.done.set()
            if on_umap is not None:
                on_umap(st)

        device = self.session.engines[st.model].device
        st.background = project_in_background(
            np.array(st.features, dtype=np.float32), done, device=device
        )

    def close(self) -> None:
        for st in self._states.values():
            if st.background is not None:
                st.background.cancel()

    # ---------------------------------------------------------------- columns
    def column_payloads(self, model_name: str, slice_name: str) -> list[tuple[dict, bytes]]:
        """(meta, data) of every colour-by column of a slice for the page."""
        s = self.session
        stats = s.slice_stats(model_name, slice_name)
        k = int(stats["num_classes"])
        names = s.label_names(k)
        labels = np.asarray(stats["labels"], dtype=np.int64)
        preds = np.asarray(stats["predictions"], dtype=np.int64)
        losses = np.asarray(stats["losses"], dtype=np.float64)
        out = [
            (_cat_meta("label", "True label", names), _codes(labels, k)),
            (_cat_meta("prediction", "Predicted", names), _codes(preds, k)),
        ]
        correct = np.where(labels < 0, 255, (labels == preds).astype(np.int64))
        out.append(
            (
                _cat_meta("correct", "Correct", ["incorrect", "correct"], palette="correct"),
                _codes(correct, 2),
            )
        )
        fin = losses[np.isfinite(losses)]
        out.append(
            (
                {
                    "key": "loss",
                    "title": "Loss",
                    "kind": "value",
                    "dtype": "float32",
                    # the colour scale spans the 2nd..98th percentile: losses are skewed (a
                    # few large ones), and the min..max would leave most dots one colour
                    "min": float(np.quantile(fin, 0.02)) if fin.size else None,
                    "max": float(np.quantile(fin, 0.98)) if fin.size else None,
                    "clipped": bool(fin.size),
                },
                losses.astype("<f4").tobytes(),
            )
        )
        for name, enc in self.metadata.get(slice_name, {}).items():
            meta = {kk: v for kk, v in enc.items() if kk != "data"}
            meta.update(key=name, title=name)
            out.append((meta, enc["data"]))
        return out

    def message(self, model_name: str, slice_name: str) -> tuple[dict, list[bytes]]:
        """The ``population`` message: meta + [coordinates float32, one buffer per column]."""
        st = self.state(model_name, slice_name)
        coords = st.coords
        assert coords is not None
        cols = self.column_payloads(model_name, slice_name)
        meta = {
            "type": "population",
            "model": model_name,
            "slice": slice_name,
            "n": st.n,
            "layer": st.layer,
            "source": st.source,
            "method": st.method,
            "note": st.note,
            "umap_pending": st.umap_pending,
            "columns": [c[0] for c in cols],
        }
        return meta, [pack_coords(coords), *[c[1] for c in cols]]

    # ---------------------------------------------------------------- similar
    def similar(self, model_name: str, slice_name: str, ids, k) -> list[tuple[int, float]]:
        st = self.ensure(model_name, slice_name)
        assert st.index is not None
        if isinstance(ids, (list, tuple)):
            ids = [self.session.check_id(slice_name, i) for i in ids]
        return st.index.similar(ids, k)


def _cat_meta(key: str, title: str, categories: list, palette: str | None = None) -> dict:
    n = len(categories)
    return {
        "key": key,
        "title": title,
        "kind": "category",
        "dtype": "uint8" if n < 255 else "uint16",
        "categories": list(categories),
        "palette": palette,
        "missing": 255 if n < 255 else 65535,
    }


def _codes(values: np.ndarray, k: int) -> bytes:
    """Category indices; anything outside 0..k-1 (no label) becomes the 'missing' code."""
    missing = 255 if k < 255 else 65535
    v = np.where((values >= 0) & (values < k), values, missing)
    return v.astype("<u1" if k < 255 else "<u2").tobytes()
