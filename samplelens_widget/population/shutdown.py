"""Background threads stop before the interpreter exits.

A daemon thread still inside torch when Python finalizes kills the process: it is stopped as it
takes the GIL back, which unwinds through torch's C++ and ends in ``std::terminate``
(``terminate called without an active exception``, exit status 134), skipping the rest of the
exit. So whatever owns such threads (a widget's workers, a background projection) registers
here with ``stop_at_exit`` (weakly: a collected owner drops out). One hook, registered once,
runs when the main thread ends, before the ``atexit`` handlers and before the daemon threads
are stopped; it asks every live owner to stop (``stop()``, at once), then gives them together
at most ``EXIT_TIMEOUT_S`` to end (``settle(timeout)``). No thread may be left running: one
that comes back from C++ code (torch, or an extension module that an import loads) into a
finalizing interpreter aborts the process.

Pure standard library: the widget and the population package both use it.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["EXIT_TIMEOUT_S", "Stoppable", "exiting", "stop_all", "stop_at_exit"]

#: the most the interpreter's exit waits for the registered threads, all together (seconds)
EXIT_TIMEOUT_S = 10.0
#: set once the exit hook has run: owners start no new thread after it
exiting = threading.Event()


class Stoppable(Protocol):
    """An owner of background threads."""

    def stop(self) -> None:
        """Ask the threads to stop; returns at once."""

    def settle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) for the threads to end; False on timeout."""


_live: weakref.WeakSet[Stoppable] = weakref.WeakSet()
_lock = threading.Lock()
_hooked = False


def stop_at_exit(owner: Stoppable) -> None:
    """Stop ``owner``'s threads (``stop`` then ``settle``) before the interpreter exits. The
    owner is held weakly; the hook is registered on the first call."""
    global _hooked
    with _lock:
        if not _hooked:
            _hooked = True
            _register(_at_exit)
        _live.add(owner)


def stop_all(owners: list[Stoppable], timeout: float) -> bool:
    """``stop()`` every owner, then ``settle`` them within ``timeout`` seconds in all; False
    if one did not settle in time."""
    for owner in owners:
        try:
            owner.stop()
        except Exception:  # one owner's failure must not keep the others running
            pass
    deadline = time.monotonic() + timeout
    ok = True
    for owner in owners:
        try:
            ok = owner.settle(max(0.0, deadline - time.monotonic())) and ok
        except Exception:
            ok = False
    return ok


def _at_exit() -> None:
    exiting.set()
    with _lock:
        owners = list(_live)
    stop_all(owners, EXIT_TIMEOUT_S)


def _register(hook: Callable[[], None]) -> None:
    """``threading._register_atexit`` (what ``concurrent.futures`` uses): it runs when the main
    thread ends, before non-daemon threads are joined and before the ``atexit`` handlers, so
    that no user handler or library clean-up runs under our threads. Plain ``atexit`` where
    it is missing."""
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(hook)
            return
        except RuntimeError:  # the interpreter is shutting down already
            pass
    atexit.register(hook)
