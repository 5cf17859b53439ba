"""The session's model lock, with the interactive work first.

Every forward and backward of a model runs under one lock (``Session.lock``). Background
passes over a slice take it once per batch. What an analysis waits for is the batch in flight
(a 256-item batch of the demo model took 1.5-3 s on 2 cores: a click in the widget's first
minute waited seconds for its overlay), and a plain ``threading.RLock`` promises no order
among its waiters. Here a thread that waits in a plain ``with lock:`` (an analysis, the sample
list's rows) is counted and ``background()`` (a pass, before each batch) lets every such
waiter go first; ``BatchClock`` keeps each background batch near its target (0.15 s by
default; the slice pass's batches 0.08 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

__all__ = ["ModelLock", "BatchClock"]


class ModelLock:
    """A reentrant lock (``with lock:``) whose waiters go before ``background()`` takers."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        with self._cond:
            self._waiting += 1
        try:
            return self._lock.acquire(blocking, timeout)
        finally:
            with self._cond:
                self._waiting -= 1
                self._cond.notify_all()

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    @property
    def waiting(self) -> int:
        """How many threads wait in ``acquire`` now."""
        return self._waiting

    @contextmanager
    def background(self, patience: float = 30.0) -> Iterator[None]:
        """Hold the lock for one batch of background work, after every waiting ``acquire``
        (at most ``patience`` seconds of giving way, so a stream of analyses cannot stop a
        pass for good)."""
        self._take_after_waiters(time.monotonic() + patience)
        try:
            yield
        finally:
            self._lock.release()

    def give_way(self, patience: float = 30.0) -> None:
        """Inside ``background()``, between two steps of one long computation (the stages of a
        sanity check): let every waiting ``acquire`` go first, then hold the lock again."""
        if not self._waiting:
            return
        self._lock.release()
        self._take_after_waiters(time.monotonic() + patience)

    def _take_after_waiters(self, deadline: float) -> None:
        while True:
            with self._cond:
                while self._waiting and time.monotonic() < deadline:
                    self._cond.wait(0.05)
            self._lock.acquire()
            if not self._waiting or time.monotonic() >= deadline:
                return
            self._lock.release()  # someone came in meanwhile: after them


class BatchClock:
    """Batch sizes for background work that holds the model lock: each batch about ``target``
    seconds, so that an analysis arriving meanwhile waits that long at most. Starts at
    ``first`` items, grows and shrinks by the time the last batch took, within
    ``[smallest, largest]``."""

    def __init__(
        self, largest: int, target: float = 0.15, first: int = 16, smallest: int = 4
    ) -> None:
        self.largest = max(1, largest)
        self.smallest = min(smallest, self.largest)
        self.size = min(max(first, self.smallest), self.largest)
        self.target = target

    def took(self, seconds: float, items: int) -> None:
        """The last batch of ``items`` took ``seconds``: the next size."""
        if items <= 0:
            return
        per_item = max(seconds, 1e-6) / items
        want = int(self.target / per_item)
        # at most double at a time: one fast batch (warm caches) is no promise
        self.size = max(self.smallest, min(self.largest, want, 2 * items))
