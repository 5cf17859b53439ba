"""Every message between the page and the kernel, declared once.

Each message is a ``TypedDict`` whose ``type`` field names its kind. ``REQUESTS`` (page ->
kernel) gives each request kind its message type, the thread that answers it and what it
carries in binary buffers; ``REPLIES`` (kernel -> page) the same for the answers. The page's
types (``js/wire.ts``) are generated from these declarations by
``python -m samplelens_widget.protocol.typescript``; ``tests/widget/test_protocol.py`` fails when
the two differ, when a request has no handler, and when a message sent does not match its
declaration.

Threads (see ``samplelens_widget/workers.py``):

- ``"comm"``: answered at once on the thread that delivers the page's messages (they only change
  traits);
- ``"interactive"``, ``"stats"``, ``"population"``, ``"trust"``, ``"sanity"``: one background
  thread each; per kind only the newest pending request is kept (an older one still waiting is
  dropped), and a ``trust`` or ``sanity`` request that runs stops between two of its steps once
  a newer one of its kind waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict

__all__ = [
    "REPLIES",
    "REQUESTS",
    "THREADS",
    "Kind",
    "Thread",
]

Thread = Literal["comm", "interactive", "stats", "population", "trust", "sanity"]
#: the background threads and the order in which each serves its pending kinds
THREADS: dict[Thread, tuple[str, ...]] = {
    "interactive": ("analyze", "rows", "visual", "thumb", "plotly_js"),
    "stats": ("stats", "values"),
    "population": ("population", "similar"),
    "trust": ("trust",),
    "sanity": ("sanity",),
}


# ------------------------------------------------------------------------- shared parts
class AnalysisKey(TypedDict):
    """What one analysis depends on. ``label``: a class, null (the predicted class) or
    ``"loss"`` (the sample's loss against its true label); ``contrast``: a second class, the
    map then explains ``label`` (or the prediction) rather than it."""

    model: str
    slice: str
    id: int
    algorithm: str
    label: int | Literal["loss"] | None
    connection: int
    contrast: NotRequired[int | None]


class LayerMeta(TypedDict):
    """One depth's map: the layer, its output shape and layout, the map's size; ``lo``/``hi``:
    the raw map's min and max (the CAM values before the min-max to uint8): a map byte ``u``
    stands for the value ``lo + u / 255 * (hi - lo)``."""

    depth: int
    name: str
    shape: list[int]
    layout: str
    aliases: list[str]
    h: int
    w: int
    lo: float
    hi: float


class Row(TypedDict):
    """A sample-list row; a multi-label model's rows add the true and predicted class sets
    (``label_set`` None: the item has no multi-hot label). ``confidence``: the model's
    probability of its prediction (None: a regression, or unknown)."""

    id: int
    label: int | None
    prediction: int | None
    loss: float | None
    confidence: NotRequired[float | None]
    label_set: NotRequired[list[int] | None]
    prediction_set: NotRequired[list[int]]


class ColumnMeta(TypedDict):
    """A colour-by column of the scatter; its values travel in a buffer of ``dtype``."""

    key: str
    title: str
    kind: Literal["category", "value"]
    dtype: Literal["uint8", "uint16", "uint32", "float32"]
    categories: NotRequired[list[str | int | float | bool]]
    palette: NotRequired[str | None]
    missing: NotRequired[int]
    min: NotRequired[float | None]
    max: NotRequired[float | None]
    clipped: NotRequired[bool]


class SegmentationMeta(TypedDict):
    """A segmentation's numbers for the explained class ``cls``: the share of the pixels
    predicted as it and, when the item carries a mask, its IoU and the pixel accuracy. The
    pixel predictions (``h * w`` class indices, ``dtype``) travel in the last buffer."""

    cls: int
    h: int
    w: int
    dtype: Literal["uint8", "uint16"]
    share: float
    iou: float | None
    pixel_accuracy: float | None


class Info(TypedDict):
    """The ``_info`` trait: what the page needs to know of the models and slices."""

    models: list[str]
    slices: dict[str, int]
    n_inputs: dict[str, int]
    label_names: list[str]
    num_classes: int
    algorithms: list[tuple[str, str]]
    colormaps: list[str]
    visualizers: list[str]
    similar: bool
    projection: str
    columns: dict[str, list[tuple[str, str]]]


# ---------------------------------------------------------------- page -> kernel
class AnalyzeRequest(TypedDict):
    """The analyses the viewer needs; ``images[i]``: send the input's PNG with key ``i``."""

    type: Literal["analyze"]
    rid: NotRequired[int]
    keys: list[AnalysisKey]
    images: NotRequired[list[bool]]


class RowsRequest(TypedDict):
    type: Literal["rows"]
    rid: NotRequired[int]
    model: str
    slice: str
    ids: list[int]
    page: NotRequired[int]


class StatsRequest(TypedDict):
    type: Literal["stats"]
    rid: NotRequired[int]
    model: str
    slice: str


class ValuesRequest(TypedDict):
    """The sample list's sort columns (loss, confidence) of ``ids``, without thumbnails: to
    sort a list longer than a page."""

    type: Literal["values"]
    rid: NotRequired[int]
    model: str
    slice: str
    ids: list[int]


class VisualRequest(TypedDict):
    type: Literal["visual"]
    rid: NotRequired[int]
    name: str
    slice: str
    id: int
    connection: NotRequired[int]


class PlotlyRequest(TypedDict):
    type: Literal["plotly_js"]
    rid: NotRequired[int]


class ThumbRequest(TypedDict):
    type: Literal["thumb"]
    rid: NotRequired[int]
    slice: str
    id: int


class PopulationRequest(TypedDict):
    type: Literal["population"]
    rid: NotRequired[int]
    model: str
    slice: str


class SimilarRequest(TypedDict):
    """*Fetch similar*: the ``k`` nearest neighbours of ``ids`` (default: the selection)."""

    type: Literal["similar"]
    rid: NotRequired[int]
    ids: NotRequired[list[int] | None]
    k: NotRequired[int]
    model: NotRequired[str]
    slice: NotRequired[str]


class AddRequest(TypedDict):
    """The list's *Add* box: ``id`` as the user typed it."""

    type: Literal["add"]
    rid: NotRequired[int]
    id: str | int


class SelectAllRequest(TypedDict):
    type: Literal["select_all"]
    rid: NotRequired[int]


class PickRequest(TypedDict):
    """A clicked dot: the sample joins the list and is viewed."""

    type: Literal["pick"]
    rid: NotRequired[int]
    id: int


class SelectIdsRequest(TypedDict):
    """A box or lasso selection; the ids travel as ONE uint32 buffer (``n`` of them)."""

    type: Literal["select_ids"]
    rid: NotRequired[int]
    mode: Literal["replace", "add"]
    slice: NotRequired[str]
    n: NotRequired[int]
    ids: NotRequired[list[int]]


class TrustRequest(TypedDict):
    """The Trust view: insertion - deletion of ``key``'s map at each depth of ``depths``
    (null: all), nearest to ``depth`` first (null: the deepest), a few depths per reply, and
    the random and edge baselines when ``baselines``. ``key`` null: stop (the view is hidden).
    A newer ``trust`` request stops the running one between two chunks."""

    type: Literal["trust"]
    rid: NotRequired[int]
    key: AnalysisKey | None
    depth: NotRequired[int | None]
    depths: NotRequired[list[int] | None]
    baselines: NotRequired[bool]
    steps: NotRequired[int]


class SanityRequest(TypedDict):
    """*Sanity check*: the randomisation test of ``key``'s map at ``depth`` (null: the
    deepest). ``key`` null: stop the running one."""

    type: Literal["sanity"]
    rid: NotRequired[int]
    key: AnalysisKey | None
    depth: NotRequired[int | None]


# ---------------------------------------------------------------- kernel -> page
class AnalysisReply(TypedDict):
    """Buffers: one uint8 map (``h * w`` bytes) per layer, then the input's PNG if ``image``.
    ``score``: the value the maps explain (what the backward was taken of: the logit, the loss,
    the logit difference of a contrast; null when not finite), ``score_name`` what it is."""

    type: Literal["analysis"]
    rid: int | None
    key: AnalysisKey
    layers: list[LayerMeta]
    input_size: list[int]
    task: str
    explained: str
    target: int
    prediction: int
    true_label: int | None
    loss: float | None
    num_classes: int
    probabilities: list[float] | None
    topk: list[tuple[int, float]]
    score: float | None
    score_name: str
    image: bool
    image_size: NotRequired[list[int]]
    segmentation: NotRequired[SegmentationMeta]
    true_set: NotRequired[list[int] | None]
    predicted_set: NotRequired[list[int]]


class RowsReply(TypedDict):
    """Buffers: one PNG thumbnail per row."""

    type: Literal["rows"]
    rid: int | None
    model: str
    slice: str
    rows: list[Row]
    page: int | None


class StatsReply(TypedDict):
    """``accuracy_title`` names what ``accuracy`` counts: classes, whole label sets (a
    multi-label model) or pixels (a segmentation)."""

    type: Literal["stats"]
    rid: int | None
    model: str
    slice: str
    accuracy: float | None
    accuracy_title: str
    n: int
    confusion: list[list[int]] | None


class VisualReply(TypedDict):
    """A visualizer's output; buffers: one PNG when ``kind`` is ``"image"``."""

    type: Literal["visual"]
    rid: int | None
    name: str
    slice: str
    id: int
    connection: int
    kind: Literal["image", "plotly", "text", "error"]
    text: NotRequired[str]
    message: NotRequired[str]
    traceback: NotRequired[str]
    figure: NotRequired[Any]
    width: NotRequired[int]
    height: NotRequired[int]


class PlotlyReply(TypedDict):
    """Buffers: plotly.min.js (UTF-8)."""

    type: Literal["plotly_js"]
    rid: int | None


class ThumbReply(TypedDict):
    """Buffers: one PNG."""

    type: Literal["thumb"]
    rid: int | None
    slice: str
    id: int


class PopulationReply(TypedDict):
    """Buffers: the coordinates (float32 x, y pairs), then one buffer per column."""

    type: Literal["population"]
    rid: int | None
    model: str
    slice: str
    n: int
    layer: str | None
    source: str | None
    method: str | None
    note: str | None
    umap_pending: bool
    columns: list[ColumnMeta]


class PopulationProgress(TypedDict):
    """Where the slice's pass is: ``phase`` ``"features"`` (the one pass that gives the
    features and the statistics) or ``"statistics"`` (the features came from the cache, the
    scatter shows, its prediction colours wait for the pass)."""

    type: Literal["population_progress"]
    model: str
    slice: str
    phase: Literal["features", "statistics"]
    done: int
    total: int


class PopulationCoords(TypedDict):
    """The UMAP map, when it is ready. Buffers: the coordinates (float32 x, y pairs)."""

    type: Literal["population_coords"]
    model: str
    slice: str
    method: str | None
    note: str | None
    umap_pending: bool


class PopulationError(TypedDict):
    type: Literal["population_error"]
    rid: int | None
    model: str
    slice: str
    message: str


class SimilarReply(TypedDict):
    """``note``: why nothing (or less than asked) was fetched, in words."""

    type: Literal["similar"]
    rid: int | None
    model: str
    slice: str
    query: list[int]
    ids: list[int]
    similarities: list[float]
    note: NotRequired[str]


class ValuesReply(TypedDict):
    """``loss[i]``, ``confidence[i]``: those of sample ``ids[i]`` (as its list row's)."""

    type: Literal["values"]
    rid: int | None
    model: str
    slice: str
    ids: list[int]
    loss: list[float | None]
    confidence: list[float | None]


class TrustAreas(TypedDict):
    """A baseline's deletion and insertion areas; ``draws``: the insertion - deletion of each
    random draw (the band), empty for the edges."""

    deletion: float | None
    insertion: float | None
    draws: list[float | None]


class TrustBaselines(TypedDict):
    random: TrustAreas
    edges: TrustAreas


class TrustReply(TypedDict):
    """One chunk of the Trust curve of ``key``: the deletion and insertion areas of the map at
    each of ``depths`` (``layers``: the layer that stands for each); ``baselines`` when this
    chunk computed them; ``last``: the request's last chunk. ``measure``: what the curves
    measure (``Faithfulness.measure``)."""

    type: Literal["trust"]
    rid: int | None
    key: AnalysisKey
    steps: int
    measure: str
    depths: list[int]
    layers: list[str]
    deletion: list[float | None]
    insertion: list[float | None]
    baselines: NotRequired[TrustBaselines]
    last: bool


class SanityProgress(TypedDict):
    """The sanity check of ``key`` at ``depth``: ``done`` of ``total`` stages (0 of 0: it has
    started)."""

    type: Literal["sanity_progress"]
    rid: int | None
    key: AnalysisKey
    depth: int
    done: int
    total: int


class SanityReply(TypedDict):
    """The sanity check's result: Spearman's rho between the map of ``layer`` (at ``depth``)
    and the same map after each stage so far is re-initialised, output first (null: not a
    number). Areas and rhos of the Trust view are null where they are not finite."""

    type: Literal["sanity"]
    rid: int | None
    key: AnalysisKey
    depth: int
    layer: str
    stages: list[tuple[str, float | None]]


class TrustError(TypedDict):
    """A Trust curve (``request`` ``"trust"``) or a sanity check (``"sanity"``, at ``depth``)
    failed; shown in the Trust view, in words."""

    type: Literal["trust_error"]
    rid: int | None
    request: Literal["trust", "sanity"]
    key: AnalysisKey
    depth: int | None
    message: str


class ErrorReply(TypedDict):
    """A request failed; ``key``: the analysis that failed, ``request``: the kind that did."""

    type: Literal["error"]
    message: str
    rid: NotRequired[int | None]
    key: NotRequired[AnalysisKey]
    request: NotRequired[str]


@dataclass(frozen=True)
class Kind:
    """One kind of message: its declaration, who answers it, what its buffers hold."""

    message: type
    thread: Thread | None = None  # requests only
    buffers: str = ""


REQUESTS: dict[str, Kind] = {
    "analyze": Kind(AnalyzeRequest, "interactive"),
    "rows": Kind(RowsRequest, "interactive"),
    "visual": Kind(VisualRequest, "interactive"),
    "thumb": Kind(ThumbRequest, "interactive"),
    "plotly_js": Kind(PlotlyRequest, "interactive"),
    "stats": Kind(StatsRequest, "stats"),
    "values": Kind(ValuesRequest, "stats"),
    "population": Kind(PopulationRequest, "population"),
    "similar": Kind(SimilarRequest, "population"),
    "add": Kind(AddRequest, "comm"),
    "select_all": Kind(SelectAllRequest, "comm"),
    "pick": Kind(PickRequest, "comm"),
    "select_ids": Kind(SelectIdsRequest, "comm", "the ids: uint32, little-endian"),
    "trust": Kind(TrustRequest, "trust"),
    "sanity": Kind(SanityRequest, "sanity"),
}

REPLIES: dict[str, Kind] = {
    "analysis": Kind(AnalysisReply, buffers="one uint8 map per layer, then the input PNG, then "
                     "a segmentation's pixel predictions"),
    "rows": Kind(RowsReply, buffers="one PNG thumbnail per row"),
    "stats": Kind(StatsReply),
    "visual": Kind(VisualReply, buffers="one PNG when kind is image"),
    "plotly_js": Kind(PlotlyReply, buffers="plotly.min.js"),
    "thumb": Kind(ThumbReply, buffers="one PNG"),
    "population": Kind(PopulationReply, buffers="coordinates (float32 pairs), one per column"),
    "population_progress": Kind(PopulationProgress),
    "population_coords": Kind(PopulationCoords, buffers="coordinates (float32 pairs)"),
    "population_error": Kind(PopulationError),
    "similar": Kind(SimilarReply),
    "values": Kind(ValuesReply),
    "trust": Kind(TrustReply),
    "sanity_progress": Kind(SanityProgress),
    "sanity": Kind(SanityReply),
    "trust_error": Kind(TrustError),
    "error": Kind(ErrorReply),
}
