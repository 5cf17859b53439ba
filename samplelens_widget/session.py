"""Kernel-side state of a SampleLens: models, slices, data access and the stores behind them.

``Session`` holds the models (and one ``CamEngine`` each), the slices, the model lock, the
sample/image caches, the analysis store (``analyses``) and the slice statistics (``stats``).
It knows nothing of traitlets or the page's messages: ``protocol/replies.py`` builds those and
``widget.py`` wires both. The threads and locks: ``workers.py``.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from samplelens_widget import display as pictures
from samplelens_widget.analyses import LRU, AnalysisKey, AnalysisStore
from samplelens_widget.cam import CamEngine, CamResult
from samplelens_widget.cam.layouts import LayoutSpec
from samplelens_widget.data import Sample, png_bytes, split_item
from samplelens_widget.model_lock import ModelLock
from samplelens_widget.slice_stats import SliceStats

__all__ = ["Session"]

THUMB = 40

class Session:
    """Models, slices, caches and the computations behind one widget.

    ``models``: name -> nn.Module; ``slices``: name -> map-style dataset.
    All public methods are thread-safe: one lock (``lock``) around the models, one around the
    data's reads and caches.
    Slice predictions run in batches of ``batch_size``, taking the lock per batch, so that an
    interactive analysis never waits long behind them.
    ``display``: ``fn(input (C, H, W)) -> picture`` (see ``display.py`` for the precedence); one
    that returns no image on the first sample is a TypeError here.
    """

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        slices: Mapping[str, Any],
        *,
        label_names: list[str] | Mapping[int, str] | None = None,
        visualizers: Mapping[str, Callable[..., Any]] | None = None,
        device: torch.device | str | None = None,
        cache_size: int = 64,
        batch_size: int = 16,
        layout: LayoutSpec = None,
        task: str | None = None,
        display: Callable[..., Any] | None = None,
    ) -> None:
        self.display = pictures.check_display(display)
        if not models:
            raise ValueError("models: expected at least one model, got none")
        if not slices:
            raise ValueError("slices: expected at least one data set, got none")
        for name, ds in slices.items():
            if not hasattr(ds, "__len__") or not hasattr(ds, "__getitem__"):
                raise TypeError(
                    f"slices[{name!r}]: expected a map-style dataset (len() and [i]), "
                    f"got {type(ds).__name__}"
                )
        self.models = dict(models)
        self.slices = dict(slices)
        self.engines = {
            name: CamEngine(m, device=device, layout=layout, task=task)
            for name, m in self.models.items()
        }
        self.visualizers = dict(visualizers or {})
        for name, fn in self.visualizers.items():
            if not callable(fn):
                raise TypeError(f"visualizers[{name!r}]: expected a callable, got {fn!r}")
        #: the model lock: every forward and backward of a model
        self.lock = ModelLock()
        #: the data's lock: item reads and the item and picture caches below. Not the model
        #: lock: a thumbnail or a row's picture need not wait for a background batch's forward
        #: (taken inside the model lock by a pass's reads, never the other way round)
        self._data_lock = threading.RLock()
        self._items: LRU[tuple[tuple[torch.Tensor, ...], Any, Any]] = LRU(256)
        self._images: LRU[np.ndarray] = LRU(256)
        self._n_inputs: dict[str, int] = {}
        self._label_names_arg = label_names
        self._warned_names: set[str] = set()
        self._name_index: dict[str, int] | None = None
        self._display_warned: set[str] = set()  # display / to_display, once warned
        self._warned: set[tuple[str, int]] = set()
        self.analyses = AnalysisStore(self.engines, self.item, self.lock, cache_size)
        self.stats = SliceStats(
            self.models, self.engines, self.item, self.slice_len, self.lock, batch_size
        )
        self._probe_display()

    # ----------------------------------------------------------------- data
    def slice_len(self, slice_name: str) -> int:
        return len(self.slices[slice_name])

    def check_id(self, slice_name: str, sample_id: Any) -> int:
        """The id as an int, or a ValueError naming the id, the range and the slice."""
        n = self.slice_len(slice_name)
        # ints, numpy ints and integer-valued floats only: a string is no id ("1e2", "3")
        if isinstance(sample_id, (bool, np.bool_)) or not isinstance(
            sample_id, (int, np.integer)
        ):
            as_float = (
                float(sample_id) if isinstance(sample_id, (float, np.floating)) else math.nan
            )
            if not (math.isfinite(as_float) and as_float.is_integer()):
                raise ValueError(
                    f"sample id {sample_id!r} is not an integer; expected 0..{n - 1} "
                    f"for slice {slice_name!r}"
                )
            sample_id = int(as_float)
        checked = int(sample_id)
        if not 0 <= checked < n:
            raise ValueError(
                f"sample id {checked} is out of range 0..{n - 1} for slice {slice_name!r}"
            )
        return checked

    def item(self, slice_name: str, sample_id: int) -> tuple[tuple[torch.Tensor, ...], Any, Any]:
        """``(inputs, label, raw_item)`` of one sample (cached). A ``str`` label is a class name:
        its index in ``label_names``; a name that is not one (or no ``label_names``) reads as no
        label (the sample stays viewable: its maps, prediction and thumbnail need no label),
        with one warning per unknown name that names it and the known names."""
        key = (slice_name, sample_id)
        with self._data_lock:
            hit = self._items.get_item(key)
            if hit is None:
                raw = self.slices[slice_name][sample_id]
                inputs, label = split_item(raw)
                if isinstance(label, str):
                    label = self._class_of_name(label, slice_name, sample_id)
                hit = (inputs, label, raw)
                self._items.put(key, hit)
        return hit

    def _class_of_name(self, name: str, slice_name: str, sample_id: int) -> int | None:
        index = self._name_index
        if index is None:  # name -> class, the first class of a name given twice
            names = self._label_names_arg
            pairs = names.items() if isinstance(names, Mapping) else enumerate(names or [])
            index = self._name_index = {}
            for i, n in pairs:
                index.setdefault(str(n), int(i))
        if name in index:
            return index[name]
        if name not in self._warned_names:
            self._warned_names.add(name)
            known = list(index)
            allowed = (
                f"not one of label_names {known[:20]!r}{' ...' if len(known) > 20 else ''}"
                if known
                else "a class name, but no label_names were given to map it to a class"
            )
            warnings.warn(
                f"label {name!r} of sample {sample_id} of slice {slice_name!r} is {allowed}; "
                "samples with it have no true label (no loss, neither correct nor incorrect)",
                stacklevel=3,
            )
        return None

    def inputs(self, slice_name: str, sample_id: int) -> tuple[torch.Tensor, ...]:
        """The model inputs of one sample."""
        return self.item(slice_name, sample_id)[0]

    def n_inputs(self, slice_name: str) -> int:
        if slice_name not in self._n_inputs:
            self._n_inputs[slice_name] = (
                len(self.item(slice_name, 0)[0]) if self.slice_len(slice_name) else 1
            )
        return self._n_inputs[slice_name]

    def _probe_display(self) -> None:
        """``display`` on the first sample: a TypeError if it returns no image (an error it
        raises itself is warned when the picture is made, as for any sample)."""
        name = next((n for n in self.slices if self.slice_len(n)), None)
        if self.display is None or name is None:
            return
        x = self.inputs(name, 0)[0]
        try:
            value = self.display(x)
        except Exception:
            return
        pictures.as_image(value, "display")

    def image(self, slice_name: str, sample_id: int, connection: int = 0) -> np.ndarray:
        """A uint8 (H, W, 3) picture of input ``connection`` of a sample: ``display=``, else
        the dataset's ``to_display``, else its ``Normalize`` inverted, else the input by its
        range (``display.picture``). The viewer, thumbnails, export and visualizers use it."""
        key = (slice_name, sample_id, connection)
        with self._data_lock:
            return self._image(key)

    def _image(self, key: tuple[str, int, int]) -> np.ndarray:
        slice_name, sample_id, connection = key
        hit = self._images.get_item(key)
        if hit is None:
            ds = self.slices[slice_name]
            inputs, _, _ = self.item(slice_name, sample_id)
            hit = pictures.picture(
                ds, sample_id, inputs, connection, self.display, self._display_warned, slice_name
            )
            self._images.put(key, hit)
        return hit

    def sample(self, slice_name: str, sample_id: int, connection: int = 0) -> Sample:
        inputs, label, raw = self.item(slice_name, sample_id)
        return Sample(
            id=sample_id,
            slice=slice_name,
            inputs=inputs,
            label=label,
            item=raw,
            image=self.image(slice_name, sample_id, connection),
            connection=connection,
        )

    # -------------------------------------------------------------- classes
    def num_classes(self, model_name: str, slice_name: str) -> int:
        """The model's number of classes (runs the model once if it is not known yet)."""
        known = self.known_num_classes(model_name)
        return known if known is not None else self.stats.num_classes(model_name, slice_name)

    def known_num_classes(self, model_name: str) -> int | None:
        """The model's number of classes if an analysis or a prediction showed it (no forward)."""
        k = self.stats.known_num_classes(model_name)
        return k if k is not None else self.analyses.num_classes(model_name)

    def label_names(self, k: int) -> list[str]:
        """One name per class of a ``k``-class model: the given names, ``"class i"`` for the
        missing ones; names beyond ``k`` are dropped. A count that does not match ``k`` warns
        (once per count), naming both."""
        names = self._label_names_arg
        if names is None:
            return [f"class {i}" for i in range(k)]
        if isinstance(names, Mapping):
            extra = sorted(int(i) for i in names if not 0 <= int(i) < k)
            if extra and ("map", k) not in self._warned:
                self._warned.add(("map", k))
                warnings.warn(
                    f"label_names: classes {extra[:5]} are not classes of the model, which "
                    f"has {k} (0..{k - 1}); those names are not used",
                    stacklevel=2,
                )
            return [str(names.get(i, f"class {i}")) for i in range(k)]
        names = [str(n) for n in names]
        if len(names) != k and ("list", k) not in self._warned:
            self._warned.add(("list", k))
            what = (
                f"classes {len(names)}..{k - 1} are named 'class i'"
                if len(names) < k
                else f"the last {len(names) - k} names are not used"
            )
            warnings.warn(
                f"label_names: {len(names)} names for a model with {k} classes; {what}",
                stacklevel=2,
            )
        return names[:k] + [f"class {i}" for i in range(len(names), k)]

    # ------------------------------------------------------------- analyses
    def analysis(self, key: AnalysisKey) -> CamResult:
        """The CamResult of one sample (cached, LRU)."""
        return self.analyses.get(key)

    def depths(self, key: AnalysisKey) -> list[int]:
        """The depths of the key's model: known from an earlier analysis of it, or computed by
        analysing ``key``."""
        known = self.analyses.depths(key.model)
        return known if known is not None else [int(d) for d in self.analysis(key).depths]

    def thumbnail(self, slice_name: str, sample_id: int, size: int = THUMB) -> bytes:
        """A PNG thumbnail of input 0 of a sample (a black one if the sample cannot be read)."""
        try:
            img = self.image(slice_name, sample_id, 0)
        except Exception:
            img = np.zeros((size, size, 3), dtype=np.uint8)
        return png_bytes(img, size=(size, size))
