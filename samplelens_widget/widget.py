"""``SampleLens``: the Sample Analysis widget (anywidget): its traits, their checks, and the
dispatch table of the page's requests.

The computations live elsewhere: ``session.py`` (data, analyses, slice statistics),
``population_view.py`` (the scatter), ``answers.py`` (the background requests),
``workers.py`` (threads and locks), ``arguments.py`` (what a user passes),
``protocol/`` (the messages).
"""

from __future__ import annotations

import inspect
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, overload

import anywidget
import numpy as np
import traitlets as t
from PIL import Image
from torch import nn

from samplelens_widget import arguments as check
from samplelens_widget import selection
from samplelens_widget import snapshot as _snapshot
from samplelens_widget.analyses import AnalysisKey
from samplelens_widget.answers import DEFAULT_K, Answers
from samplelens_widget.cam import ALGORITHMS, CamResult
from samplelens_widget.cam.faithfulness import Faithfulness
from samplelens_widget.cam.layouts import LayoutSpec
from samplelens_widget.data import COLORMAPS, Sample, blend
from samplelens_widget.population.cache import USER_CACHE_DIR
from samplelens_widget.population_view import Population
from samplelens_widget.protocol import REQUESTS, ProtocolError, decode_request, replies
from samplelens_widget.protocol.messages import Info
from samplelens_widget.session import Session
from samplelens_widget.trait_types import Index, IndexList, LabelTrait
from samplelens_widget.trust import (
    CURRENT,
    STEPS,
    TrustAnswers,
    faithfulness_of,
    key_for,
    sanity_of,
)
from samplelens_widget.workers import CLOSE_TIMEOUT_S, WidgetClosed, Workers

__all__ = ["SampleLens"]

_STATIC = pathlib.Path(__file__).parent / "static"
_ESM_PATH = _STATIC / "widget.js"
_BUILD_HINT = (
    "The widget's front end is not built: {path} is missing. Build it with "
    "`npm install && npm run build` in the repository root, or install the package with "
    "`pip install .` (which runs the build)."
)
INITIAL_SELECTION = 12
CAM_TAB, INPUT_TAB = check.BUILTIN_TABS
ALGORITHM_TITLES = {name: algo.title for name, algo in ALGORITHMS.items()}
Handler = Callable[[dict[str, Any], list[bytes]], None]
T = TypeVar("T")


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
        display: ``fn(input (C, H, W))`` returning the picture of an input (uint8 ``(H, W, 3)``
            or ``(H, W)`` array, PIL image, or floats in [0, 1] HWC or CHW). The picture (viewer,
            thumbnails, ``export``, ``sample.image``) is ``display``'s, else the dataset's
            ``to_display(i)``, else the input with the dataset's ``Normalize`` steps inverted
            (found in its ``transform``, ``Compose`` and ``Subset`` wrappers), else the input as
            it is (uint8, or floats in [0, 1]) or min-max scaled. A ``display`` that fails on a
            sample falls back to the next of those, with one warning (``samplelens_widget.
            display``).

    Traits (read and set from Python; the page follows, and the page sets them too):
        selected (list[int]): ids of the selected samples in the current slice.
        viewed (int | None): the sample shown in the viewer (always one of ``selected``).
        algorithm (str): ``"gradcam"``, ``"layercam"`` or ``"focus_layercam"``.
        label (int | str | None): what the maps explain: a class, ``None`` (the predicted
            class) or ``"loss"`` (the sample's loss against its true label: what pushes the
            model toward its mistake).
        contrast (int | None): a second class: the maps explain ``label`` (or the predicted
            class) rather than it, the difference of the two scores.
        connection (int): the input the heatmap belongs to (multi-input models).
        depth (int | None): the layer depth shown; ``None`` = the last layer.
        slice (str): the current data slice.
        model_name (str): the current model; compare (str | None): a second model shown side by
            side with the same sample, label and depth.
        colormap (str): one of ``jet``, ``viridis``, ``inferno``, ``turbo``, ``gray``.
        opacity (float): heatmap opacity in [0, 1].
        tab (str): the viewer tab: ``"CAM"``, ``"Input"`` or a visualizer's name.
        grid (bool): show the selected samples as a grid of overlays.
        side_panel (str): the panel beside the controller: ``"errors"`` (the error analysis)
            or ``"trust"`` (the Trust view, computed only while it shows).
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
    ``lens.faithfulness()`` (deletion / insertion per depth, with random and edge baselines) and
    ``lens.sanity_check()`` (the randomisation test) answer "can I trust this map?" for the
    viewed sample; the page's Trust tab (beside the error analysis) plots the first, filled in
    as it is computed, and runs the second.
``lens.close()`` ends the widget's threads (named ``samplelens-<n>-interactive``, ``-stats``,
``-population``, ``-trust``, ``-sanity``, ``-umap``); the interpreter's exit (a script's end,
a kernel's shutdown or restart) stops them too, before the ``atexit`` handlers run (``workers.py``).

    Page and kernel: the traits above sync both ways; everything else travels as the messages
    declared in ``samplelens_widget/protocol/messages.py`` (the page's ``js/wire.ts`` is
    generated from them). Each request kind has one handler in this class's dispatch table and
    a thread (``workers.py``): analyses, list rows, visualizers and thumbnails on one worker
    (the newest request of each kind wins), a slice's statistics on another, the population
    on a third; selections change the traits at once. Answers name their key; the page caches
    them and shows one only while it still wants that key, so a stale answer never replaces
    a newer one. Depth changes are drawn in the page from the maps it holds; the ``depth``
    trait follows. Selections travel as messages, never as traits that a hover could
    overwrite; ``selected`` stays the one selection of page and Python.
    """

    _esm = _ESM_PATH

    selected = IndexList().tag(sync=True)
    viewed = Index(None, allow_none=True).tag(sync=True)
    algorithm = t.Unicode("gradcam").tag(sync=True)
    label = LabelTrait().tag(sync=True)
    contrast = Index(None, allow_none=True).tag(sync=True)
    connection = Index(0).tag(sync=True)
    depth = Index(None, allow_none=True).tag(sync=True)
    slice = t.Unicode("").tag(sync=True)
    model_name = t.Unicode("").tag(sync=True)
    compare = t.Unicode(None, allow_none=True).tag(sync=True)
    colormap = t.Unicode("jet").tag(sync=True)
    opacity = t.Float(0.5).tag(sync=True)
    tab = t.Unicode(CAM_TAB).tag(sync=True)
    grid = t.Bool(False).tag(sync=True)
    color_by = t.Unicode("label").tag(sync=True)
    side_panel = t.Enum(["errors", "trust"], default_value="errors").tag(sync=True)
    _info = t.Dict().tag(sync=True)

    def __init__(
        self,
        model: nn.Module | None,
        data: Any = None,
        *,
        slices: Mapping[str, Any] | None = None,
        label_names: list[str] | Mapping[int, str] | None = None,
        visualizers: Mapping[str, Callable[..., Any]] | None = None,
        device: Any = None,
        models: Mapping[str, nn.Module] | None = None,
        selected: list[int] | None = None,
        background: bool = True,
        embed_layer: str | None = None,
        cache_dir: Any = USER_CACHE_DIR,
        metadata: Any = None,
        projection: str | None = None,
        layout: LayoutSpec = None,
        task: str | None = None,
        display: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        check.check_keywords(kwargs, _PARAMETERS, self._public_traits())
        if not _ESM_PATH.exists():
            raise RuntimeError(_BUILD_HINT.format(path=_ESM_PATH))
        if not isinstance(getattr(type(self), "_esm", None), str) and not hasattr(
            type(self)._esm, "changed"
        ):  # the bundle was built after this module was imported
            self._esm = _ESM_PATH.read_text(encoding="utf-8")  # type: ignore[assignment]

        all_models, initial_model = check.check_models(model, models)
        all_slices, initial_slice = check.check_slices(data, slices)
        vis = check.check_visualizers(visualizers)
        projection = check.check_projection(projection)
        embed_layer = check.check_embed_layer(embed_layer)
        s = self._session = Session(
            all_models, all_slices, label_names=check.check_label_names(label_names),
            visualizers=vis, device=device,
            layout=layout, task=task, display=display,
        )
        self._population = Population(
            s,
            embed_layer=embed_layer,
            cache_dir=cache_dir,
            projection=projection,
            metadata=check.metadata_by_slice(metadata, all_slices, initial_slice, s.slice_len),
        )
        self._population.check_embed_layer(initial_model)
        #: the threads (named ``samplelens-<n>-...``), stopped by ``close()`` or at exit
        self._workers = Workers(self._run, background)
        self._population.umap_thread_name = f"{self._workers.prefix}-umap"
        answers = self._answers = Answers(
            s, self._population, self._post, self._current, closed=self._workers.closed
        )
        s.stats.passes.stop_check = answers.check_open  # a closed widget's pass stops
        trust = TrustAnswers(s, self._post, self._workers.superseded)
        #: the one dispatch table: request kind -> handler (threads: ``protocol.REQUESTS``)
        self._handlers: dict[str, Handler] = {
            "analyze": lambda req, _: answers.analyze(req),
            "rows": lambda req, _: answers.rows(req),
            "visual": lambda req, _: answers.visual(req),
            "thumb": lambda req, _: answers.thumb(req),
            "plotly_js": lambda req, _: answers.plotly_js(req),
            "stats": lambda req, _: answers.stats(req),
            "values": lambda req, _: answers.values(req),
            "population": lambda req, _: answers.population(req),
            "similar": lambda req, _: answers.similar(req),
            "add": lambda req, _: self._add_sample(req["id"]),
            "select_all": lambda req, _: self._select_all(),
            "pick": lambda req, _: self._add_sample(req["id"]),
            "select_ids": self._select_ids,
            "trust": lambda req, _: trust.curve(req),
            "sanity": lambda req, _: trust.sanity(req),
        }
        # the public traits given as keywords are set once the slice, the model and the
        # selection are (``viewed=7`` is checked against the slice, ``depth=`` against its
        # depths), in the order given
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in self._public_traits()}
        super().__init__(**kwargs)

        k = s.num_classes(initial_model, initial_slice)
        info: Info = {
            "models": list(all_models),
            "slices": {name: s.slice_len(name) for name in all_slices},
            "n_inputs": {name: s.n_inputs(name) for name in all_slices},
            "label_names": s.label_names(k),
            "num_classes": k,
            "algorithms": [(a, ALGORITHM_TITLES[a]) for a in ALGORITHMS],
            "colormaps": list(COLORMAPS),
            "visualizers": list(vis),
            "similar": True,
            "projection": projection,
            "columns": {name: self._population.columns(name) for name in all_slices},
        }
        self._info = dict(info)
        with self.hold_trait_notifications():
            self.slice = initial_slice
            self.model_name = initial_model
        n = s.slice_len(initial_slice)
        self.selected = list(range(min(INITIAL_SELECTION, n))) if selected is None else selected
        if self.selected and self.viewed is None:
            self.viewed = self.selected[0]
        self._learn_depths()
        task = s.analyses.task(initial_model)
        if self.color_by == "label" and task in ("segmentation", "multilabel"):
            # no one class label per sample: colour by the mean pixel loss, or by whether the
            # whole label set is right
            self.color_by = "loss" if task == "segmentation" else "correct"
        for name, value in given.items():
            setattr(self, name, value)
        self.on_msg(self._on_msg)

    @classmethod
    def _public_traits(cls) -> list[str]:
        """The traits a keyword argument may set (``SampleLens(..., algorithm="layercam")``)."""
        return sorted(n for n in cls.class_own_traits() if not n.startswith("_"))

    # ------------------------------------------------------------ validation
    def _from_page(self, name: str) -> bool:
        """True while ipywidgets applies a value of ``name`` sent by the page."""
        return name in (getattr(self, "_property_lock", None) or {})

    def _slice_len(self) -> int:
        return self._session.slice_len(self.slice) if self.slice else 0

    def _checked(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, its ValueError as a TraitError that starts with the trait's name."""
        try:
            return fn(*args)
        except ValueError as exc:
            text = str(exc)
            text = text if text.startswith(f"{name}: ") else f"{name}: {text}"
            raise t.TraitError(text) from None

    @t.validate("selected")
    def _v_selected(self, proposal: dict[str, Any]) -> list[int]:
        n, slice_name = self._slice_len(), self.slice

        def check_id(i: Any) -> int:
            return self._session.check_id(slice_name, i)

        return self._checked("selected", check.selected, proposal["value"], n, check_id)

    @t.validate("color_by")
    def _v_color_by(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        allowed = [k for k, _ in self._population.columns(self.slice)] if self.slice else []
        if value not in allowed:
            if self._from_page("color_by"):
                return "label"
            raise t.TraitError(f"color_by: {value!r} is not one of {allowed}")
        return str(value)

    @t.validate("viewed")
    def _v_viewed(self, proposal: dict[str, Any]) -> int | None:
        value = proposal["value"]
        if value is None:
            return None
        return self._checked("viewed", self._session.check_id, self.slice, value)

    @t.validate("algorithm")
    def _v_algorithm(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        return self._checked("algorithm", check.algorithm, value, ALGORITHM_TITLES)

    @t.validate("label")
    def _v_label(self, proposal: dict[str, Any]) -> int | str | None:
        k = self._session.known_num_classes(self.model_name) if self.model_name else None
        page = self._from_page("label")
        return self._checked("label", check.label, proposal["value"], k, page)

    @t.validate("contrast")
    def _v_contrast(self, proposal: dict[str, Any]) -> int | None:
        k = self._session.known_num_classes(self.model_name) if self.model_name else None
        page = self._from_page("contrast")
        return self._checked("contrast", check.contrast, proposal["value"], k, page)

    @t.validate("connection")
    def _v_connection(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        n = self._session.n_inputs(self.slice) if self.slice else 1
        if not 0 <= value < n:
            raise t.TraitError(
                f"connection: {value} is not an input of slice {self.slice!r}; expected 0..{n - 1}"
            )
        return int(value)

    @t.validate("depth")
    def _v_depth(self, proposal: dict[str, Any]) -> int | None:
        depths = self._session.analyses.depths(self.model_name) if self.model_name else None
        page, name = self._from_page("depth"), self.model_name
        return self._checked("depth", check.depth, proposal["value"], depths, name, page)

    @t.validate("slice")
    def _v_slice(self, proposal: dict[str, Any]) -> str:
        allowed = list(self._session.slices)
        return self._checked("slice", check.one_of, proposal["value"], allowed)

    @t.validate("model_name")
    def _v_model_name(self, proposal: dict[str, Any]) -> str:
        allowed = list(self._session.models)
        return self._checked("model_name", check.one_of, proposal["value"], allowed)

    @t.validate("compare")
    def _v_compare(self, proposal: dict[str, Any]) -> str | None:
        allowed = list(self._session.models)
        if proposal["value"] is None:
            return None
        return self._checked("compare", check.one_of, proposal["value"], allowed)

    @t.validate("colormap")
    def _v_colormap(self, proposal: dict[str, Any]) -> str:
        allowed = list(COLORMAPS)
        return self._checked("colormap", check.one_of, proposal["value"], allowed)

    @t.validate("opacity")
    def _v_opacity(self, proposal: dict[str, Any]) -> float:
        value = proposal["value"]
        if not 0.0 <= value <= 1.0:
            raise t.TraitError(f"opacity: {value} is outside [0, 1]")
        return float(value)

    @t.validate("tab")
    def _v_tab(self, proposal: dict[str, Any]) -> str:
        allowed = [CAM_TAB, INPUT_TAB, *self._session.visualizers]
        return self._checked("tab", check.one_of, proposal["value"], allowed)

    # ------------------------------------------------------------- observers
    @t.observe("slice")
    def _on_slice(self, change: dict[str, Any]) -> None:
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
    def _on_selected(self, change: dict[str, Any]) -> None:
        if self.viewed is not None and self.viewed not in self.selected:
            self.viewed = self.selected[0] if self.selected else None
        elif self.viewed is None and self.selected:
            self.viewed = self.selected[0]

    @t.observe("viewed")
    def _on_viewed(self, change: dict[str, Any]) -> None:
        if change["new"] is not None and change["new"] not in self.selected:
            self.selected = [*self.selected, change["new"]]

    @t.observe("model_name")
    def _on_model(self, change: dict[str, Any]) -> None:
        """A new model: learn its classes and depths (an observer may run the model; the
        validators only read what is known), then drop a label or depth it does not have."""
        if change["old"] in ("", None) or not self.slice:
            return
        k = self._session.num_classes(self.model_name, self.slice)
        if isinstance(self.label, int) and self.label >= k:
            self.label = None
        if self.contrast is not None and self.contrast >= k:
            self.contrast = None
        depths = self._learn_depths()
        if self.depth is not None and depths and self.depth not in depths:
            self.depth = None

    def _learn_depths(self) -> list[int] | None:
        """The current model's depths, from one analysis of the viewed sample (the one the page
        asks for first). None when that analysis fails: the page shows why."""
        if not self._slice_len():
            return None
        try:
            return self._session.depths(self._key(sample_id=self.viewed or 0))
        except Exception:
            return None

    # ---------------------------------------------------------------- python
    def _key(self, model_name: str | None = None, sample_id: int | None = None) -> AnalysisKey:
        sid = self.viewed if sample_id is None else sample_id
        return AnalysisKey(
            model=model_name or self.model_name,
            slice=self.slice,
            id=0 if sid is None else sid,
            algorithm=self.algorithm,
            label=self.label,
            connection=self.connection,
            contrast=self.contrast,
        )

    def _current(self) -> tuple[str, str, list[int]]:
        return self.model_name, self.slice, list(self.selected)

    def _check_open(self, what: str) -> None:
        workers = getattr(self, "_workers", None)
        if workers is not None and workers.closed.is_set():
            raise WidgetClosed(
                f"{what}: this SampleLens is closed (lens.close() was called, or the "
                "interpreter is exiting); create a new one"
            )

    @property
    def result(self) -> CamResult | None:
        """The CamResult of the viewed sample (``None`` when no sample is viewed)."""
        self._check_open("result")
        if self.viewed is None:
            return None
        return self._session.analysis(self._key())

    @property
    def sample(self) -> Sample | None:
        """The viewed sample as a visualizer sees it (``None`` when no sample is viewed)."""
        self._check_open("sample")
        if self.viewed is None:
            return None
        return self._session.sample(self.slice, self.viewed, self.connection)

    def overlay(self, depth: int | None | str = "current") -> np.ndarray:
        """The overlay of the viewed sample as a uint8 (H, W, 3) array: the input with the
        heatmap over it, colormap and opacity from the traits. ``depth``: ``"current"`` (the
        trait ``depth``), a depth of the model (an int) or ``None`` (the last layer)."""
        res, image = self._viewed("overlay")
        return self._blend(res, image, self._depth_arg(res, depth, "overlay"))

    #: what ``export`` writes, by the path's suffix: (PIL format, its save options)
    EXPORT_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
        ".png": ("PNG", {}),
        ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),  # 4:4:4: the colours are the map
        ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
        ".webp": ("WEBP", {"lossless": True}),
    }

    @overload
    def export(self, path: str | pathlib.Path, depth: Literal["all"]) -> list[pathlib.Path]: ...

    @overload
    def export(
        self, path: str | pathlib.Path, depth: int | None | Literal["current"] = "current"
    ) -> pathlib.Path: ...

    def export(
        self, path: str | pathlib.Path, depth: int | None | str = "current"
    ) -> pathlib.Path | list[pathlib.Path]:
        """Write the overlay of the viewed sample (``overlay(depth)``) to ``path`` in the format
        its suffix names: ``.png``, ``.jpg``/``.jpeg`` (JPEG, quality 95, no chroma subsampling)
        or ``.webp`` (lossless); returns the path. Another suffix is a ``ValueError``.

        ``depth``: ``"current"`` (the trait), a depth of the model, ``None`` (the last layer),
        or ``"all"``: every depth, one file per depth next to ``path`` — ``x.png`` gives
        ``x-depth01-conv1.png``, ``x-depth02-layer1.png``, ... (the depth, then the layer that
        shows it, as ``CamResult.layer_at``) — and returns their paths in depth order. Files
        rather than one contact sheet: each is exactly the viewer's overlay at that depth, at
        the input's resolution, named by its layer, ready for a slide or a diff; a sheet is one
        ``np.concatenate([lens.overlay(d) for d in lens.result.depths], axis=1)`` away, while
        the depths cannot be cut back out of a sheet.
        """
        if not isinstance(path, (str, pathlib.Path)):
            raise TypeError(f"path: expected a str or pathlib.Path, got {type(path).__name__}")
        path = pathlib.Path(path)
        suffix = path.suffix.lower()
        if suffix not in self.EXPORT_FORMATS:
            allowed = ", ".join(repr(s) for s in self.EXPORT_FORMATS)
            said = f"has suffix {path.suffix!r}" if path.suffix else "has no suffix"
            raise ValueError(f"path: {str(path)!r} {said}; allowed: {allowed}")
        fmt, options = self.EXPORT_FORMATS[suffix]
        res, image = self._viewed("export")
        if depth == "all":
            depths = [int(d) for d in res.depths]
            width = max(2, len(str(depths[-1])))
            paths = []
            for d in depths:
                layer = "".join(
                    c if c.isalnum() or c in "._-" else "_" for c in res.layer_at(d).name
                )
                p = path.with_name(f"{path.stem}-depth{d:0{width}d}-{layer}{path.suffix}")
                Image.fromarray(self._blend(res, image, d)).save(p, format=fmt, **options)
                paths.append(p)
            return paths
        one = self._depth_arg(res, depth, "export")
        Image.fromarray(self._blend(res, image, one)).save(path, format=fmt, **options)
        return path

    def _viewed(self, what: str) -> tuple[CamResult, np.ndarray]:
        """The CamResult and the picture of the viewed sample (``overlay``, ``export``)."""
        res = self.result
        if res is None or self.viewed is None:
            raise ValueError(f"{what}: no sample is viewed; set lens.viewed or lens.selected")
        return res, self._session.image(self.slice, self.viewed, self.connection)

    def _depth_arg(self, res: CamResult, depth: object, what: str) -> int | None:
        """``overlay``'s / ``export``'s ``depth`` as a depth of ``res`` or None (the last)."""
        if isinstance(depth, str) and depth == "current":
            return None if self.depth is None else int(self.depth)
        depths = [int(d) for d in res.depths]
        if depth is None or (
            isinstance(depth, (int, np.integer)) and not isinstance(depth, bool)
            and int(depth) in depths
        ):
            return None if depth is None else int(depth)
        allowed = (
            f"one of the model's depths {depths}, None (the last layer), 'current' (the trait "
            f"depth, now {self.depth!r})" + (" or 'all' (one file per depth)"
                                              if what == "export" else "")
        )
        kind = ValueError if isinstance(depth, (int, np.integer, str)) else TypeError
        raise kind(f"depth: {depth!r} is not allowed; allowed: {allowed}")

    def _blend(self, res: CamResult, image: np.ndarray, depth: int | None) -> np.ndarray:
        heat = res.heatmap(depth)[0]
        h, w = heat.shape
        if image.shape[:2] != (h, w):
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
        return blend(image, heat, self.colormap, float(self.opacity))

    def similar(self, ids: Any = None, k: int = DEFAULT_K) -> list[tuple[int, float]]:
        """The ``k`` samples most similar to ``ids`` (default: the selection), the ids
        themselves left out: ``[(id, cosine similarity), ...]``, most similar first. Exact
        cosine similarity of the features (``embed_layer``), with torch on the model's device;
        the features are computed first if they are not yet. ``k``: 1..N - len(ids)."""
        self._check_open("similar")
        if ids is None:
            ids = list(self.selected)
        return self._population.similar(self.model_name, self.slice, ids, k)

    def faithfulness(
        self,
        *,
        sample: int | None = None,
        label: int | str | None = CURRENT,
        contrast: int | str | None = CURRENT,
        algorithm: str | None = None,
        connection: int | None = None,
        depths: int | list[int] | None = None,
        steps: int = STEPS,
        baseline: Any = None,
        batch_size: int | None = None,
        draws: int = 3,
        seed: int = 0,
        precision: str = "float32",
    ) -> Faithfulness:
        """Deletion and insertion of the maps of the viewed sample (``sample=``: another id of
        the slice) for the current label, contrast, algorithm and connection (each may be
        given instead), at ``depths`` (``None``: all): ``CamEngine.faithfulness``'s
        ``Faithfulness`` (``.depths``, ``.deletion``, ``.insertion``, ``.baselines``,
        ``.summary()``), what the Trust view plots. ``steps``: 2 .. the input's pixels;
        ``precision``: ``"float32"`` or ``"bfloat16"`` (faster where the hardware has it)."""
        self._check_open("faithfulness")
        key = self._trust_key("faithfulness", sample, label, contrast, algorithm, connection)
        return faithfulness_of(
            self._session, key, depths, steps, baseline, batch_size=batch_size, draws=draws,
            seed=seed, precision=precision,
        )

    def sanity_check(
        self,
        *,
        sample: int | None = None,
        label: int | str | None = CURRENT,
        contrast: int | str | None = CURRENT,
        algorithm: str | None = None,
        connection: int | None = None,
        depth: int | str | None = CURRENT,
        stages: list[str] | None = None,
        model_factory: Callable[[], nn.Module] | None = None,
        seed: int = 0,
    ) -> list[tuple[str, float]]:
        """The randomisation test of the map of the viewed sample (or ``sample=``) at ``depth``
        (``"current"``: the trait; ``None``: the deepest) for the current label, contrast,
        algorithm and connection (each may be given instead): ``CamEngine.sanity_check``'s
        ``[(stage, Spearman rho), ...]``, on a copy of the model (``model_factory``: for a
        model that cannot be deep-copied); the Trust view's *Sanity check*."""
        self._check_open("sanity_check")
        key = self._trust_key("sanity_check", sample, label, contrast, algorithm, connection)
        at: Any = depth
        if isinstance(depth, str):
            if depth != CURRENT:
                raise ValueError(
                    f"depth: {depth!r} is not allowed; allowed: a depth of the model, None (the "
                    f"deepest) or {CURRENT!r} (the trait depth, now {self.depth!r})"
                )
            at = self.depth
        return sanity_of(self._session, key, at, stages, model_factory=model_factory, seed=seed)

    def _trust_key(
        self, what: str, sample: Any, label: Any, contrast: Any, algorithm: Any, connection: Any
    ) -> AnalysisKey:
        return key_for(
            self._session, self._key(), self.viewed, what, sample=sample, label=label,
            contrast=contrast, algorithm=algorithm, connection=connection,
            titles=ALGORITHM_TITLES,
        )

    def population(self) -> dict[str, Any]:
        """The population of the current model and slice (computed if needed): ``features``
        (N, D), ``coords`` (N, 2) as shown (UMAP once ready, else PCA), ``method``, ``layer``,
        ``note``."""
        self._check_open("population")
        st = self._population.ensure(self.model_name, self.slice)
        return {
            "features": st.features,
            "coords": st.coords,
            "method": st.method,
            "layer": st.layer,
            "note": st.note,
        }

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget, published after its snapshot: the picture of the last view that a
        saved notebook shows where the widget cannot run (``snapshot.py``)."""
        return _snapshot.repr_mimebundle(self, super()._repr_mimebundle_(**kwargs), **kwargs)

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until the page's pending requests are answered (for scripts and tests)."""
        return self._workers.wait(timeout)

    def wait_umap(self, timeout: float = 120.0) -> bool:
        """Wait until the UMAP map of the current model and slice is ready (or has fallen back
        to PCA); False on timeout. Starts nothing."""
        self._check_open("wait_umap")
        st = self._population.state(self.model_name, self.slice)
        if st.background is None:
            return st.umap is not None
        return st.done.wait(timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Close the widget and end its threads (``samplelens-<n>-...``): pending requests are
        dropped, a running pass over a slice stops between two batches, a UMAP fit is
        cancelled; waits for them, ``timeout`` seconds at most. Afterwards its methods raise
        ``WidgetClosed`` and messages from the page are ignored. Closing twice is fine. (The
        process's one UMAP warm-up, shared by all widgets, goes on; the exit leaves it.)"""
        deadline = time.monotonic() + timeout
        workers = getattr(self, "_workers", None)
        if workers is not None:
            workers.stop()
        pop = getattr(self, "_population", None)
        if pop is not None:
            pop.close(timeout)
        if workers is not None:
            workers.settle(max(0.0, deadline - time.monotonic()))
        super().close()

    # -------------------------------------------------------------- messages
    def _post(self, content: Any, buffers: list[bytes] | None = None) -> None:
        if self._workers.closed.is_set():  # closed: no page listens any more
            return
        self.send(content, buffers=buffers or None)

    def _on_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        """A message from the page: checked against its declaration, then run on its thread."""
        try:
            kind, request = decode_request(content)
        except ProtocolError as exc:
            rid = content.get("rid") if isinstance(content, dict) else None
            self._post(*replies.error(str(exc), rid))
            return
        self._workers.submit(kind, (request, list(buffers or [])))

    def _run(self, kind: str, job: tuple[dict[str, Any], list[bytes]]) -> None:
        request, buffers = job
        try:
            self._handlers[kind](request, buffers)
        except Exception as exc:  # shown in the widget; the widget and the worker stay usable
            request_kind = kind if REQUESTS[kind].thread != "comm" else None
            message = f"{type(exc).__name__}: {exc}"
            self._post(*replies.error(message, request.get("rid"), request=request_kind))

    def _add_sample(self, raw: Any) -> None:
        sample_id = selection.typed_id(raw, lambda v: self._session.check_id(self.slice, v))
        self.selected = selection.added(self.selected, sample_id)
        self.viewed = sample_id

    def _select_all(self) -> None:
        self.selected = list(range(self._slice_len()))

    def _select_ids(self, request: dict[str, Any], buffers: list[Any]) -> None:
        """A box/lasso selection (``selection.boxed``); one drawn on another slice is stale."""
        if request.get("slice") not in (None, self.slice):
            return
        mode, n = request.get("mode", "replace"), self._slice_len()
        ids = selection.boxed(self.selected, buffers, request.get("ids"), mode, n)
        if not ids:
            return
        with self.hold_trait_notifications():
            self.selected = ids
            if self.viewed not in set(ids):
                self.viewed = ids[0]


#: ``SampleLens``'s own keyword arguments (an unknown one is a TypeError naming the nearest)
_PARAMETERS = [
    p for p in inspect.signature(SampleLens.__init__).parameters if p not in ("self", "kwargs")
]
