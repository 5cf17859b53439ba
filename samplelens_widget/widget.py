"""``SampleLens``: the Sample Analysis widget (anywidget). Traits and message plumbing only;
the computations live in ``session.py``."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import anywidget
import numpy as np
import traitlets as t
from PIL import Image
from torch import nn

from samplelens_widget.cam.layouts import LayoutSpec
from samplelens_widget.data import COLORMAPS, blend, png_bytes
from samplelens_widget.payload import pack_coords
from samplelens_widget.population.cache import USER_CACHE_DIR
from samplelens_widget.population_view import PROJECTIONS, Population, check_metadata
from samplelens_widget.session import (
    ALGORITHM_TITLES,
    ALGORITHMS,
    AnalysisKey,
    LatestWorker,
    Session,
)
from samplelens_widget.visualizers import plotly_js_bytes, render_visual

__all__ = ["SampleLens"]

_STATIC = pathlib.Path(__file__).parent / "static"
_ESM_PATH = _STATIC / "widget.js"
_BUILD_HINT = (
    "The widget's front end is not built: {path} is missing. Build it with "
    "`npm install && npm run build` in the repository root, or install the package with "
    "`pip install .` (which runs the build)."
)
INITIAL_SELECTION = 12
DEFAULT_K = 8
THUMB_HOVER = 72
CAM_TAB, INPUT_TAB = "CAM", "Input"


class SampleLens(anywidget.AnyWidget):
    """Per-sample explanation of a PyTorch classifier: sample list, viewer, controller, errors.

    ``SampleLens(model, data, *, slices=None, label_names=None, visualizers=None, device=None,
    models=None, selected=None)``

    Args:
        model: the ``nn.Module`` to explain (may be ``None`` when ``models`` is given).
        data: a map-style dataset; items are ``(input, label)``, ``((input_a, ...), label)`` or
            dicts with ``"inputs"`` and ``"label"``. If ``slices`` is given and ``data`` is one of
            its values, that slice is the initial one.
        slices: name -> dataset, offered by the header's slice selector.
        label_names: class names (list, or dict index -> name).
        visualizers: name -> ``fn(sample)`` returning an image (array ``(H, W)``/``(H, W, 3|4)``
            or PIL), a plotly figure, or text; ``sample`` is a :class:`samplelens_widget.data.
            Sample` (``.id``, ``.input``, ``.inputs``, ``.label``, ``.image``, ``.item``;
            ``x, y = sample`` unpacks like a dataset item).
        device: where the models run (default: the device of their parameters).
        models: name -> model, for the model selector and the side-by-side comparison.
        selected: the initial selection (default: the first 12 ids of the slice).
        background: answer the page's requests on a worker thread (the newest request of each
            kind wins, older pending ones are dropped). ``False`` answers them synchronously.
        embed_layer: the layer whose output places the samples in the population scatter and
            ranks *Fetch similar* (a module path from ``population.layer_names(model)``;
            ``None``: the globally pooled output of the deepest spatial layer).
        cache_dir: where the features are cached on disk (default: the user's cache directory,
            ``$SAMPLELENS_CACHE_DIR`` or ``~/.cache/samplelens``); ``None``: memory only.
        metadata: extra colour-by columns for the scatter: a dict of arrays (column -> one value
            per sample) or a pandas DataFrame (one row per sample) for the initial slice, or
            ``{slice name: that}`` for several slices. Numbers are coloured on a scale; strings,
            bools and integers with at most 256 values as categories.
        projection: ``"umap"`` (default; a PCA preview first, UMAP computed in the background,
            the scatter morphs to it) or ``"pca"`` (the PCA map only, no UMAP). The default can
            be changed with ``$SAMPLELENS_PROJECTION``.
        layout: how the models' outputs lie on the input's grid, for the rare model the engine
            cannot read by itself: ``"NCHW"``, ``"NHWC"``, ``"tokens:P"``, a callable
            ``tensor -> (N, C, h, w)`` (pytorch-grad-cam's ``reshape_transform``), or a dict of
            layer name to one of those (see ``CamEngine``). Default: inferred per layer.

    Traits (read and set from Python; the page follows, and the page sets them too):
        selected (list[int]): ids of the selected samples in the current slice.
        viewed (int | None): the sample shown in the viewer (always one of ``selected``).
        algorithm (str): ``"gradcam"``, ``"layercam"`` or ``"focus_layercam"``.
        label (int | None): the class explained; ``None`` = the predicted class.
        connection (int): the input the heatmap belongs to (multi-input models).
        depth (int | None): the layer depth shown; ``None`` = the last layer.
        slice (str): the current data slice.
        model_name (str): the current model; compare (str | None): a second model shown side by
            side with the same sample, label and depth.
        colormap (str): one of ``jet``, ``viridis``, ``inferno``, ``turbo``, ``gray``.
        opacity (float): heatmap opacity in [0, 1].
        tab (str): the viewer tab: ``"CAM"``, ``"Input"`` or a visualizer's name.
        grid (bool): show the selected samples as a grid of overlays.
        color_by (str): the scatter's colour: ``"label"``, ``"prediction"``, ``"correct"``,
            ``"loss"`` or a metadata column.

    The population scatter (left) shows every sample of the slice; its features are computed
    in the background after the widget shows (a progress bar meanwhile), cached, projected by
    PCA at once and by UMAP in the background. Click a dot: that sample joins the list and is
    viewed; box/lasso: the samples inside become the selection (shift: added to it).
    ``lens.similar(ids, k)`` returns the ``k`` nearest neighbours of ``ids`` (cosine similarity
    of the features, exact) as ``[(id, similarity), ...]``; the page's *Fetch similar* adds
    them to the list. ``lens.population()`` returns the features and coordinates.

    ``lens.result`` is the CamResult of the viewed sample; ``lens.overlay()`` the current overlay
    as an array and ``lens.export(path)`` as a PNG; ``lens.sample`` the viewed sample as a
    visualizer sees it; ``lens.wait()`` blocks until the page's pending requests are answered.

    Page and kernel: the traits above sync both ways. The page asks for analyses with messages
    ``{"type": "analyze", "rid", "keys": [key, ...], "images": [bool, ...]}`` (also ``rows``,
    ``stats``, ``visual``, ``plotly_js``, ``add``, ``select_all``, ``similar``); a worker thread
    answers the newest request of each kind (older pending ones are dropped) with ``analysis``
    messages: JSON meta + one uint8 map per depth at feature resolution (+ the input PNG) as
    binary buffers. Each answer names its key; the page caches it and shows it only if it still
    wants that key, so a stale answer never replaces a newer one. Depth changes are drawn in the
    page from the maps it holds; the ``depth`` trait follows.

    The population view adds: page -> kernel ``population`` (model, slice; answered on its own
    worker thread with ``population_progress`` messages while the features are computed, then
    ``population``: JSON meta + the coordinates as float32 x, y pairs + one buffer per colour
    column; later ``population_coords`` when UMAP is ready, or ``population_error``),
    ``pick`` (a clicked dot: add and view it), ``select_ids`` (a box/lasso: ``mode`` "replace"
    or "add", the ids as ONE uint32 buffer), ``thumb`` (a hover thumbnail: answered with a PNG)
    and ``similar`` (ids, k: answered with ``similar``, the neighbours and their similarities,
    which the page adds to ``selected``). Selections travel as messages, never as traits that
    a hover could overwrite; ``selected`` stays the one selection of page and Python.
    """

    _esm = _ESM_PATH

    selected = t.List(t.Int()).tag(sync=True)
    viewed = t.Int(None, allow_none=True).tag(sync=True)
    algorithm = t.Unicode("gradcam").tag(sync=True)
    label = t.Int(None, allow_none=True).tag(sync=True)
    connection = t.Int(0).tag(sync=True)
    depth = t.Int(None, allow_none=True).tag(sync=True)
    slice = t.Unicode("").tag(sync=True)
    model_name = t.Unicode("").tag(sync=True)
    compare = t.Unicode(None, allow_none=True).tag(sync=True)
    colormap = t.Unicode("jet").tag(sync=True)
    opacity = t.Float(0.5).tag(sync=True)
    tab = t.Unicode(CAM_TAB).tag(sync=True)
    grid = t.Bool(False).tag(sync=True)
    color_by = t.Unicode("label").tag(sync=True)
    _info = t.Dict().tag(sync=True)

    def __init__(
        self,
        model: nn.Module | None,
        data: Any = None,
        *,
        slices: Mapping[str, Any] | None = None,
        label_names: list[str] | Mapping[int, str] | None = None,
        visualizers: Mapping[str, Callable] | None = None,
        device: Any = None,
        models: Mapping[str, nn.Module] | None = None,
        selected: list[int] | None = None,
        background: bool = True,
        embed_layer: str | None = None,
        cache_dir: Any = USER_CACHE_DIR,
        metadata: Any = None,
        projection: str | None = None,
        layout: LayoutSpec = None,
        **kwargs: Any,
    ) -> None:
        if not _ESM_PATH.exists():
            raise RuntimeError(_BUILD_HINT.format(path=_ESM_PATH))
        if not isinstance(getattr(type(self), "_esm", None), str) and not hasattr(
            type(self)._esm, "changed"
        ):  # the bundle was built after this module was imported
            self._esm = _ESM_PATH.read_text(encoding="utf-8")

        # --- models
        all_models: dict[str, nn.Module] = {}
        initial_model = None
        if models:
            for name, m in models.items():
                if not isinstance(m, nn.Module):
                    raise TypeError(f"models[{name!r}]: expected an nn.Module, got {type(m)}")
                all_models[str(name)] = m
                if m is model:
                    initial_model = str(name)
        if model is not None:
            if not isinstance(model, nn.Module):
                raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
            if initial_model is None:
                initial_model = "model" if "model" not in all_models else "model (arg)"
                all_models = {initial_model: model, **all_models}
        if not all_models:
            raise ValueError("model: expected an nn.Module (or models={name: module}), got None")
        if initial_model is None:
            initial_model = next(iter(all_models))

        # --- slices
        all_slices: dict[str, Any] = {}
        initial_slice = None
        if slices:
            for name, ds in slices.items():
                all_slices[str(name)] = ds
                if ds is data:
                    initial_slice = str(name)
        if data is not None and initial_slice is None:
            name = "data" if "data" not in all_slices else "data (arg)"
            all_slices = {name: data, **all_slices}
            initial_slice = name
        if not all_slices:
            raise ValueError("data: expected a map-style dataset (or slices={name: dataset})")
        if initial_slice is None:
            initial_slice = next(iter(all_slices))

        vis = dict(visualizers or {})
        for name in vis:
            if name in (CAM_TAB, INPUT_TAB):
                raise ValueError(
                    f"visualizers: the name {name!r} is reserved; the built-in tabs are "
                    f"{CAM_TAB!r} and {INPUT_TAB!r}"
                )
        self._session = Session(
            all_models, all_slices, label_names=label_names, visualizers=vis, device=device,
            layout=layout,
        )
        if projection is None:
            projection = os.environ.get("SAMPLELENS_PROJECTION", "umap")
        if projection not in PROJECTIONS:
            raise ValueError(f"projection: {projection!r} is unknown; allowed: {list(PROJECTIONS)}")
        if embed_layer is not None and not isinstance(embed_layer, str):
            raise TypeError(
                "embed_layer: expected a layer name (str) or None, got "
                f"{type(embed_layer).__name__}"
            )
        self._population = Population(
            self._session,
            embed_layer=embed_layer,
            cache_dir=cache_dir,
            projection=projection,
            metadata=self._check_metadata(metadata, all_slices, initial_slice),
        )
        self._population.check_embed_layer(initial_model)
        self._background = background
        self._worker: LatestWorker | None = None
        self._stats_worker: LatestWorker | None = None
        self._pop_worker: LatestWorker | None = None
        super().__init__(**kwargs)

        s = self._session
        k = s.num_classes(initial_model, initial_slice)
        self._info = {
            "models": list(all_models),
            "slices": {name: s.slice_len(name) for name in all_slices},
            "n_inputs": {name: s.n_inputs(name) for name in all_slices},
            "label_names": s.label_names(k),
            "num_classes": k,
            "algorithms": [[a, ALGORITHM_TITLES[a]] for a in ALGORITHMS],
            "colormaps": list(COLORMAPS),
            "visualizers": list(vis),
            "similar": True,
            "projection": projection,
            "columns": {name: self._population.columns(name) for name in all_slices},
        }
        with self.hold_trait_notifications():
            self.slice = initial_slice
            self.model_name = initial_model
        n = s.slice_len(initial_slice)
        self.selected = list(range(min(INITIAL_SELECTION, n))) if selected is None else selected
        if self.selected and self.viewed is None:
            self.viewed = self.selected[0]
        self.on_msg(self._on_msg)

    # ------------------------------------------------------------ validation
    def _from_page(self, name: str) -> bool:
        """True while ipywidgets applies a value of ``name`` sent by the page."""
        return name in (getattr(self, "_property_lock", None) or {})

    def _slice_len(self) -> int:
        return self._session.slice_len(self.slice) if self.slice else 0

    def _check_metadata(self, metadata: Any, slices: dict, initial: str) -> dict:
        if metadata is None:
            return {}
        if isinstance(metadata, Mapping) and metadata and all(k in slices for k in metadata):
            return {
                name: check_metadata(m, self._session.slice_len(name), f"metadata[{name!r}]")
                for name, m in metadata.items()
            }
        return {initial: check_metadata(metadata, self._session.slice_len(initial))}

    @t.validate("selected")
    def _v_selected(self, proposal):
        value = proposal["value"]
        n = self._slice_len()
        if isinstance(value, np.ndarray):
            value = value.tolist()
        out: list[int] = []
        seen: set[int] = set()
        for i in value:
            if type(i) is int and 0 <= i < n:  # the common case, fast for 100k ids
                pass
            else:
                try:
                    i = self._session.check_id(self.slice, i)
                except ValueError as exc:
                    raise t.TraitError(f"selected: {exc}") from None
            if i not in seen:
                seen.add(i)
                out.append(i)
        return out

    @t.validate("color_by")
    def _v_color_by(self, proposal):
        value = proposal["value"]
        allowed = [k for k, _ in self._population.columns(self.slice)] if self.slice else []
        if value not in allowed:
            if self._from_page("color_by"):
                return "label"
            raise t.TraitError(f"color_by: {value!r} is not one of {allowed}")
        return value

    @t.validate("viewed")
    def _v_viewed(self, proposal):
        value = proposal["value"]
        if value is None:
            return None
        try:
            return self._session.check_id(self.slice, value)
        except ValueError as exc:
            raise t.TraitError(f"viewed: {exc}") from None

    @t.validate("algorithm")
    def _v_algorithm(self, proposal):
        value = proposal["value"]
        by_title = {v.lower().replace(" ", ""): k for k, v in ALGORITHM_TITLES.items()}
        norm = by_title.get(str(value).lower().replace(" ", ""), value)
        if norm not in ALGORITHMS:
            raise t.TraitError(f"algorithm: {value!r} is not one of {list(ALGORITHMS)}")
        return norm

    @t.validate("label")
    def _v_label(self, proposal):
        value = proposal["value"]
        if value is None:
            return None
        k = self._session.num_classes(self.model_name, self.slice) if self.model_name else None
        if k is not None and not 0 <= value < k:
            if self._from_page("label"):  # e.g. sent just before a model switch: the prediction
                return None
            raise t.TraitError(
                f"label: {value} is not a class of the model; expected 0..{k - 1} or None "
                "(the predicted class)"
            )
        return value

    @t.validate("connection")
    def _v_connection(self, proposal):
        value = proposal["value"]
        n = self._session.n_inputs(self.slice) if self.slice else 1
        if not 0 <= value < n:
            raise t.TraitError(
                f"connection: {value} is not an input of slice {self.slice!r}; expected 0..{n - 1}"
            )
        return value

    @t.validate("depth")
    def _v_depth(self, proposal):
        value = proposal["value"]
        if value is None:
            return None
        depths = self._depths()
        if depths and value not in depths:
            if self._from_page("depth"):  # the page's slider was for another model: clamp
                return max([d for d in depths if d <= value] or [depths[0]])
            raise t.TraitError(
                f"depth: {value} is not a depth of model {self.model_name!r}; expected "
                f"{depths[0]}..{depths[-1]} or None (the last layer)"
            )
        return value

    @t.validate("slice")
    def _v_slice(self, proposal):
        value = proposal["value"]
        if value not in self._session.slices:
            raise t.TraitError(f"slice: {value!r} is not one of {list(self._session.slices)}")
        return value

    @t.validate("model_name")
    def _v_model_name(self, proposal):
        value = proposal["value"]
        if value not in self._session.models:
            raise t.TraitError(f"model_name: {value!r} is not one of {list(self._session.models)}")
        return value

    @t.validate("compare")
    def _v_compare(self, proposal):
        value = proposal["value"]
        if value is not None and value not in self._session.models:
            raise t.TraitError(
                f"compare: {value!r} is not one of {list(self._session.models)} or None"
            )
        return value

    @t.validate("colormap")
    def _v_colormap(self, proposal):
        value = proposal["value"]
        if value not in COLORMAPS:
            raise t.TraitError(f"colormap: {value!r} is not one of {list(COLORMAPS)}")
        return value

    @t.validate("opacity")
    def _v_opacity(self, proposal):
        value = proposal["value"]
        if not 0.0 <= value <= 1.0:
            raise t.TraitError(f"opacity: {value} is outside [0, 1]")
        return value

    @t.validate("tab")
    def _v_tab(self, proposal):
        value = proposal["value"]
        allowed = [CAM_TAB, INPUT_TAB, *self._session.visualizers]
        if value not in allowed:
            raise t.TraitError(f"tab: {value!r} is not one of {allowed}")
        return value

    # ------------------------------------------------------------- observers
    @t.observe("slice")
    def _on_slice(self, change):
        if change["old"] in ("", None):
            return
        n = self._slice_len()
        with self.hold_trait_notifications():
            self.connection = 0
            self.selected = list(range(min(INITIAL_SELECTION, n)))
            self.viewed = self.selected[0] if self.selected else None
            if self.color_by not in [k for k, _ in self._population.columns(self.slice)]:
                self.color_by = "label"

    @t.observe("selected")
    def _on_selected(self, change):
        if self.viewed is not None and self.viewed not in self.selected:
            self.viewed = self.selected[0] if self.selected else None
        elif self.viewed is None and self.selected:
            self.viewed = self.selected[0]

    @t.observe("viewed")
    def _on_viewed(self, change):
        if change["new"] is not None and change["new"] not in self.selected:
            self.selected = [*self.selected, change["new"]]

    @t.observe("model_name")
    def _on_model(self, change):
        if change["old"] in ("", None) or not self.slice:
            return
        k = self._session.num_classes(self.model_name, self.slice)
        if self.label is not None and self.label >= k:
            self.label = None
        if self.depth is not None and self.depth not in self._depths():
            self.depth = None

    # ---------------------------------------------------------------- python
    def _key(self, model_name: str | None = None, sample_id: int | None = None) -> AnalysisKey:
        return AnalysisKey(
            model=model_name or self.model_name,
            slice=self.slice,
            id=self.viewed if sample_id is None else sample_id,
            algorithm=self.algorithm,
            label=self.label,
            connection=self.connection,
        )

    def _depths(self) -> list[int]:
        sample_id = self.viewed if self.viewed is not None else 0
        if not self._slice_len():
            return []
        return list(self._session.analysis(self._key(sample_id=sample_id)).depths)

    @property
    def result(self):
        """The CamResult of the viewed sample (``None`` when no sample is viewed)."""
        if self.viewed is None:
            return None
        return self._session.analysis(self._key())

    @property
    def sample(self):
        """The viewed sample as a visualizer sees it (``None`` when no sample is viewed)."""
        if self.viewed is None:
            return None
        return self._session.sample(self.slice, self.viewed, self.connection)

    def overlay(self, depth: int | None | str = "current") -> np.ndarray:
        """The current overlay as a uint8 (H, W, 3) array: the input with the heatmap over it
        (the trait ``depth`` unless given; colormap and opacity from the traits)."""
        res = self.result
        if res is None:
            raise ValueError("overlay: no sample is viewed; set lens.viewed or lens.selected")
        d = self.depth if depth == "current" else depth
        heat = res.heatmap(d)[0]
        image = self._session.image(self.slice, self.viewed, self.connection)
        h, w = heat.shape
        if image.shape[:2] != (h, w):
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
        return blend(image, heat, self.colormap, float(self.opacity))

    def export(self, path: str | pathlib.Path, depth: int | None | str = "current") -> pathlib.Path:
        """Write the current overlay to ``path`` as a PNG; returns the path."""
        path = pathlib.Path(path)
        Image.fromarray(self.overlay(depth)).save(path, format="PNG")
        return path

    def similar(self, ids: Any = None, k: int = DEFAULT_K) -> list[tuple[int, float]]:
        """The ``k`` samples most similar to ``ids`` (default: the selection), the ids
        themselves left out: ``[(id, cosine similarity), ...]``, most similar first. Exact
        cosine similarity of the features (``embed_layer``), with torch on the model's device;
        the features are computed first if they are not yet. ``k``: 1..N - len(ids)."""
        if ids is None:
            ids = list(self.selected)
        return self._population.similar(self.model_name, self.slice, ids, k)

    def population(self) -> dict:
        """The population of the current model and slice (computed if needed): ``features``
        (N, D), ``coords`` (N, 2) as shown (UMAP once ready, else PCA), ``method``, ``layer``,
        ``note``."""
        st = self._population.ensure(self.model_name, self.slice)
        return {
            "features": st.features,
            "coords": st.coords,
            "method": st.method,
            "layer": st.layer,
            "note": st.note,
        }

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until the page's pending requests are answered (for scripts and tests)."""
        ok = True
        for worker in (self._worker, self._stats_worker, self._pop_worker):
            if worker is not None:
                ok = worker.wait_idle(timeout) and ok
        return ok

    def wait_umap(self, timeout: float = 120.0) -> bool:
        """Wait until the UMAP map of the current model and slice is ready (or has fallen back
        to PCA); False on timeout. Starts nothing."""
        st = self._population.state(self.model_name, self.slice)
        if st.background is None:
            return st.umap is not None
        return st.done.wait(timeout)

    def close(self) -> None:
        for name in ("_worker", "_stats_worker", "_pop_worker"):
            worker = getattr(self, name, None)
            if worker is not None:
                worker.close()
        pop = getattr(self, "_population", None)
        if pop is not None:
            pop.close()
        super().close()

    # -------------------------------------------------------------- messages
    def _send_error(self, message: str, **extra: Any) -> None:
        self.send({"type": "error", "message": message, **extra})

    def _on_msg(self, _widget, content, buffers) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind == "add":
                self._add_sample(content.get("id"))
            elif kind == "select_all":
                self.selected = list(range(self._slice_len()))
            elif kind == "pick":
                self._add_sample(content.get("id"))
            elif kind == "select_ids":
                self._select_ids(content, buffers)
            elif kind in ("population", "similar"):
                self._submit(kind, content)
            elif kind in ("analyze", "rows", "stats", "visual", "plotly_js", "thumb"):
                self._submit(kind, content)
            else:
                self._send_error(f"unknown request type {kind!r}")
        except Exception as exc:  # shown in the widget; the widget stays usable
            self._send_error(f"{type(exc).__name__}: {exc}", rid=content.get("rid"))

    def _add_sample(self, raw: Any) -> None:
        text = str(raw).strip() if raw is not None else ""
        try:
            value: Any = int(text)
        except ValueError:
            value = text
        sample_id = self._session.check_id(self.slice, value)
        if sample_id not in self.selected:
            self.selected = [*self.selected, sample_id]
        self.viewed = sample_id

    def _select_ids(self, content: dict, buffers: list) -> None:
        """A box/lasso selection: ids as one uint32 buffer; mode "replace" or "add"."""
        if buffers:
            ids = np.frombuffer(memoryview(buffers[0]).tobytes(), dtype="<u4").tolist()
        else:
            ids = [int(i) for i in content.get("ids") or []]
        if content.get("slice") not in (None, self.slice):
            return  # drawn on another slice's scatter: stale
        n = self._slice_len()
        bad = [i for i in ids if not 0 <= i < n]
        if bad:
            raise ValueError(f"selection: sample id {bad[0]} is out of range 0..{n - 1}")
        if content.get("mode") == "add":
            have = set(self.selected)
            ids = [*self.selected, *[i for i in ids if i not in have]]
        if not ids:
            return
        with self.hold_trait_notifications():
            self.selected = ids
            if self.viewed not in set(ids):
                self.viewed = ids[0]

    def _submit(self, kind: str, content: dict) -> None:
        if not self._background:
            self._handle(kind, content)
            return
        if kind in ("population", "similar"):  # slow (the whole slice): their own thread
            if self._pop_worker is None:
                self._pop_worker = LatestWorker(self._handle, ("population", "similar"))
            self._pop_worker.submit(kind, content)
            return
        if kind == "stats":  # slow (the whole slice): its own thread, so analyses interleave
            if self._stats_worker is None:
                self._stats_worker = LatestWorker(self._handle, ("stats",))
            self._stats_worker.submit(kind, content)
            return
        if self._worker is None:
            self._worker = LatestWorker(
                self._handle, ("analyze", "rows", "visual", "thumb", "plotly_js")
            )
        self._worker.submit(kind, content)

    def _handle(self, kind: str, content: dict) -> None:
        rid = content.get("rid")
        s = self._session
        try:
            if kind == "analyze":
                keys = content.get("keys") or []
                images = content.get("images") or [True] * len(keys)
                for raw_key, with_image in zip(keys, images, strict=False):
                    key = AnalysisKey.from_dict(raw_key)
                    try:
                        meta, buffers = s.payload(key, with_image=bool(with_image))
                    except (ValueError, TypeError, RuntimeError, KeyError, IndexError) as exc:
                        self.send(
                            {
                                "type": "error",
                                "rid": rid,
                                "key": raw_key,
                                "message": f"{type(exc).__name__}: {exc}",
                            }
                        )
                        continue
                    meta["rid"] = rid
                    self.send(meta, buffers=buffers)
            elif kind == "stats":
                msg = s.stats_message(str(content["model"]), str(content["slice"]))
                msg["rid"] = rid
                self.send(msg)
            elif kind == "rows":
                ids = [int(i) for i in content.get("ids") or []]
                meta, buffers = s.rows(str(content["model"]), str(content["slice"]), ids)
                meta["rid"] = rid
                meta["page"] = content.get("page")
                self.send(meta, buffers=buffers)
            elif kind == "visual":
                name = str(content["name"])
                slice_name, sample_id = str(content["slice"]), int(content["id"])
                connection = int(content.get("connection", 0))
                try:
                    sample = s.sample(slice_name, sample_id, connection)
                except Exception as exc:
                    meta, buffers = {"kind": "error", "message": f"{type(exc).__name__}: {exc}"}, []
                else:
                    meta, buffers = render_visual(s.visualizers[name], sample)
                meta.update(
                    type="visual",
                    rid=rid,
                    name=name,
                    slice=slice_name,
                    id=sample_id,
                    connection=connection,
                )
                self.send(meta, buffers=buffers)
            elif kind == "plotly_js":
                self.send({"type": "plotly_js", "rid": rid}, buffers=[plotly_js_bytes()])
            elif kind == "thumb":
                slice_name, sample_id = str(content["slice"]), int(content["id"])
                img = s.image(slice_name, sample_id, 0)
                self.send(
                    {"type": "thumb", "rid": rid, "slice": slice_name, "id": sample_id},
                    buffers=[png_bytes(img, size=(THUMB_HOVER, THUMB_HOVER))],
                )
            elif kind == "population":
                self._handle_population(content)
            elif kind == "similar":
                self._handle_similar(content)
        except Exception as exc:  # reported in the widget, never kills the worker
            self._send_error(f"{type(exc).__name__}: {exc}", rid=rid, request=kind)

    # ----------------------------------------------------------- population
    def _handle_population(self, content: dict) -> None:
        rid = content.get("rid")
        model_name, slice_name = str(content["model"]), str(content["slice"])
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done in (0, total) or now - last[0] > 0.1:
                last[0] = now
                self.send(
                    {
                        "type": "population_progress",
                        "model": model_name,
                        "slice": slice_name,
                        "done": int(done),
                        "total": int(total),
                    }
                )

        def on_umap(st) -> None:
            try:
                meta = {
                    "type": "population_coords",
                    "model": st.model,
                    "slice": st.slice,
                    "method": st.method,
                    "note": st.note,
                    "umap_pending": False,
                }
                coords = st.coords
                self.send(meta, buffers=[pack_coords(coords)])
            except Exception:  # the comm may be closed by now
                pass

        try:
            self._population.ensure(model_name, slice_name, progress=progress, on_umap=on_umap)
            meta, buffers = self._population.message(model_name, slice_name)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            self.send(
                {
                    "type": "population_error",
                    "rid": rid,
                    "model": model_name,
                    "slice": slice_name,
                    "message": message,
                }
            )
            self._send_error(message, rid=rid, request="population")
            return
        meta["rid"] = rid
        self.send(meta, buffers=buffers)

    def _handle_similar(self, content: dict) -> None:
        rid = content.get("rid")
        ids = content.get("ids")
        if ids is None:
            ids = list(self.selected)
        k = content.get("k", DEFAULT_K)
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        try:
            found = self._population.similar(
                str(content.get("model", self.model_name)),
                str(content.get("slice", self.slice)),
                [int(i) for i in ids],
                k,
            )
        except Exception as exc:
            self._send_error(f"Fetch similar: {type(exc).__name__}: {exc}", rid=rid)
            return
        self.send(
            {
                "type": "similar",
                "rid": rid,
                "model": content.get("model", self.model_name),
                "slice": content.get("slice", self.slice),
                "query": [int(i) for i in ids],
                "ids": [i for i, _ in found],
                "similarities": [s for _, s in found],
            }
        )
