"""One pass of a model over a whole slice: the slice's statistics and the population's features
from the same forwards, each item read once.

``SlicePass`` (one per ``SliceStats``) runs ``SliceStats.predict`` over (model, slice) batch by
batch (the items read once, through the session's item cache: outputs, labels, losses, label
sets, pixel accuracies as the sample list reads them), with a ``population.LayerTap`` on the
embed layer around each batch; each batch holds the session's model lock, so an analysis
waits one batch at most. Whoever asks first (the page's statistics on the stats thread, the
population on its thread) runs the pass; the other waits for it, told its progress, and takes
its result.

Features the feature cache already holds (memory or disk) are taken from it and the pass
computes the statistics only; ``early_features`` hands them to the population as soon as the
pass's plan has found them, so the scatter shows while the statistics go on. The statistics
are not cached on disk: the data set's fingerprint reads a few items, and a label corrected
elsewhere must not leave a stale accuracy.
A bad embed layer leaves the statistics whole; its error is kept for the population.

Locks: the population's lock (if its caller holds it) -> the pass's once-lock -> the model
lock. ``FeatureSource.feature_plan`` runs inside the pass, on either thread: it takes the model
lock only, never the population's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from samplelens_widget.model_lock import BatchClock
from samplelens_widget.population.cache import FeatureCache
from samplelens_widget.population.features import FeaturePlan, Features, LayerTap

if TYPE_CHECKING:
    from samplelens_widget.slice_stats import SliceStats

__all__ = ["FeatureSource", "PassResult", "SlicePass", "summary"]

Progress = Callable[[int, int], Any]
Key = tuple[str, str]
#: seconds ``early_features`` waits for a running pass to find its features' plan
PLAN_WAIT_S = 30.0
#: seconds of one batch of the slice pass under the model lock (model_lock.BatchClock)
PASS_BATCH_S = 0.08


class FeatureSource(Protocol):
    """Where the pass's features come from and go (the widget's ``Population``): the plan of
    a (model, slice) (the cached features, or a tap on the embed layer for the pass to fill)
    and the cache the computed ones are put in."""

    cache: FeatureCache
    chunk: int  # the pass's batch size

    def feature_plan(
        self, model_name: str, slice_name: str
    ) -> tuple[FeaturePlan, LayerTap | None]: ...


@dataclass(frozen=True)
class PassResult:
    """What one pass over a slice gave: the slice's ``stats`` (``SliceStats.of_slice``) and
    the population's ``features`` (None without a feature source, or with an ``error``)."""

    stats: dict[str, Any]
    features: Features | None = None
    error: Exception | None = None


class SlicePass:
    """The one pass of each (model, slice), run once (see the module's docstring).
    ``source``: the population's features (``None``: the statistics only, in batches of
    ``SliceStats.slice_batch_size``; else of ``source.chunk``)."""

    def __init__(self, stats: SliceStats) -> None:
        self.stats = stats
        self.source: FeatureSource | None = None
        self._results: dict[Key, PassResult] = {}
        self._once: dict[Key, threading.Lock] = {}
        self._followers: dict[Key, list[Progress]] = {}
        self._done: dict[Key, tuple[int, int]] = {}
        self._plans: dict[Key, FeaturePlan | None] = {}  # of the pass that runs or ran
        self._planned: dict[Key, threading.Event] = {}  # set once that pass has its plan
        self._guard = threading.Lock()
        #: called before each batch; what it raises stops the pass (the widget's: once closed)
        self.stop_check: Callable[[], None] | None = None

    def known(self, model_name: str, slice_name: str) -> PassResult | None:
        """The pass's result if it has run (never runs it)."""
        return self._results.get((model_name, slice_name))

    def result(
        self, model_name: str, slice_name: str, progress: Progress | None = None
    ) -> PassResult:
        """The pass over (model, slice), run once. The first caller runs it: ``progress(done,
        total)`` with 0 first and after each batch (an exception it raises stops the pass; the
        next caller runs it anew). A caller who comes while it runs waits for it, its
        ``progress`` told where the pass is and then after each batch (its exceptions
        ignored)."""
        key = (model_name, slice_name)
        found = self._results.get(key)
        if found is not None:
            return found
        with self._guard:
            once = self._once.setdefault(key, threading.Lock())
        if not once.acquire(blocking=False):  # someone else runs it: follow it
            with self._guard:
                done = self._done.get(key)
                if progress is not None:
                    self._followers.setdefault(key, []).append(progress)
            if progress is not None and done is not None:
                _quietly(progress, *done)
            once.acquire()
            with self._guard:
                if progress is not None:
                    self._followers[key].remove(progress)
        try:
            if key not in self._results:
                self._results[key] = self._run(model_name, slice_name, progress)
            return self._results[key]
        finally:
            with self._guard:  # a pass that failed before its plan: no one waits for it
                self._planned.setdefault(key, threading.Event()).set()
            once.release()

    def features(
        self, model_name: str, slice_name: str, progress: Progress | None = None
    ) -> Features:
        """The population's features of (model, slice) from the pass; its error if the embed
        layer failed."""
        res = self.result(model_name, slice_name, progress)
        if res.features is None:
            if res.error is not None:
                raise res.error
            raise ValueError(f"no features of slice {slice_name!r}: the pass had no source")
        return res.features

    def early_features(self, model_name: str, slice_name: str) -> Features | None:
        """The features of (model, slice) without waiting for the statistics: the pass's if it
        ran, the cache's (memory or disk) as soon as the running pass has found them there,
        or, with no pass running, as the source's plan finds them; None when the pass must
        compute them (then ``features`` follows or runs it)."""
        key = (model_name, slice_name)
        found = self._results.get(key)
        if found is not None:
            return found.features
        with self._guard:
            once = self._once.setdefault(key, threading.Lock())
            planned = self._planned.setdefault(key, threading.Event())
        if once.locked():  # a pass runs: its plan says, in a moment
            planned.wait(PLAN_WAIT_S)
            plan = self._plans.get(key)
            return None if plan is None else plan.hit
        if self.source is None or not self.source.cache.may_hold():
            return None
        try:  # its fingerprint reads a few items; the pass plans again (and reads them again)
            plan, _ = self.source.feature_plan(model_name, slice_name)
        except Exception:  # a bad embed layer: the pass reports it
            return None
        return plan.hit

    # ------------------------------------------------------------------ the pass
    def _run(self, model_name: str, slice_name: str, progress: Progress | None) -> PassResult:
        key = (model_name, slice_name)
        s = self.stats
        n = s.slice_len(slice_name)
        plan, tap, error = self._plan(model_name, slice_name, n)
        with self._guard:
            self._plans[key] = plan
            self._planned.setdefault(key, threading.Event()).set()
        parts: list[dict[str, Any]] = []
        pooled: list[np.ndarray] = []
        size = s.slice_batch_size if self.source is None else self.source.chunk
        self._report(key, progress, 0, n)
        # batches of ~PASS_BATCH_S under the lock, up to `size` items: a click's analysis
        # waits for the one running at most
        clock = BatchClock(size, target=PASS_BATCH_S)
        start = 0
        while start < n:
            if self.stop_check is not None:
                self.stop_check()
            ids = list(range(start, min(start + clock.size, n)))
            start = ids[-1] + 1
            # the lock per batch (its item reads and forwards), after any analysis that waits
            with s.lock.background(), tap.hooked() if tap is not None else nullcontext():
                t0 = time.perf_counter()
                parts.append(s.predict(model_name, slice_name, ids, len(ids)))
                clock.took(time.perf_counter() - t0, len(ids))
            if tap is not None and tap.error is None:
                taken = tap.take()
                if taken is not None:
                    pooled.append(taken.cpu().numpy())
            self._report(key, progress, ids[-1] + 1, n)
        features = None if plan is None else plan.hit
        if tap is not None and plan is not None and self.source is not None:
            if tap.error is not None:
                error = tap.error
            elif sum(len(p) for p in pooled) != n:
                error = ValueError(f"embed_layer: {tap.name!r} gave features of some samples only")
            else:
                stored, name = self.source.cache.put(plan.key, np.concatenate(pooled), tap.name)
                features = Features(stored, name, plan.key, "computed")
        k = s.known_num_classes(model_name) if n else 0
        return PassResult(summary(_joined(parts), k or 0), features, error)

    def _plan(
        self, model_name: str, slice_name: str, n: int
    ) -> tuple[FeaturePlan | None, LayerTap | None, Exception | None]:
        """The source's plan, or the reason there is none (the statistics go on without)."""
        if self.source is None or n == 0:
            return None, None, None
        try:
            plan, tap = self.source.feature_plan(model_name, slice_name)
        except Exception as err:  # a bad embed layer: the population reports it
            return None, None, err
        return plan, tap, None

    def _report(self, key: Key, progress: Progress | None, done: int, total: int) -> None:
        with self._guard:
            self._done[key] = (done, total)
            followers = list(self._followers.get(key, ()))
        if progress is not None:
            progress(done, total)
        for follow in followers:
            _quietly(follow, done, total)


def _quietly(progress: Progress, done: int, total: int) -> None:
    try:
        progress(done, total)
    except Exception:  # a follower's progress must not stop the pass of the one who runs it
        pass


def _joined(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``SliceStats.predict``'s dicts of consecutive batches as one (arrays concatenated, lists
    joined; a column only some batches have is left out)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return {
            "predictions": np.zeros(0, np.int64),
            "labels": np.zeros(0, np.int64),
            "losses": np.zeros(0, np.float64),
        }
    out: dict[str, Any] = {}
    for name in parts[0]:
        columns = [p[name] for p in parts if name in p]
        if len(columns) < len(parts):
            continue
        if isinstance(columns[0], np.ndarray):
            out[name] = np.concatenate(columns)
        else:
            out[name] = [v for c in columns for v in c]
    return out


def summary(p: dict[str, Any], k: int) -> dict[str, Any]:
    """A slice's statistics from ``SliceStats.predict``'s columns of every sample ``p`` and
    the model's number of classes ``k``: ``p`` plus ``confusion``, ``accuracy`` and
    ``num_classes`` (a multi-label model's accuracy: the share of samples whose label set is
    predicted exactly, no confusion; a segmentation's: the mean pixel accuracy over items with
    a mask)."""
    if "correct" in p:  # multi-label: a sample is right when its whole label set is
        right = p["correct"][p["correct"] >= 0]
        acc = float(right.mean()) if right.size else None
        return {**p, "confusion": None, "accuracy": acc, "num_classes": k}
    if "pixel_accuracy" in p:  # segmentation: the mean pixel accuracy of the masked items
        pa = p["pixel_accuracy"][np.isfinite(p["pixel_accuracy"])]
        acc = float(pa.mean()) if pa.size else None
        return {**p, "confusion": None, "accuracy": acc, "num_classes": k}
    labelled = (p["labels"] >= 0) & (p["labels"] < k)
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (p["labels"][labelled], p["predictions"][labelled]), 1)
    acc = (
        float((p["labels"][labelled] == p["predictions"][labelled]).mean())
        if labelled.any()
        else None
    )
    return {**p, "confusion": conf, "accuracy": acc, "num_classes": k}
