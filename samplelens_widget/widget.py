"""``SampleLens``: the Sample Analysis widget (anywidget). Traits and message plumbing only;
the computations live in ``session.py``."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import anywidget
import numpy as np
import traitlets as t
from PIL import Image
from torch import nn

from samplelens_widget.data import COLORMAPS, blend
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
            all_models, all_slices, label_names=label_names, visualizers=vis, device=device
        )
        self._background = background
        self._worker: LatestWorker | None = None
        self._stats_worker: LatestWorker | None = None
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
            "similar": hasattr(self, "similar"),
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

    @t.validate("selected")
    def _v_selected(self, proposal):
        value = proposal["value"]
        out: list[int] = []
        for i in value:
            try:
                i = self._session.check_id(self.slice, i)
            except ValueError as exc:
                raise t.TraitError(f"selected: {exc}") from None
            if i not in out:
                out.append(i)
        return out

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

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until the page's pending requests are answered (for scripts and tests)."""
        ok = True
        for worker in (self._worker, self._stats_worker):
            if worker is not None:
                ok = worker.wait_idle(timeout) and ok
        return ok

    def close(self) -> None:
        for name in ("_worker", "_stats_worker"):
            worker = getattr(self, name, None)
            if worker is not None:
                worker.close()
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
            elif kind == "similar":
                fn = getattr(self, "similar", None)
                if fn is None:
                    self._send_error("Fetch similar needs the population view (coming)")
                else:
                    fn(content.get("ids") or self.selected, content.get("k", 8))
            elif kind in ("analyze", "rows", "stats", "visual", "plotly_js"):
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

    def _submit(self, kind: str, content: dict) -> None:
        if not self._background:
            self._handle(kind, content)
            return
        if kind == "stats":  # slow (the whole slice): its own thread, so analyses interleave
            if self._stats_worker is None:
                self._stats_worker = LatestWorker(self._handle, ("stats",))
            self._stats_worker.submit(kind, content)
            return
        if self._worker is None:
            self._worker = LatestWorker(self._handle, ("analyze", "rows", "visual", "plotly_js"))
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
        except Exception as exc:  # reported in the widget, never kills the worker
            self._send_error(f"{type(exc).__name__}: {exc}", rid=rid, request=kind)
