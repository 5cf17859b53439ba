"""Who runs what: the threads behind a SampleLens and the locks they share.

Threads
- The **comm thread** (the kernel's): delivers the page's messages and trait changes. It runs
  the trait validators and observers, and answers the ``"comm"`` requests at once (``add``,
  ``select_all``, ``pick``, ``select_ids``: they only change traits). Validators never run a
  model; they check against what is known (``Session.known_num_classes``, the analysis store's
  depths).
- One :class:`LatestWorker` per background thread of ``protocol.THREADS``, started on first
  use: ``interactive`` (analyses, list rows, visualizers, thumbnails, plotly.js),
  ``stats`` (a whole slice's predictions, slow: on its own so analyses interleave),
  ``population`` (features, projections, *Fetch similar*), ``trust`` (the Trust view's
  deletion/insertion curve, a few depths at a time) and ``sanity`` (its randomisation test,
  stage by stage). Per request kind only the newest pending request is kept; a long one
  (``trust``, ``sanity``) also stops between two of its steps once a newer one of its kind
  waits (``Workers.superseded``).
- The **UMAP thread** of each (model, slice) (``population.project_in_background``), which runs
  numpy and umap-learn only, never a model.
- With ``background=False`` everything runs on the comm thread.
- Names: ``samplelens-<n>-interactive``, ``-stats``, ``-population``, ``-trust``,
  ``-sanity``, ``-umap`` (``<n>``: the
  widget's number, ``Workers.prefix``); the process's one ``samplelens-umap-warm-up``.

Stopping
- ``Workers.close()`` (``SampleLens.close``): pending requests are dropped, ``closed`` is set
  and the threads are joined (bounded). A slice's pass stops between two batches (its
  ``stop_check``, ``Answers.check_open``, raises ``WidgetClosed`` once ``closed`` is set). The
  UMAP threads are cancelled by ``Population.close`` (``population.projection``).
- At interpreter exit (a script's end, a kernel's shutdown or restart) the same happens before
  the ``atexit`` handlers run (``population.shutdown``): a daemon thread still inside torch
  when Python finalizes would abort the process.

Locks
- ``Session.lock`` (an RLock), the one rule: **one model computation at a time**. It guards
  every forward and backward of every model (analyses, predictions, feature batches) and the
  analyses' cache. Long passes take it per batch, so an interactive analysis waits at most one
  batch.
- ``Session._data_lock``: item reads and the item and picture caches (a thumbnail does not wait
  for a batch's forward). Taken inside the model lock (a pass's reads), never around it.
- ``SliceStats``' once-locks: a slice's statistics are computed once even if two threads ask.
- ``Population``'s lock: one feature extraction at a time; it is taken before the model lock,
  never inside it, so the two cannot deadlock.
- Each ``LatestWorker``'s condition guards its pending requests only.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from samplelens_widget.population import shutdown
from samplelens_widget.protocol.messages import REQUESTS, THREADS

__all__ = ["CLOSE_TIMEOUT_S", "LatestWorker", "WidgetClosed", "Workers"]

#: how long ``close()`` waits for the threads (seconds)
CLOSE_TIMEOUT_S = 10.0
_numbers = itertools.count(1)


class WidgetClosed(RuntimeError):
    """The widget was closed: raised to stop its passes, and by its methods afterwards."""


class LatestWorker:
    """One background thread; per channel only the newest pending request is kept.

    ``submit(channel, request)`` replaces any request of that channel still waiting (the older
    one is dropped and counted in ``dropped``); ``handler(channel, request)`` runs on the thread.
    """

    def __init__(
        self,
        handler: Callable[[str, Any], None],
        channels: tuple[str, ...],
        name: str = "samplelens-worker",
    ) -> None:
        self.handler = handler
        self.channels = channels
        self._pending: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def submit(self, channel: str, request: Any) -> None:
        with self._cond:
            if self._closed:  # a closed worker takes nothing more
                return
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

    def waiting(self, channel: str) -> bool:
        """True when a request of ``channel`` waits (a newer one than the running one)."""
        with self._cond:
            return channel in self._pending

    def wait_idle(self, timeout: float | None = 30.0) -> bool:
        """Block until nothing is pending or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self) -> None:
        """Drop the pending requests and let the thread end after the running one; returns at
        once (``join`` waits)."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (after ``close``); False on timeout."""
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()


Handler = Callable[[str, Any], None]


class Workers:
    """Routes each request kind to its thread (``protocol.REQUESTS``): ``"comm"`` kinds and,
    with ``background=False``, every kind run at once on the caller's thread; the others go
    to their thread's :class:`LatestWorker` (named ``<prefix>-<thread>``), started on first
    use. ``handle(kind, request)`` runs the request. ``closed`` is set by ``close()`` (or at
    interpreter exit): requests are then ignored, and the handlers stop their long passes."""

    def __init__(self, handle: Handler, background: bool = True) -> None:
        self.handle = handle
        self.background = background
        self.prefix = f"samplelens-{next(_numbers)}"
        self.closed = threading.Event()
        self.threads: dict[str, LatestWorker] = {}
        self._lock = threading.Lock()
        shutdown.stop_at_exit(self)

    def submit(self, kind: str, request: Any) -> None:
        if self.closed.is_set():
            return
        thread = REQUESTS[kind].thread
        if not self.background or thread == "comm" or thread is None:
            self.handle(kind, request)
            return
        with self._lock:
            if self.closed.is_set():
                return
            worker = self.threads.get(thread)
            if worker is None:
                worker = self.threads[thread] = LatestWorker(
                    self.handle, THREADS[thread], name=f"{self.prefix}-{thread}"
                )
        worker.submit(kind, request)

    def superseded(self, kind: str) -> bool:
        """True when the request of ``kind`` running now should stop between two of its steps:
        the widget is closed, or a newer request of that kind waits for its thread (the newest
        wins). Always False for requests run at once (``background=False``, ``"comm"``)."""
        if self.closed.is_set():
            return True
        thread = REQUESTS[kind].thread
        worker = self.threads.get(thread) if thread is not None else None
        return worker is not None and worker.waiting(kind)

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until every thread is idle; False on timeout."""
        ok = True
        for worker in list(self.threads.values()):
            ok = worker.wait_idle(timeout) and ok
        return ok

    # shutdown.Stoppable
    def stop(self) -> None:
        """Set ``closed``, drop the pending requests, let each thread end after its request."""
        with self._lock:
            self.closed.set()
            workers = list(self.threads.values())
        for worker in workers:
            worker.close()

    def settle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s in all) for the threads to end; False on timeout."""
        deadline = time.monotonic() + timeout
        ok = True
        for worker in list(self.threads.values()):
            ok = worker.join(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """``stop`` then ``settle``: True when every thread has ended."""
        self.stop()
        return self.settle(timeout)
