"""Per-sample features of a data set from one layer of a model.

- ``check_layer`` / ``layer_names``: the layer names accepted, checked before any work;
  ``default_layer``: the deepest spatial layer.
- ``extract_features`` runs the model over a data set in batches on its device and keeps one
  layer's output per sample (globally average-pooled over its grid when it is a map, whatever
  its layout: the patch tokens of a ViT, not its channels); ``cached_features`` puts
  a ``FeatureCache`` (memory + disk) in front of it.
- ``LayerTap`` / ``plan_features``: the same for a caller that runs the forwards itself (the
  widget's slice pass, which reads the model's output from the same forwards).

Pure torch + numpy; nothing from the widget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from samplelens_widget.cam.capture import all_modules, eval_mode, first_tensor, model_device
from samplelens_widget.cam.errors import model_raised
from samplelens_widget.cam.layouts import Layout, LayoutSpec
from samplelens_widget.population.cache import (
    USER_CACHE_DIR,
    FeatureCache,
    dataset_fingerprint,
    feature_key,
    model_hash,
)
from samplelens_widget.population.items import dataset_length, split_item

__all__ = [
    "FeaturePlan",
    "Features",
    "LayerTap",
    "Progress",
    "cached_features",
    "check_layer",
    "default_layer",
    "extract_features",
    "layer_names",
    "layer_reader",
    "plan_features",
    "resolve_layer",
]

Progress = Callable[[int, int], Any]
Device = torch.device | str | None


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")


def _check_dataset(dataset: Any) -> int:
    n = dataset_length(dataset)
    if n == 0:
        raise ValueError("dataset: it is empty; the population view needs at least one sample")
    return n


def layer_names(model: nn.Module) -> list[str]:
    """The module paths ``extract_features(layer=...)`` accepts (every module but the model
    itself, leaves and blocks, in definition order); ``path#2``, ``path#3``, ... name a module's
    later calls in one forward."""
    return [name for name, m in all_modules(model) if m is not model]


def _describe_allowed(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return f"None (the deepest spatial layer) or a module path: {shown}{more}"


def _parse_layer(
    model: nn.Module, layer: object, argname: str = "layer"
) -> tuple[str, nn.Module, int]:
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
    modules = {name: m for name, m in all_modules(model) if m is not model}
    if path not in modules:
        raise ValueError(
            f"{argname}: {layer!r} does not exist; allowed: {_describe_allowed(names)}"
        )
    return path, modules[path], k


def check_layer(model: nn.Module, layer: object, *, argname: str = "layer") -> str | None:
    """Check a layer name before any work (for an early, clear error naming ``argname``, e.g.
    the widget's ``embed_layer``): ``None`` or an existing module path (``path#k``
    allowed; whether the module is called k times shows only in a forward). Returns the
    normalised name (``path#1`` -> ``path``) or ``None``."""
    _check_model(model)
    if layer is None:
        return None
    path, _, call = _parse_layer(model, layer, argname)
    return path if call == 1 else f"{path}#{call}"


def resolve_layer(
    model: nn.Module,
    sample_inputs: Sequence[torch.Tensor],
    layer: str | None,
    device: Device = None,
    layout: LayoutSpec = None,
    argname: str = "layer",
) -> tuple[str, Layout | None]:
    """The layer's name and how its output lies on the grid, from one analysis of one
    sample's inputs (as ``CamEngine`` with ``layout=`` sees them on input 0).

    ``layer=None`` is the deepest spatial layer, the one ``heatmap(None)`` shows. A named
    layer that is no layer of the CAM engine (an MLP's, a ``(N, D)`` output) has no layout
    (``None``): its output is pooled over every dimension after the second."""
    from samplelens_widget.cam.cam_engine import CamEngine

    try:
        res = CamEngine(model, device=device, layout=layout).explain(list(sample_inputs))
    except ValueError as err:
        if layer is not None:
            return layer, None
        raise ValueError(
            f"{argname}: None asks for the deepest spatial layer, but {type(model).__name__} has "
            f"none on these inputs ({err}); choose one: {_describe_allowed(layer_names(model))}"
        ) from err
    name = res.layer_at(None).name if layer is None else layer
    try:
        return name, res.layout_of(name)
    except ValueError:
        return name, None


def default_layer(
    model: nn.Module,
    sample_inputs: Sequence[torch.Tensor],
    device: Device = None,
    layout: LayoutSpec = None,
) -> str:
    """The deepest spatial layer of ``model`` for one sample's inputs: the layer
    ``heatmap(None)`` shows (see ``resolve_layer``)."""
    return resolve_layer(model, sample_inputs, None, device, layout)[0]


def layer_reader(
    model: nn.Module,
    sample_inputs: Sequence[torch.Tensor],
    layer: str,
    device: Device = None,
    layout: LayoutSpec = None,
) -> Layout | None:
    """How ``layer``'s output lies on the grid, or None (see ``resolve_layer``)."""
    return resolve_layer(model, sample_inputs, layer, device, layout)[1]


def _pool(
    output: object, layer: str, batch: int, reader: Layout | None = None, argname: str = "layer"
) -> torch.Tensor:
    """One layer output (N, ...) -> (N, D): a layer the CAM engine reads (``reader``) is
    averaged over its grid (N, C); any other output over every dimension after the second;
    (N, D) is taken as is; (N,) becomes (N, 1)."""
    tensor = first_tensor(output)  # a tuple's or an output object's first tensor
    if tensor is not None:
        output = tensor
    if not isinstance(output, torch.Tensor):
        raise ValueError(
            f"{argname}: {layer!r} returns {type(output).__name__}, not a tensor; choose a layer "
            f"whose output is a tensor (N, C, ...) or (N, D)"
        )
    if not output.is_floating_point():
        raise ValueError(
            f"{argname}: {layer!r} returns a {output.dtype} tensor; features must be real floating "
            f"point"
        )
    if output.dim() == 0 or output.shape[0] != batch:
        raise ValueError(
            f"{argname}: {layer!r} returns shape {tuple(output.shape)}, which has no batch "
            f"dimension of {batch}; choose a layer whose output is (N, C, ...) or (N, D)"
        )
    out = output.detach()
    if reader is not None:
        return reader.to_nchw(out).mean(dim=(2, 3)).float()
    if out.dim() == 1:
        out = out[:, None]
    elif out.dim() > 2:
        out = out.mean(dim=tuple(range(2, out.dim())))
    return out.float().clone()  # a copy: a later in-place operation must not change it


class LayerTap:
    """The pooled output (see ``_pool``) of the ``call``-th call of one layer in the forwards
    of ``model`` that someone else runs (``extract_features``, the widget's slice pass)::

        with tap.hooked():       # the hooks live inside: removed on every path
            model(*inputs)       # any number of forwards, batched or one sample at a time
        pooled = tap.take()      # (samples of those forwards, D), or None: ``tap.error``

    Hooks on the model itself mark where each forward starts (its batch size) and ends: a
    forward that raises leaves nothing behind. A layer whose output cannot be pooled, or that a
    forward does not reach ``call`` times, sets ``error`` (a ``ValueError`` naming ``argname``)
    instead of raising inside the forward; later forwards are not recorded. Only forwards on
    the thread that entered ``hooked()`` count."""

    def __init__(
        self, model: nn.Module, layer: str, reader: Layout | None, argname: str = "layer"
    ) -> None:
        self.model = model
        self.path, self.module, self.call = _parse_layer(model, layer, argname)
        self.name = self.path if self.call == 1 else f"{self.path}#{self.call}"
        self.reader = reader
        self.argname = argname
        self.error: ValueError | None = None
        self._calls = 0
        self._batch = 0
        self._out: torch.Tensor | None = None
        self._kept: list[torch.Tensor] = []

    @contextmanager
    def hooked(self) -> Iterator[None]:
        owner = threading.get_ident()

        def ours() -> bool:  # someone else's forward is not ours to record
            return threading.get_ident() == owner and self.error is None

        def start(_module: nn.Module, args: tuple[object, ...]) -> None:
            if ours():
                first = first_tensor(args)
                self._calls, self._out = 0, None
                self._batch = int(first.shape[0]) if first is not None and first.dim() else 0

        def layer(_module: nn.Module, _args: tuple[object, ...], output: object) -> None:
            if not ours():
                return
            self._calls += 1
            if self._calls == self.call:
                try:
                    self._out = _pool(output, self.name, self._batch, self.reader, self.argname)
                except Exception as err:  # kept, not raised: the forward goes on without us
                    self.error = err if isinstance(err, ValueError) else ValueError(
                        f"{self.argname}: {self.name!r} cannot be pooled: "
                        f"{type(err).__name__}: {err}"
                    )

        def end(_module: nn.Module, _args: tuple[object, ...], _output: object) -> None:
            if not ours():
                return
            if self._out is None:
                self.error = ValueError(
                    f"{self.argname}: {self.name!r} is never computed: module {self.path!r} is "
                    f"called {self._calls} time(s) per forward"
                    + (f"; allowed: {_call_names(self.path, self._calls)}" if self._calls else "")
                )
            else:
                self._kept.append(self._out)
                self._out = None

        handles = [
            self.model.register_forward_pre_hook(start),
            self.module.register_forward_hook(layer),
            self.model.register_forward_hook(end),
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def take(self) -> torch.Tensor | None:
        """The pooled outputs of the forwards since the last ``take``, in order, as one
        ``(N, D)`` tensor; None after an error (``error``) or without a forward."""
        kept, self._kept = self._kept, []
        if self.error is not None or not kept:
            return None
        return kept[0] if len(kept) == 1 else torch.cat(kept)


def _collate(dataset: Any, start: int, stop: int) -> list[torch.Tensor]:
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
    dataset: Any,
    layer: str | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
    reader: Layout | None | str = "infer",
    layout: LayoutSpec = None,
    lock: AbstractContextManager[Any] | None = None,
    argname: str = "layer",
) -> tuple[np.ndarray, str]:
    """Features of every sample of ``dataset`` from one layer: ``(features (N, D) float32,
    layer name)``.

    ``layer=None`` takes the deepest spatial layer (see ``default_layer``); a name is a
    module's path from ``layer_names(model)``, ``path#k`` for its k-th call in one forward.
    A layer of the CAM engine is globally average-pooled over its grid to ``(N, C)``, whatever
    its layout (NCHW, channels last, tokens: prefix tokens are left out); other outputs
    ``(N, C, ...)`` over every dimension after the channels; ``(N, D)`` outputs are taken as
    they are. ``reader`` is the layer's layout where the caller knows it (``"infer"``: from
    one sample, read as ``CamEngine(model, layout=layout)`` reads it; ``None``: pool as a plain
    ``(N, C, ...)`` output).

    ``lock`` (a context manager, e.g. the widget's model lock) is held around each batch only,
    so that whoever else uses the model can slip in between batches. Errors name ``argname``
    (the caller's name for the layer argument) or ``dataset``.

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
    device = model_device(model) if device is None else torch.device(device)
    held = lock if lock is not None else nullcontext()
    if layer is None or isinstance(reader, str):  # one analysis of the first item says both
        with held:
            first, _ = split_item(dataset[0])
            layer, found = resolve_layer(model, first, layer, device, layout, argname)
        if isinstance(reader, str):
            reader = found
    tap = LayerTap(model, layer, reader, argname)
    features: np.ndarray | None = None
    if progress is not None:
        progress(0, n)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        # the lock per batch: an interactive analysis can slip in between batches
        with held, eval_mode(model), torch.no_grad(), tap.hooked():
            batch = [t.to(device, non_blocking=True) for t in _collate(dataset, start, stop)]
            try:
                model(*batch)
            except Exception as err:
                raise model_raised(err, batch, where=f"items {start}..{stop - 1}") from err
        out = tap.take()
        if out is None:
            assert tap.error is not None
            raise tap.error
        if features is None:
            features = np.empty((n, out.shape[1]), dtype=np.float32)
        features[start:stop] = out.cpu().numpy()
        if progress is not None:
            progress(stop, n)
    assert features is not None
    return features, tap.name


def _call_names(path: str, count: int) -> str:
    return ", ".join(repr(path if k == 1 else f"{path}#{k}") for k in range(1, count + 1))


@dataclass(frozen=True)
class Features:
    """Features of a data set: ``features`` (N, D) float32 (read-only), the ``layer`` they come
    from, the cache ``key`` and their ``source``: ``"computed"``, ``"memory"`` or ``"disk"``."""

    features: np.ndarray
    layer: str
    key: str
    source: str


@dataclass(frozen=True)
class FeaturePlan:
    """What is known of a data set's features before any pass: the normalised ``layer``, the
    cache ``key``, how the layer's output is read (``reader``; ``"infer"``: not analysed yet,
    see ``layer_reader``) and what the cache holds (``hit``: ``Features`` or None)."""

    layer: str
    key: str
    reader: Layout | None | str
    hit: Features | None


def plan_features(
    model: nn.Module,
    dataset: Any,
    layer: str | None,
    cache: FeatureCache,
    *,
    device: torch.device | str | None = None,
    layout: LayoutSpec = None,
    lock: AbstractContextManager[Any] | None = None,
    argname: str = "layer",
) -> FeaturePlan:
    """``cached_features`` up to its cache lookup, for a caller that runs the forwards itself
    (with a ``LayerTap``) and then ``cache.put(plan.key, ...)``. ``layer=None`` is resolved to
    the deepest spatial layer (one analysis of the first item, under ``lock``)."""
    _check_model(model)
    n = _check_dataset(dataset)
    reader: Layout | None | str = "infer"  # a cache hit needs no analysis at all
    if layer is None:
        dev = model_device(model) if device is None else torch.device(device)
        with lock if lock is not None else nullcontext():
            first, _ = split_item(dataset[0])
            layer, reader = resolve_layer(model, first, None, dev, layout, argname)
    path, _, call = _parse_layer(model, layer, argname)
    name = path if call == 1 else f"{path}#{call}"
    key = feature_key(model_hash(model), dataset_fingerprint(dataset), name)
    hit = cache.lookup(key)
    found = None
    if hit is not None and hit[0].shape[0] == n and hit[1] == name:
        found = Features(*hit[:2], key, hit[2])
    return FeaturePlan(name, key, reader, found)


def cached_features(
    model: nn.Module,
    dataset: Any,
    layer: str | None = None,
    *,
    cache: FeatureCache | None = None,
    cache_dir: Any = USER_CACHE_DIR,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
    layout: LayoutSpec = None,
    lock: AbstractContextManager[Any] | None = None,
    argname: str = "layer",
) -> Features:
    """``extract_features`` behind a ``FeatureCache``: running it again with the same weights,
    data set and layer loads the features instead of recomputing them (``progress`` is then not
    called). ``cache`` is the cache to use; without one, a ``FeatureCache(cache_dir)`` is made
    (``cache_dir=None``: memory only, which then lasts for this call only: keep a cache object
    to reuse). ``layer=None`` is resolved to the deepest spatial layer (one sample's forward)
    before the lookup, so both spellings share one entry. ``layout``, ``lock`` and ``argname``
    as in ``extract_features``."""
    _check_model(model)
    _check_dataset(dataset)
    if cache is None:
        cache = FeatureCache(cache_dir)
    elif not isinstance(cache, FeatureCache):
        raise TypeError(f"cache: expected a FeatureCache or None, got {type(cache).__name__}")
    plan = plan_features(
        model, dataset, layer, cache, device=device, layout=layout, lock=lock, argname=argname
    )
    if plan.hit is not None:
        return plan.hit
    features, name = extract_features(
        model, dataset, plan.layer, batch_size=batch_size, device=device, progress=progress,
        reader=plan.reader, layout=layout, lock=lock, argname=argname,
    )
    stored, name = cache.put(plan.key, features, name)
    return Features(stored, name, plan.key, "computed")
