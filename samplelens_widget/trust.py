"""Can I trust this map? The Trust view's computations, for the page and for Python.

- The **Trust curve** (``trust`` requests): ``insertion - deletion`` of the map of one sample at
  each depth (``cam.faithfulness``), the depths nearest the current one first, a few depths per
  reply so that the curve fills in while the rest is computed; the random and edge baselines
  once per sample and target (the page asks for them only when it lacks them: they do not
  depend on the algorithm), after the first chunk. Each chunk holds the session's model lock
  through ``ModelLock.background()``: an analysis the user asks for meanwhile waits one chunk
  at most. Chunks are sized by the time they take (``BatchClock``: ``CHUNK`` depths first, then
  about ``CHUNK_S`` seconds' worth, 1 .. ``MAX_CHUNK``). A newer ``trust`` request (another
  sample, label, algorithm or connection, or the view hidden: ``key`` null) stops the running
  one between two chunks (``Workers.superseded``): nothing more of it is computed or sent.
- The **sanity check** (``sanity`` requests): ``CamEngine.sanity_check`` (the cascading
  randomisation test, on a copy of the model) under the model lock, which it gives to waiting
  analyses between two stages (``ModelLock.give_way``); ``sanity_progress`` after each stage; a
  newer ``sanity`` request stops it between two stages.
- ``lens.faithfulness()`` / ``lens.sanity_check()``: the engine's own calls on the current (or
  given) sample, label, algorithm and connection (``faithfulness_of``, ``sanity_of``).

An error of a request is sent as ``trust_error`` (shown in the Trust view, in words); the thread
and the widget stay usable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from samplelens_widget import arguments as check
from samplelens_widget.analyses import AnalysisKey
from samplelens_widget.cam import CamEngine, CamResult
from samplelens_widget.cam.faithfulness import Faithfulness, partial_faithfulness
from samplelens_widget.cam.targets import Target
from samplelens_widget.model_lock import BatchClock
from samplelens_widget.protocol import replies
from samplelens_widget.session import Session
from samplelens_widget.workers import WidgetClosed

__all__ = [
    "CHUNK",
    "CHUNK_S",
    "CURRENT",
    "MAX_CHUNK",
    "STEPS",
    "Subject",
    "TrustAnswers",
    "faithfulness_of",
    "key_for",
    "nearest_first",
    "sanity_of",
    "subject",
]

#: depths in the first reply of the Trust curve (the demo model: ~0.08 s a depth at 20 steps on
#: 2 idle cores); the next replies hold as many as take about CHUNK_S seconds, MAX_CHUNK at most
CHUNK = 3
CHUNK_S = 0.3
MAX_CHUNK = 8
#: the Trust curve's steps (as ``CamEngine.faithfulness``'s default)
STEPS = 20
#: "the widget's own value" for ``lens.faithfulness(label=...)`` and the like
CURRENT = "current"

Send = Callable[[Any, list[bytes]], None]


class _Stopped(Exception):
    """A newer request of the same kind waits, or the widget closed: stop between two steps."""


def nearest_first(depths: Iterable[int], center: int | None) -> list[int]:
    """``depths`` by their distance to ``center`` (``None``: the deepest), the shallower of two
    at the same distance first: ``nearest_first([1, 2, 3, 4, 5], 3) == [3, 2, 4, 1, 5]``."""
    ds = sorted({int(d) for d in depths})
    if not ds:
        return []
    c = ds[-1] if center is None else int(center)
    return sorted(ds, key=lambda d: (abs(d - c), d))


@dataclass(frozen=True)
class Subject:
    """What a curve or a sanity check is of: the key's engine, the sample's inputs, the target
    the key's maps explain, and (the page's requests) its analysis."""

    engine: CamEngine
    inputs: Any
    target: Target
    result: CamResult | None = None


def subject(session: Session, key: AnalysisKey, with_result: bool = True) -> Subject:
    """The key's engine, inputs and target (as the analysis store reads them), and its
    analysis (from the store, computed if it is not there) when ``with_result``."""
    inputs, true_label, _ = session.item(key.slice, key.id)
    x = inputs[0] if len(inputs) == 1 else tuple(inputs)
    res = session.analysis(key) if with_result else None
    return Subject(session.engines[key.model], x, key.target(true_label), res)


# ------------------------------------------------------------------------- the page's requests
class TrustAnswers:
    """The ``trust`` and ``sanity`` request handlers of one widget. ``superseded(kind)``: the
    running request of ``kind`` should stop (``Workers.superseded``)."""

    def __init__(self, session: Session, send: Send, superseded: Callable[[str], bool]) -> None:
        self.session = session
        self.send = send
        self.superseded = superseded

    def _check(self, kind: str) -> None:
        if self.superseded(kind):
            raise _Stopped(kind)

    def curve(self, req: dict[str, Any]) -> None:
        """A ``trust`` request: the curve's chunks, then nothing more (or a ``trust_error``)."""
        raw = req.get("key")
        if raw is None:  # the view is hidden: this request only stopped the running one
            return
        rid = req.get("rid")
        try:
            self._curve(AnalysisKey.from_dict(raw), raw, req, rid)
        except (_Stopped, WidgetClosed):
            return
        except Exception as exc:
            self.send(*replies.trust_error("trust", raw, _said(exc), None, rid))

    def _curve(self, key: AnalysisKey, raw: Any, req: dict[str, Any], rid: int | None) -> None:
        lock = self.session.lock
        self._check("trust")
        with lock.background():
            sub = subject(self.session, key)
        assert sub.result is not None
        wanted = req.get("depths")
        rest = nearest_first(sub.result.depths if wanted is None else wanted, req.get("depth"))
        steps = req.get("steps", STEPS)
        # the first chunk, the baselines (the bands the points are read against), the rest
        baselines = bool(req.get("baselines", True))
        clock = BatchClock(MAX_CHUNK, target=CHUNK_S, first=CHUNK, smallest=1)
        first = True
        while rest or baselines:
            self._check("trust")
            base_now = baselines and (not first or not rest)
            depths = [] if base_now else rest[:clock.size]
            t0 = time.perf_counter()
            with lock.background():
                found = partial_faithfulness(
                    sub.engine, sub.inputs, sub.target, key.algorithm, key.connection, depths,
                    steps, baselines=base_now, result=sub.result, draw_scores=True,
                )
            if depths:
                clock.took(time.perf_counter() - t0, len(depths))
                rest = rest[len(depths):]
            baselines = baselines and not base_now
            first = False
            self.send(*replies.trust(raw, found, not (rest or baselines), rid))

    def sanity(self, req: dict[str, Any]) -> None:
        """A ``sanity`` request: progress after each stage, then the stages' rhos."""
        raw = req.get("key")
        if raw is None:
            return
        rid = req.get("rid")
        depth = req.get("depth")
        try:
            self._sanity(AnalysisKey.from_dict(raw), raw, depth, rid)
        except (_Stopped, WidgetClosed):
            return
        except Exception as exc:
            self.send(*replies.trust_error("sanity", raw, _said(exc), depth, rid))

    def _sanity(self, key: AnalysisKey, raw: Any, depth: int | None, rid: int | None) -> None:
        lock = self.session.lock
        self._check("sanity")
        with lock.background():
            sub = subject(self.session, key)
            assert sub.result is not None
            layer = sub.result.layer_at(depth)
            self.send(*replies.sanity_progress(raw, layer.depth, 0, 0, rid))

            def progress(done: int, total: int) -> None:
                self.send(*replies.sanity_progress(raw, layer.depth, done, total, rid))
                if done < total:
                    self._check("sanity")
                    lock.give_way()  # an analysis asked for meanwhile goes first

            stages = sub.engine.sanity_check(
                sub.inputs, sub.target, key.algorithm, key.connection, layer.depth,
                progress=progress,
            )
        self.send(*replies.sanity(raw, layer.depth, layer.name, stages, rid))


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------- Python's calls
def key_for(
    session: Session,
    current: AnalysisKey,
    viewed: int | None,
    what: str,
    *,
    sample: Any = None,
    label: Any = CURRENT,
    contrast: Any = CURRENT,
    algorithm: Any = None,
    connection: Any = None,
    titles: dict[str, str],
) -> AnalysisKey:
    """The key ``lens.faithfulness`` / ``lens.sanity_check`` (``what``) works on: the widget's
    current one with the arguments given instead. A bad argument is a ``ValueError`` /
    ``TypeError`` that names it, the value and what is allowed."""
    if sample is None:
        if viewed is None:
            raise ValueError(
                f"sample: None (the viewed sample), but no sample is viewed; pass {what}"
                "(sample=<id>) or set lens.viewed"
            )
        sample_id = int(viewed)
    else:
        try:
            sample_id = session.check_id(current.slice, sample)
        except ValueError as exc:
            raise ValueError(f"sample: {exc}") from None
    k = session.known_num_classes(current.model)
    key = replace(current, id=sample_id)
    if not (isinstance(label, str) and label == CURRENT):
        key = replace(key, label=check.label(label, k, False))
    if not (isinstance(contrast, str) and contrast == CURRENT):
        key = replace(key, contrast=check.contrast(contrast, k, False))
    if algorithm is not None:
        key = replace(key, algorithm=check.algorithm(algorithm, titles))
    if connection is not None:
        n = session.n_inputs(current.slice)
        if isinstance(connection, bool) or not isinstance(connection, int):
            raise TypeError(f"connection: expected an int (0..{n - 1}), got {connection!r}")
        if not 0 <= connection < n:
            raise ValueError(
                f"connection: {connection} is not an input of slice {current.slice!r}; "
                f"allowed: 0..{n - 1}"
            )
        key = replace(key, connection=connection)
    return key


def faithfulness_of(
    session: Session,
    key: AnalysisKey,
    depths: int | Sequence[int] | None = None,
    steps: int = STEPS,
    baseline: Any = None,
    *,
    batch_size: int | None = None,
    draws: int = 3,
    seed: int = 0,
    precision: str = "float32",
) -> Faithfulness:
    """``CamEngine.faithfulness`` of ``key``'s sample, target, algorithm and connection, under
    the session's model lock."""
    with session.lock:
        sub = subject(session, key, with_result=False)
        return sub.engine.faithfulness(
            sub.inputs, sub.target, key.algorithm, key.connection, depths, steps, baseline,
            batch_size=batch_size, draws=draws, seed=seed, precision=precision,
        )


def sanity_of(
    session: Session,
    key: AnalysisKey,
    depth: int | None = None,
    stages: Sequence[str] | None = None,
    progress: Callable[[int, int], object] | None = None,
    *,
    model_factory: Callable[[], nn.Module] | None = None,
    seed: int = 0,
) -> list[tuple[str, float]]:
    """``CamEngine.sanity_check`` of ``key``'s sample, target, algorithm and connection at
    ``depth`` (``None``: the deepest), under the session's model lock."""
    with session.lock:
        sub = subject(session, key, with_result=False)
        return sub.engine.sanity_check(
            sub.inputs, sub.target, key.algorithm, key.connection, depth, stages, progress,
            model_factory=model_factory, seed=seed,
        )

