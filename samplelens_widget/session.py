"""Kernel-side state of a SampleLens: data access, analyses, caches and request coalescing.

Nothing here knows about traitlets or the page; ``widget.py`` wires it to both.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from samplelens_widget.cam import ALGORITHMS as CAM_ALGORITHMS
from samplelens_widget.cam import CamEngine, CamResult
from samplelens_widget.cam.capture import eval_mode
from samplelens_widget.cam.inputs import logits_of
from samplelens_widget.cam.layouts import LayoutSpec
from samplelens_widget.data import Sample, png_bytes, split_item, tensor_to_image

__all__ = ["AnalysisKey", "Session", "LatestWorker", "to_uint8"]

ALGORITHMS = CamEngine.algorithms
ALGORITHM_TITLES = {name: algo.title for name, algo in CAM_ALGORITHMS.items()}
THUMB = 40
TOPK = 5


@dataclass(frozen=True)
class AnalysisKey:
    """What one analysis depends on. ``label=None`` means the predicted class."""

    model: str
    slice: str
    id: int
    algorithm: str
    label: int | None
    connection: int

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "slice": self.slice,
            "id": self.id,
            "algorithm": self.algorithm,
            "label": self.label,
            "connection": self.connection,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> AnalysisKey:
        label = d.get("label")
        return cls(
            model=str(d["model"]),
            slice=str(d["slice"]),
            id=int(d["id"]),
            algorithm=str(d["algorithm"]),
            label=None if label is None else int(label),
            connection=int(d.get("connection", 0)),
        )


def to_uint8(m: np.ndarray) -> np.ndarray:
    """Min-max normalise a map to uint8 [0, 255] (a constant map gives zeros)."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = float(m.min()), float(m.max())
    if not hi > lo:
        return np.zeros(m.shape, dtype=np.uint8)
    return np.clip(np.rint((m - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_item(self, key):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Session:
    """Models, slices, caches and the computations behind one widget.

    ``models``: name -> nn.Module; ``slices``: name -> map-style dataset.
    All public methods are thread-safe: one lock around the models and caches. Slice
    predictions run in batches of ``batch_size``, taking the lock per batch, so that an
    interactive analysis never waits long behind them.
    """

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        slices: Mapping[str, Any],
        *,
        label_names: list[str] | Mapping[int, str] | None = None,
        visualizers: Mapping[str, Callable] | None = None,
        device: torch.device | str | None = None,
        cache_size: int = 64,
        batch_size: int = 16,
        layout: LayoutSpec = None,
    ) -> None:
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
            name: CamEngine(m, device=device, layout=layout) for name, m in self.models.items()
        }
        self.visualizers = dict(visualizers or {})
        for name, fn in self.visualizers.items():
            if not callable(fn):
                raise TypeError(f"visualizers[{name!r}]: expected a callable, got {fn!r}")
        self.batch_size = batch_size
        self.stats_batch_size = max(batch_size, 128)
        self.lock = threading.RLock()
        self._analyses = _LRU(cache_size)
        self._items = _LRU(256)
        self._images = _LRU(256)
        self._stats: dict[tuple[str, str], dict] = {}
        self._stats_locks: dict[tuple[str, str], threading.Lock] = {}
        self._num_classes: dict[str, int] = {}
        self._n_inputs: dict[str, int] = {}
        self._label_names_arg = label_names

    # ----------------------------------------------------------------- data
    def slice_len(self, slice_name: str) -> int:
        return len(self.slices[slice_name])

    def check_id(self, slice_name: str, sample_id: Any) -> int:
        """The id as an int, or a ValueError naming the id, the range and the slice."""
        n = self.slice_len(slice_name)
        if isinstance(sample_id, bool) or not isinstance(sample_id, (int, np.integer)):
            try:
                as_float = float(sample_id)
            except (TypeError, ValueError):
                as_float = math.nan
            if not (as_float == as_float and as_float.is_integer()):
                raise ValueError(
                    f"sample id {sample_id!r} is not an integer; expected 0..{n - 1} "
                    f"for slice {slice_name!r}"
                )
            sample_id = int(as_float)
        sample_id = int(sample_id)
        if not 0 <= sample_id < n:
            raise ValueError(
                f"sample id {sample_id} is out of range 0..{n - 1} for slice {slice_name!r}"
            )
        return sample_id

    def item(self, slice_name: str, sample_id: int):
        """``(inputs, label, raw_item)`` of one sample (cached)."""
        key = (slice_name, sample_id)
        with self.lock:
            hit = self._items.get_item(key)
            if hit is None:
                raw = self.slices[slice_name][sample_id]
                inputs, label = split_item(raw)
                hit = (inputs, label, raw)
                self._items.put(key, hit)
        return hit

    def n_inputs(self, slice_name: str) -> int:
        if slice_name not in self._n_inputs:
            self._n_inputs[slice_name] = (
                len(self.item(slice_name, 0)[0]) if self.slice_len(slice_name) else 1
            )
        return self._n_inputs[slice_name]

    def image(self, slice_name: str, sample_id: int, connection: int = 0) -> np.ndarray:
        """A uint8 (H, W, 3) picture of input ``connection`` of a sample."""
        key = (slice_name, sample_id, connection)
        with self.lock:
            return self._image(key)

    def _image(self, key: tuple[str, int, int]) -> np.ndarray:
        slice_name, sample_id, connection = key
        hit = self._images.get_item(key)
        if hit is None:
            ds = self.slices[slice_name]
            inputs, _, _ = self.item(slice_name, sample_id)
            hit = None
            if connection == 0 and len(inputs) == 1 and hasattr(ds, "to_display"):
                try:
                    arr = np.asarray(ds.to_display(sample_id))
                    if arr.ndim == 2:
                        arr = np.repeat(arr[:, :, None], 3, axis=2)
                    hit = np.ascontiguousarray(arr[:, :, :3].astype(np.uint8))
                except Exception:
                    hit = None
            if hit is None:
                hit = tensor_to_image(inputs[connection])
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
        if model_name not in self._num_classes:
            stats = self._stats.get((model_name, slice_name))
            if stats is not None:
                self._num_classes[model_name] = int(stats["num_classes"])
            else:
                inputs, _, _ = self.item(slice_name, 0)
                logits = self._logits([inputs], model_name)
                self._num_classes[model_name] = int(logits.shape[1])
        return self._num_classes[model_name]

    def label_names(self, k: int) -> list[str]:
        names = self._label_names_arg
        if names is None:
            return [f"class {i}" for i in range(k)]
        if isinstance(names, Mapping):
            return [str(names.get(i, f"class {i}")) for i in range(k)]
        names = [str(n) for n in names]
        return names + [f"class {i}" for i in range(len(names), k)]

    # ------------------------------------------------------------- analyses
    def analysis(self, key: AnalysisKey) -> CamResult:
        """The CamResult of one sample (cached, LRU)."""
        with self.lock:
            hit = self._analyses.get_item(key)
            if hit is not None:
                return hit
            inputs, _, _ = self.item(key.slice, key.id)
            x = inputs[0] if len(inputs) == 1 else tuple(inputs)
            res = self.engines[key.model].explain(
                x, label=key.label, algorithm=key.algorithm, connection=key.connection
            )
            self._analyses.put(key, res)
            return res

    def payload(self, key: AnalysisKey, *, with_image: bool = True) -> tuple[dict, list[bytes]]:
        """The message for the page: JSON meta + one uint8 map per depth (+ the input PNG)."""
        res = self.analysis(key)
        _, true_label, _ = self.item(key.slice, key.id)
        probs = res.probabilities[0].astype(np.float64)
        k = int(probs.shape[0])
        buffers: list[bytes] = []
        layers = []
        for depth in res.depths:
            info = res.layer_at(depth)
            m = to_uint8(res.raw(info.name)[0])
            layers.append(
                {
                    "depth": int(depth),
                    "name": info.name,
                    "shape": [int(s) for s in info.shape],
                    "layout": info.layout,
                    "aliases": list(info.aliases),
                    "h": int(m.shape[0]),
                    "w": int(m.shape[1]),
                }
            )
            buffers.append(m.tobytes())
        order = np.argsort(-probs)[: min(TOPK, k)]
        loss = None
        if true_label is not None and 0 <= true_label < k:
            loss = float(-np.log(max(probs[true_label], 1e-12)))
        meta = {
            "type": "analysis",
            "key": key.as_dict(),
            "layers": layers,
            "input_size": [int(s) for s in res.input_size],
            "target": int(res.targets[0]),
            "prediction": int(res.predictions[0]),
            "true_label": true_label,
            "loss": loss,
            "num_classes": k,
            "probabilities": [float(p) for p in probs] if k <= 1000 else None,
            "topk": [[int(c), float(probs[c])] for c in order],
            "image": False,
        }
        if with_image:
            img = self.image(key.slice, key.id, key.connection)
            buffers.append(png_bytes(img))
            meta["image"] = True
            meta["image_size"] = [int(img.shape[0]), int(img.shape[1])]
        return meta, buffers

    # ----------------------------------------------------------- slice stats
    def _logits(self, batch_inputs: list[tuple[torch.Tensor, ...]], model_name: str) -> np.ndarray:
        model = self.models[model_name]
        device = self.engines[model_name].device
        n_in = len(batch_inputs[0])
        with self.lock, eval_mode(model), torch.no_grad():
            try:
                xs = [torch.stack([b[j] for b in batch_inputs]).to(device) for j in range(n_in)]
                outs = [model(*xs)]
            except RuntimeError:  # ragged sizes: one at a time
                outs = [model(*[t[None].to(device) for t in b]) for b in batch_inputs]
        return torch.cat([logits_of(o).detach().float().cpu() for o in outs]).numpy()

    def predict(
        self, model_name: str, slice_name: str, ids: list[int], batch_size: int | None = None
    ) -> dict:
        """Predictions, true labels and losses of some samples (batched)."""
        preds, labels, losses = [], [], []
        bs = batch_size or self.batch_size
        for start in range(0, len(ids), bs):
            chunk = ids[start : start + bs]
            items = [self.item(slice_name, i) for i in chunk]
            logits = torch.from_numpy(self._logits([it[0] for it in items], model_name))
            logp = torch.log_softmax(logits, dim=1)
            for row, it in zip(range(len(chunk)), items, strict=True):
                y = it[1]
                preds.append(int(logp[row].argmax()))
                labels.append(-1 if y is None else int(y))
                k = logp.shape[1]
                losses.append(float(-logp[row, y]) if y is not None and 0 <= y < k else math.nan)
            self._num_classes.setdefault(model_name, int(logits.shape[1]))
        return {
            "predictions": np.asarray(preds, dtype=np.int64),
            "labels": np.asarray(labels, dtype=np.int64),
            "losses": np.asarray(losses, dtype=np.float64),
        }

    def slice_stats(self, model_name: str, slice_name: str) -> dict:
        """Predictions of the whole slice (cached per (model, slice)): accuracy, confusion."""
        key = (model_name, slice_name)
        with self.lock:
            once = self._stats_locks.setdefault(key, threading.Lock())
        with once:  # computed once even when two threads ask at the same time
            if key not in self._stats:
                self._stats[key] = self._slice_stats(model_name, slice_name)
        return self._stats[key]

    def _slice_stats(self, model_name: str, slice_name: str) -> dict:
        n = self.slice_len(slice_name)
        # a whole-slice pass: larger batches (much faster per sample on a CPU); the lock is still
        # taken per batch
        p = self.predict(model_name, slice_name, list(range(n)), self.stats_batch_size)
        k = self._num_classes[model_name] if n else 0
        labelled = (p["labels"] >= 0) & (p["labels"] < k)
        conf = np.zeros((k, k), dtype=np.int64)
        np.add.at(conf, (p["labels"][labelled], p["predictions"][labelled]), 1)
        acc = (
            float((p["labels"][labelled] == p["predictions"][labelled]).mean())
            if (labelled.any())
            else None
        )
        return {**p, "confusion": conf, "accuracy": acc, "num_classes": k}

    def stats_message(self, model_name: str, slice_name: str) -> dict:
        s = self.slice_stats(model_name, slice_name)
        return {
            "type": "stats",
            "model": model_name,
            "slice": slice_name,
            "accuracy": s["accuracy"],
            "n": int(len(s["predictions"])),
            "confusion": s["confusion"].tolist() if s["num_classes"] <= 200 else None,
        }

    def rows(self, model_name: str, slice_name: str, ids: list[int]) -> tuple[dict, list[bytes]]:
        """Sample-list rows (id, true label, prediction, loss) + one PNG thumbnail each."""
        stats = self._stats.get((model_name, slice_name))  # the slice's, if already computed
        if stats is not None:
            preds = [int(stats["predictions"][i]) for i in ids]
            labels = [int(stats["labels"][i]) for i in ids]
            losses = [float(stats["losses"][i]) for i in ids]
        else:
            preds, labels, losses = [], [], []
            try:
                p = self.predict(model_name, slice_name, ids)
                parts = [(p["predictions"].tolist(), p["labels"].tolist(), p["losses"].tolist())]
            except Exception:  # one bad sample must not hide the others: one at a time
                parts = []
                for i in ids:
                    try:
                        q = self.predict(model_name, slice_name, [i])
                        parts.append(
                            (q["predictions"].tolist(), q["labels"].tolist(), q["losses"].tolist())
                        )
                    except Exception:
                        parts.append(([-1], [-1], [math.nan]))
            for a, b, c in parts:
                preds += a
                labels += b
                losses += c
        rows, buffers = [], []
        for i, pred, y, loss in zip(ids, preds, labels, losses, strict=True):
            rows.append(
                {
                    "id": int(i),
                    "label": None if y < 0 else int(y),
                    "prediction": None if pred < 0 else int(pred),
                    "loss": None if math.isnan(loss) else float(loss),
                }
            )
            try:
                thumb = self.image(slice_name, i, 0)
            except Exception:
                thumb = np.zeros((THUMB, THUMB, 3), dtype=np.uint8)
            buffers.append(png_bytes(thumb, size=(THUMB, THUMB)))
        return {"type": "rows", "model": model_name, "slice": slice_name, "rows": rows}, buffers


class LatestWorker:
    """One background thread; per channel only the newest pending request is kept.

    ``submit(channel, request)`` replaces any request of that channel still waiting (the older
    one is dropped and counted in ``dropped``); ``handler(channel, request)`` runs on the thread.
    """

    def __init__(self, handler: Callable[[str, Any], None], channels: tuple[str, ...]):
        self.handler = handler
        self.channels = channels
        self._pending: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="samplelens-worker", daemon=True)
        self._thread.start()

    def submit(self, channel: str, request: Any) -> None:
        with self._cond:
            if channel in self._pending:
                self.dropped += 1
            self._pending[channel] = request
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                channel = next(c for c in self.channels if c in self._pending)
                request = self._pending.pop(channel)
                self._busy = True
            try:
                self.handler(channel, request)
            except Exception:  # the handler reports its own errors; never kill the thread
                pass
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def wait_idle(self, timeout: float | None = 30.0) -> bool:
        """Block until nothing is pending or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
