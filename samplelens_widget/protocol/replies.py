"""The kernel's replies, built from what the engines computed (one function per reply kind).

Each returns ``(message, buffers)`` as declared in ``messages.py``; the widget sends them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from samplelens_widget.cam import CamResult
from samplelens_widget.cam.targets import Class, Contrast, Loss, Region
from samplelens_widget.data import png_bytes
from samplelens_widget.protocol.buffers import pack_coords, to_uint8
from samplelens_widget.protocol.messages import (
    AnalysisKey,
    AnalysisReply,
    ColumnMeta,
    ErrorReply,
    LayerMeta,
    PlotlyReply,
    PopulationCoords,
    PopulationError,
    PopulationProgress,
    PopulationReply,
    Row,
    RowsReply,
    SanityProgress,
    SanityReply,
    SegmentationMeta,
    SimilarReply,
    StatsReply,
    ThumbReply,
    TrustAreas,
    TrustBaselines,
    TrustError,
    TrustReply,
    ValuesReply,
    VisualReply,
)

__all__ = [
    "TOPK",
    "analysis",
    "error",
    "plotly_js",
    "population",
    "population_coords",
    "population_error",
    "population_progress",
    "rows",
    "sanity",
    "sanity_progress",
    "similar",
    "stats",
    "thumb",
    "trust",
    "trust_error",
    "values",
    "visual",
]

Reply = tuple[Any, list[bytes]]
TOPK = 5


def segmentation(res: CamResult, mask: np.ndarray | None) -> tuple[SegmentationMeta, bytes]:
    """The explained class's share of the predicted pixels and, against ``mask`` (the item's
    ``(H, W)`` class indices, on the output's grid), its IoU and the pixel accuracy."""
    pred = res.logits[0].argmax(axis=0)
    cls = int(res.targets[0])
    mine = pred == cls
    iou = accuracy = None
    if mask is not None:
        truth = mask == cls
        union = int((mine | truth).sum())
        iou = float((mine & truth).sum() / union) if union else None
        accuracy = float((pred == mask).mean())
    k = int(res.logits.shape[1])
    dtype: Literal["uint8", "uint16"] = "uint8" if k <= 256 else "uint16"
    meta: SegmentationMeta = {
        "cls": cls,
        "h": int(pred.shape[0]),
        "w": int(pred.shape[1]),
        "dtype": dtype,
        "share": float(mine.mean()),
        "iou": iou,
        "pixel_accuracy": accuracy,
    }
    return meta, pred.astype("<u1" if dtype == "uint8" else "<u2").tobytes()


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def score_name(res: CamResult) -> str:
    """What ``res.scores`` (the value the maps explain) is, in a word or two."""
    t, task = res.target, res.task
    dense = task == "segmentation"
    if isinstance(t, Loss):
        return "loss"
    if isinstance(t, Contrast):
        return "summed logit difference" if dense else "logit difference"
    if isinstance(t, Region):
        return "summed logit"
    if isinstance(t, Class):
        if dense:
            return "summed logit"
        if task == "regression":
            return "output"
        if task == "binary" and int(res.targets[0]) == 0:
            return "negated logit"
        return "logit"
    return "score"


def analysis(
    key: AnalysisKey,
    res: CamResult,
    true_label: int | None,
    image: np.ndarray | None,
    rid: int | None = None,
    mask: np.ndarray | None = None,
    loss: float | None = None,
    true_set: list[int] | None = None,
) -> tuple[AnalysisReply, list[bytes]]:
    """JSON meta + one uint8 map per depth (min-max normalised) + the input PNG if ``image``
    (+ a segmentation's pixel predictions, with ``mask`` the item's true mask if it has one).
    Each layer's ``lo``/``hi``: its raw map's min and max, so the page can put maps on a shared
    scale; ``score``: the value the maps explain (``res.scores``). ``loss``: the sample's loss
    against its label, as the sample list shows it; ``true_set``: a multi-label item's true
    classes."""
    k = int(res.num_classes)
    probs = None if res.probabilities is None else res.probabilities[0].astype(np.float64)
    buffers: list[bytes] = []
    layers: list[LayerMeta] = []
    for depth in res.depths:
        info = res.layer_at(depth)
        raw = res.raw(info.name)[0]
        m = to_uint8(raw)
        lo, hi = (_finite(float(raw.min())), _finite(float(raw.max()))) if raw.size else (0.0, 0.0)
        if lo is None or hi is None:  # not finite: no honest range (the page treats it as flat)
            lo = hi = 0.0
        layers.append(
            {
                "depth": int(depth),
                "name": info.name,
                "shape": [int(s) for s in info.shape],
                "layout": info.layout,
                "aliases": list(info.aliases),
                "h": int(m.shape[0]),
                "w": int(m.shape[1]),
                "lo": lo,
                "hi": hi,
            }
        )
        buffers.append(m.tobytes())
    order: list[int] = [] if probs is None else np.argsort(-probs)[: min(TOPK, k)].tolist()
    meta: AnalysisReply = {
        "type": "analysis",
        "rid": rid,
        "key": key,
        "layers": layers,
        "input_size": [int(s) for s in res.input_size],
        "task": res.task,
        "explained": res.target.title if res.target is not None else "",
        "target": int(res.targets[0]),
        "prediction": int(res.predictions[0]),
        "true_label": true_label,
        "loss": loss,
        "num_classes": k,
        "probabilities": [float(p) for p in probs] if probs is not None and k <= 1000 else None,
        "topk": [] if probs is None else [(int(c), float(probs[c])) for c in order],
        "score": None if res.scores is None else _finite(float(res.scores[0])),
        "score_name": score_name(res),
        "image": False,
    }
    if image is not None:
        buffers.append(png_bytes(image))
        meta["image"] = True
        meta["image_size"] = [int(image.shape[0]), int(image.shape[1])]
    if res.task == "multilabel":
        meta["true_set"] = true_set
        meta["predicted_set"] = [int(c) for c in np.flatnonzero(res.logits[0] >= 0)]
    if res.task == "segmentation":
        meta["segmentation"], pixels = segmentation(res, mask)
        buffers.append(pixels)
    return meta, buffers


def stats(
    model: str, slice: str, s: Mapping[str, Any], rid: int | None = None
) -> tuple[StatsReply, list[bytes]]:
    """Accuracy and (up to 200 classes) the confusion matrix of a slice."""
    title = (
        "Slice exact-match accuracy" if "correct" in s
        else "Slice pixel accuracy" if "pixel_accuracy" in s
        else "Slice accuracy"
    )
    msg: StatsReply = {
        "type": "stats",
        "rid": rid,
        "model": model,
        "slice": slice,
        "accuracy": s["accuracy"],
        "accuracy_title": title,
        "n": int(len(s["predictions"])),
        "confusion": (
            s["confusion"].tolist()
            if s["confusion"] is not None and s["num_classes"] <= 200
            else None
        ),
    }
    return msg, []


def rows(
    model: str,
    slice: str,
    table: Sequence[Row],
    thumbs: Sequence[bytes],
    rid: int | None = None,
    page: int | None = None,
) -> tuple[RowsReply, list[bytes]]:
    """Sample-list rows + one PNG thumbnail each."""
    msg: RowsReply = {
        "type": "rows",
        "rid": rid,
        "model": model,
        "slice": slice,
        "rows": list(table),
        "page": page,
    }
    return msg, list(thumbs)


def visual(
    name: str,
    slice: str,
    sample_id: int,
    connection: int,
    rendered: tuple[dict[str, Any], list[bytes]],
    rid: int | None = None,
) -> tuple[VisualReply, list[bytes]]:
    """A visualizer's output as ``render_visual`` described it."""
    meta, buffers = rendered
    msg: Any = {**meta, "type": "visual", "rid": rid, "name": name, "slice": slice}
    msg.update(id=sample_id, connection=connection)
    return msg, buffers


def plotly_js(code: bytes, rid: int | None = None) -> tuple[PlotlyReply, list[bytes]]:
    return {"type": "plotly_js", "rid": rid}, [code]


def thumb(slice: str, sample_id: int, png: bytes, rid: int | None = None) -> Reply:
    msg: ThumbReply = {"type": "thumb", "rid": rid, "slice": slice, "id": sample_id}
    return msg, [png]


def population(
    model: str,
    slice: str,
    state: Any,
    columns: Sequence[tuple[ColumnMeta, bytes]],
    rid: int | None = None,
) -> tuple[PopulationReply, list[bytes]]:
    """The scatter of a slice: meta + [coordinates float32, one buffer per column].
    ``state``: a ``PopState`` (``n``, ``layer``, ``source``, ``method``, ``note``,
    ``umap_pending``, ``coords``)."""
    msg: PopulationReply = {
        "type": "population",
        "rid": rid,
        "model": model,
        "slice": slice,
        "n": int(state.n),
        "layer": state.layer,
        "source": state.source,
        "method": state.method,
        "note": state.note,
        "umap_pending": bool(state.umap_pending),
        "columns": [c[0] for c in columns],
    }
    return msg, [pack_coords(state.coords), *[c[1] for c in columns]]


def population_progress(
    model: str, slice: str, done: int, total: int, phase: str = "features"
) -> Reply:
    msg: PopulationProgress = {
        "type": "population_progress",
        "model": model,
        "slice": slice,
        "phase": "statistics" if phase == "statistics" else "features",
        "done": int(done),
        "total": int(total),
    }
    return msg, []


def population_coords(state: Any) -> Reply:
    """The UMAP map of a ``PopState`` once it is ready."""
    msg: PopulationCoords = {
        "type": "population_coords",
        "model": state.model,
        "slice": state.slice,
        "method": state.method,
        "note": state.note,
        "umap_pending": False,
    }
    return msg, [pack_coords(state.coords)]


def population_error(model: str, slice: str, message: str, rid: int | None = None) -> Reply:
    msg: PopulationError = {
        "type": "population_error",
        "rid": rid,
        "model": model,
        "slice": slice,
        "message": message,
    }
    return msg, []


def similar(
    model: str,
    slice: str,
    query: Sequence[int],
    found: Sequence[tuple[int, float]],
    rid: int | None = None,
    note: str | None = None,
) -> Reply:
    """*Fetch similar*'s neighbours; ``note``: why none (or fewer) were found, in words."""
    msg: SimilarReply = {
        "type": "similar",
        "rid": rid,
        "model": model,
        "slice": slice,
        "query": [int(i) for i in query],
        "ids": [int(i) for i, _ in found],
        "similarities": [float(s) for _, s in found],
    }
    if note is not None:
        msg["note"] = note
    return msg, []


def values(
    model: str, slice: str, table: Sequence[Row], rid: int | None = None
) -> Reply:
    """The sort columns of some list rows (``SliceStats.rows``), without thumbnails."""
    msg: ValuesReply = {
        "type": "values",
        "rid": rid,
        "model": model,
        "slice": slice,
        "ids": [int(r["id"]) for r in table],
        "loss": [r["loss"] for r in table],
        "confidence": [r.get("confidence") for r in table],
    }
    return msg, []


def error(
    message: str,
    rid: int | None = None,
    *,
    key: AnalysisKey | None = None,
    request: str | None = None,
) -> Reply:
    """A failed request, shown in the widget's error bar (``key``: the analysis that failed)."""
    msg: ErrorReply = {"type": "error", "message": message, "rid": rid}
    if key is not None:
        msg["key"] = key
    if request is not None:
        msg["request"] = request
    return msg, []


def _area(x: Any) -> float | None:
    """One area or rho as a JSON number; NaN and infinities (which JSON cannot carry: a model
    whose output is not finite) as null."""
    v = float(x)
    return v if math.isfinite(v) else None


def trust(key: AnalysisKey, found: Any, last: bool, rid: int | None = None) -> Reply:
    """One chunk of a Trust curve: ``found`` a ``Faithfulness`` of one sample (its depths, and
    its baselines when it has them, with ``draws``: ``partial_faithfulness(draw_scores=True)``).
    """
    msg: TrustReply = {
        "type": "trust",
        "rid": rid,
        "key": key,
        "steps": int(found.steps),
        "measure": str(found.measure),
        "depths": [int(d) for d in found.depths],
        "layers": [str(n) for n in found.layers],
        "deletion": [_area(a) for a in np.ravel(found.deletion)],
        "insertion": [_area(a) for a in np.ravel(found.insertion)],
        "last": bool(last),
    }
    if found.baselines:
        def areas(name: str) -> TrustAreas:
            b = found.baselines[name]
            return {
                "deletion": _area(b["deletion"]),
                "insertion": _area(b["insertion"]),
                "draws": [_area(a) for a in np.ravel(b.get("draws", []))],
            }

        base: TrustBaselines = {"random": areas("random"), "edges": areas("edges")}
        msg["baselines"] = base
    return msg, []


def sanity_progress(
    key: AnalysisKey, depth: int, done: int, total: int, rid: int | None = None
) -> Reply:
    msg: SanityProgress = {
        "type": "sanity_progress",
        "rid": rid,
        "key": key,
        "depth": int(depth),
        "done": int(done),
        "total": int(total),
    }
    return msg, []


def sanity(
    key: AnalysisKey,
    depth: int,
    layer: str,
    stages: Sequence[tuple[str, float]],
    rid: int | None = None,
) -> Reply:
    """The sanity check's ``[(stage, rho), ...]`` (``CamEngine.sanity_check``)."""
    msg: SanityReply = {
        "type": "sanity",
        "rid": rid,
        "key": key,
        "depth": int(depth),
        "layer": str(layer),
        "stages": [(str(name), _area(rho)) for name, rho in stages],
    }
    return msg, []


def trust_error(
    request: Literal["trust", "sanity"],
    key: AnalysisKey,
    message: str,
    depth: int | None = None,
    rid: int | None = None,
) -> Reply:
    msg: TrustError = {
        "type": "trust_error",
        "rid": rid,
        "request": request,
        "key": key,
        "depth": None if depth is None else int(depth),
        "message": message,
    }
    return msg, []
