"""Who runs what: the threads behind a SampleLens and the locks they share.

Threads
- The **comm thread** (the kernel's): delivers the page's messages and trait changes. It runs
  the trait validators and observers, and answers the ``"comm"`` requests at once (``add``,
  ``select_all``, ``pick``, ``select_ids``: they only change traits). Validators never run a
  model; they check against what is known (``Session.known_num_classes``, the analysis store's
  depths).
- One :class:`LatestWorker` per background thread of ``protocol.THREADS``, started on first
  use: ``interactive`` (analyses, list rows, visualizers, thumbnails, plotly.js),
  ``stats`` (a whole slice's predictions, slow: on its own so analyses interleave) and
  ``population`` (features, projections, *Fetch similar*). Per request kind only the newest
  pending request is kept.
- The **UMAP thread** of each (model, slice) (``population.project_in_background``), which runs
  numpy and umap-learn only, never a model.
- With ``background=False`` everything runs on the comm thread.

Locks
- ``Session.lock`` (an RLock), the one rule: **one model computation at a time**. It guards
  every forward and backward of every model (analyses, predictions, feature batches) and the
  session's caches. Long passes take it per batch, so an interactive analysis waits at most one
  batch.
- ``SliceStats``' once-locks: a slice's statistics are computed once even if two threads ask.
- ``Population``'s lock: one feature extraction at a time; it is taken before the model lock,
  never inside it, so the two cannot deadlock.
- Each ``LatestWorker``'s condition guards its pending requests only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from samplelens_widget.protocol.messages import REQUESTS, THREADS

__all__ = ["LatestWorker", "Workers"]


class LatestWorker:
    """One background thread; per channel only the newest pending request is kept.

    ``submit(channel, request)`` replaces any request of that channel still waiting (the older
    one is dropped and counted in ``dropped``); ``handler(channel, request)`` runs on the thread.
    """

    def __init__(
        self, handler: Callable[[str, Any], None], channels: tuple[str, ...]
    ) -> None:
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


Handler = Callable[[str, Any], None]


class Workers:
    """Routes each request kind to its thread (``protocol.REQUESTS``): ``"comm"`` kinds and,
    with ``background=False``, every kind run at once on the caller's thread; the others go
    to their thread's :class:`LatestWorker`, started on first use. ``handle(kind, request)``
    runs the request."""

    def __init__(self, handle: Handler, background: bool = True) -> None:
        self.handle = handle
        self.background = background
        self.threads: dict[str, LatestWorker] = {}

    def submit(self, kind: str, request: Any) -> None:
        thread = REQUESTS[kind].thread
        if not self.background or thread == "comm" or thread is None:
            self.handle(kind, request)
            return
        worker = self.threads.get(thread)
        if worker is None:
            worker = self.threads[thread] = LatestWorker(self.handle, THREADS[thread])
        worker.submit(kind, request)

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until every thread is idle; False on timeout."""
        ok = True
        for worker in list(self.threads.values()):
            ok = worker.wait_idle(timeout) and ok
        return ok

    def close(self) -> None:
        for worker in self.threads.values():
            worker.close()
