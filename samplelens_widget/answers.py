"""The answers to the page's background requests: one method per request kind.

``Answers(session, population, send)``: each method takes the decoded request (see
``protocol/messages.py``), computes what it asks through the session or the population and
sends the reply built by ``protocol/replies.py``. They run on the worker threads
(``workers.py``); an exception raised here is reported to the page by the widget. Once
``closed`` is set (the widget closed, or the interpreter exiting) a slice's pass stops between
two batches (``check_open`` raises ``WidgetClosed``: the widget makes it the pass's
``stop_check``) and an analysis request between two keys.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from samplelens_widget.analyses import AnalysisKey
from samplelens_widget.cam.outputs import Output
from samplelens_widget.data import png_bytes
from samplelens_widget.population_view import PopState, Population
from samplelens_widget.protocol import replies
from samplelens_widget.session import Session
from samplelens_widget.slice_stats import class_label, class_mask, class_set, sample_losses
from samplelens_widget.visualizers import plotly_js_bytes, render_visual
from samplelens_widget.workers import WidgetClosed

__all__ = ["DEFAULT_K", "THUMB_HOVER", "Answers"]

DEFAULT_K = 8
THUMB_HOVER = 72
PROGRESS_EVERY_S = 0.1
#: a ``values`` request for more ids than this runs the slice's whole pass first
VALUES_PASS = 512
#: errors of one analysis: reported with its key, the other keys of the request still answered
ANALYSIS_ERRORS = (ValueError, TypeError, RuntimeError, KeyError, IndexError)

Send = Callable[[Any, list[bytes]], None]


class Answers:
    """The background request handlers of one widget. ``current()`` gives the widget's model,
    slice and selection (the defaults of *Fetch similar*)."""

    def __init__(
        self,
        session: Session,
        pop: Population,
        send: Send,
        current: Callable[[], tuple[str, str, list[int]]],
        closed: threading.Event | None = None,
    ) -> None:
        self.session = session
        self.pop = pop
        self.send = send
        self.current = current
        self.closed = threading.Event() if closed is None else closed

    def check_open(self) -> None:
        """Raise ``WidgetClosed`` once ``closed`` is set (between a pass's batches)."""
        if self.closed.is_set():
            raise WidgetClosed("the widget was closed: its computations stop")

    def _reply(self, reply: tuple[Any, list[bytes]]) -> None:
        self.send(*reply)

    def analysis_reply(
        self, key: AnalysisKey, with_image: bool = True, rid: int | None = None
    ) -> tuple[Any, list[bytes]]:
        """The ``analysis`` reply of one key (the analysis computed if it is not stored)."""
        s = self.session
        res = s.analysis(key)
        _, label, _ = s.item(key.slice, key.id)
        true_label = class_label(label, res.num_classes) if res.task != "regression" else None
        image = s.image(key.slice, key.id, key.connection) if with_image else None
        mask = None
        true_set = None
        if res.task == "multilabel":  # a label set, not one class
            true_label, true_set = None, class_set(label, res.num_classes)
        if res.task == "segmentation":
            true_label = None
            found = class_mask(label, tuple(res.logits.shape[2:]), res.num_classes)
            mask = None if found is None else found.numpy()
        # the same loss as the sample list's (slice_stats.sample_losses)
        out = Output(torch.from_numpy(res.logits[:1]), res.task, None)
        loss = sample_losses(out, [label])[0]
        loss_value = None if math.isnan(loss) else loss
        return replies.analysis(
            key.as_dict(), res, true_label, image, rid, mask, loss_value, true_set
        )

    def analyze(self, req: dict[str, Any]) -> None:
        rid = req.get("rid")
        keys = req["keys"]
        images: Sequence[bool] = req.get("images") or [True] * len(keys)
        for raw_key, with_image in zip(keys, images, strict=False):
            if self.closed.is_set():
                return
            try:
                reply = self.analysis_reply(AnalysisKey.from_dict(raw_key), bool(with_image), rid)
            except ANALYSIS_ERRORS as exc:
                self._reply(replies.error(f"{type(exc).__name__}: {exc}", rid, key=raw_key))
                continue
            self._reply(reply)

    def stats(self, req: dict[str, Any]) -> None:
        model, slice_name = req["model"], req["slice"]
        stats = self.session.stats.of_slice(model, slice_name)
        self._reply(replies.stats(model, slice_name, stats, req.get("rid")))

    def rows(self, req: dict[str, Any]) -> None:
        s = self.session
        model, slice_name, ids = req["model"], req["slice"], req["ids"]
        table = s.stats.rows(model, slice_name, ids)
        thumbs = [s.thumbnail(slice_name, i) for i in ids]
        self._reply(replies.rows(model, slice_name, table, thumbs, req.get("rid"), req.get("page")))

    def visual(self, req: dict[str, Any]) -> None:
        s = self.session
        name, slice_name, sample_id = req["name"], req["slice"], req["id"]
        connection = req.get("connection", 0)
        try:
            sample = s.sample(slice_name, sample_id, connection)
        except Exception as exc:
            rendered: tuple[dict[str, Any], list[bytes]] = (
                {"kind": "error", "message": f"{type(exc).__name__}: {exc}"},
                [],
            )
        else:
            rendered = render_visual(s.visualizers[name], sample)
        self._reply(
            replies.visual(name, slice_name, sample_id, connection, rendered, req.get("rid"))
        )

    def plotly_js(self, req: dict[str, Any]) -> None:
        self._reply(replies.plotly_js(plotly_js_bytes(), req.get("rid")))

    def thumb(self, req: dict[str, Any]) -> None:
        slice_name, sample_id = req["slice"], req["id"]
        img = self.session.image(slice_name, sample_id, 0)
        png = png_bytes(img, size=(THUMB_HOVER, THUMB_HOVER))
        self._reply(replies.thumb(slice_name, sample_id, png, req.get("rid")))

    def population(self, req: dict[str, Any]) -> None:
        """``population``: the features (with progress messages), then the scatter; the UMAP
        map follows as ``population_coords`` when it is ready."""
        rid = req.get("rid")
        model, slice_name = req["model"], req["slice"]
        last, phase = [0.0], ["features"]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done in (0, total) or now - last[0] > PROGRESS_EVERY_S:
                last[0] = now
                self._reply(replies.population_progress(model, slice_name, done, total, phase[0]))

        def on_umap(st: PopState) -> None:
            try:
                self._reply(replies.population_coords(st))
            except Exception:  # the comm may be closed by now
                pass

        try:
            self.pop.ensure(model, slice_name, progress=progress, on_umap=on_umap)
            # checked once: the statistics may end between two looks
            partial = self.session.stats.known(model, slice_name) is None
            reply = self.population_reply(model, slice_name, rid, wait=not partial)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            self._reply(replies.population_error(model, slice_name, message, rid))
            self._reply(replies.error(message, rid, request="population"))
            return
        self._reply(reply)
        if not partial:
            return
        # the features came from the cache: the scatter shows now, its colours by prediction,
        # correctness and loss when the slice's statistics are done (the same pass the page's
        # statistics wait for; its failure is reported by that request)
        phase[0], last[0] = "statistics", 0.0
        try:
            self.session.stats.passes.result(model, slice_name, progress)
        except Exception:  # the statistics' failure: the stats request reports it
            return
        self._reply(self.population_reply(model, slice_name))

    def population_reply(
        self, model: str, slice_name: str, rid: int | None = None, wait: bool = True
    ) -> tuple[Any, list[bytes]]:
        """The ``population`` reply of a (model, slice) whose features are computed
        (``wait=False``: without the statistics' columns while they are not known)."""
        st = self.pop.state(model, slice_name)
        columns = self.pop.column_payloads(model, slice_name, wait=wait)
        return replies.population(model, slice_name, st, columns, rid)

    def similar(self, req: dict[str, Any]) -> None:
        """*Fetch similar*: the neighbours of ``ids`` (default: the selection)."""
        rid = req.get("rid")
        model, slice_name, selected = self.current()
        model, slice_name = req.get("model", model), req.get("slice", slice_name)
        ids = req.get("ids")
        if ids is None:
            ids = selected
        k = req.get("k", DEFAULT_K)
        note = self._nothing_to_fetch(slice_name, ids, k)
        if note is not None:  # said in words, not as an error: nothing is wrong
            self._reply(replies.similar(model, slice_name, ids, [], rid, note))
            return
        try:
            found = self.pop.similar(model, slice_name, list(ids), k)
        except Exception as exc:
            self._reply(replies.error(f"Fetch similar: {type(exc).__name__}: {exc}", rid))
            return
        self._reply(replies.similar(model, slice_name, ids, found, rid))

    def _nothing_to_fetch(self, slice_name: str, ids: Sequence[Any], k: Any) -> str | None:
        """Why *Fetch similar* has nothing to add (k is 0, or every sample is in ``ids``), in
        words; None when it has (a bad ``k`` or id is the similarity index's error)."""
        if k == 0 and not isinstance(k, bool):
            return "Fetch similar: k is 0, so there is nothing to fetch; set k to 1 or more."
        n = self.session.slice_len(slice_name)
        have = {i for i in ids if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n}
        if n and len(have) >= n:
            return (
                f"Fetch similar: nothing left to add: all {n} samples of slice "
                f"{slice_name!r} are in the list already."
            )
        return None

    def values(self, req: dict[str, Any]) -> None:
        """The sort columns (loss, confidence) of ``ids``: those of their list rows."""
        model, slice_name, ids = req["model"], req["slice"], req["ids"]
        for i in ids:
            self.session.check_id(slice_name, i)
        if len(ids) > VALUES_PASS:  # many: the slice's one pass (shared with the population)
            self.session.stats.of_slice(model, slice_name)
        table = self.session.stats.rows(model, slice_name, list(ids))
        self._reply(replies.values(model, slice_name, table, req.get("rid")))
