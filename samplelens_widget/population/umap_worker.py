"""umap-learn in a worker process, off the kernel's GIL.

umap-learn's first fit in a process is mostly numba compiling its code, and numba's compiler is
Python: run in a thread of the kernel, it holds the GIL for seconds at a time, and every other
thread of the kernel (the one that answers a click with its overlay) waits for it. A click
during the widget's first minute took 233 ms median in the kernel and up to 1 s with UMAP
compiling in a thread, 65 ms without. So the fit runs in one worker process per kernel:

- ``WORKER.start()`` launches it (``python -m samplelens_widget.population.umap_worker``, no
  ``multiprocessing``: nothing of the user's ``__main__`` is imported again). It compiles
  umap-learn's code with a small fit of its own first (numba's cache on disk, see
  ``projection._numba_cache_dir``), then serves fits, one at a time, until its stdin closes.
- ``WORKER.fit(data, knn, params, cancelled)`` sends one fit (the k-NN graph is computed in
  the kernel with torch, as before) and waits for the coordinates, polling ``cancelled()``
  every 50 ms: a cancelled fit kills the worker (the next fit starts a new one). An error of
  the fit comes back as a ``RuntimeError`` with its text.
- The interpreter's exit kills it (``shutdown.stop_at_exit``); should the kernel die without
  an exit, the worker ends when it finds its stdin closed. It runs in a session of its own: a
  kernel interrupt (SIGINT to the kernel's process group) does not reach it. It lowers its own
  priority (``os.nice(NICE)``): where cores are short, a click's analysis and the browser go
  before a projection.
- A worker that cannot start, or dies before it ever answers (the package not importable by
  ``sys.executable``, say), makes ``available()`` False with the reason (the end of its
  stderr) in ``WORKER.broken``: fits then run in a thread, as before.

Messages: an 8-byte little-endian length, then a pickle. ``available()``: POSIX (``select`` on
the pipe) and ``SAMPLELENS_UMAP_WORKER`` not ``"0"``; elsewhere the fit runs in a thread as
before (``projection.umap_2d``).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from samplelens_widget.population import shutdown

__all__ = ["WORKER", "UmapWorker", "WorkerUnavailable", "available"]

#: seconds between two looks at ``cancelled()`` while a fit runs in the worker
POLL_S = 0.05
#: the worker's niceness: it runs at a lower priority than the kernel that started it
NICE = 10


class WorkerUnavailable(RuntimeError):
    """The worker process could not be started or died before it ever answered (its text says
    why): fits run in a thread from then on (``available()`` is False)."""


def available() -> bool:
    """Whether fits run in the worker process here (POSIX, not switched off, and the worker
    has not failed to start)."""
    return (
        os.name == "posix"
        and os.environ.get("SAMPLELENS_UMAP_WORKER", "1") != "0"
        and WORKER.broken is None
    )


def _send(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the pipe closed")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _recv(stream: IO[bytes]) -> Any:
    (n,) = struct.unpack("<Q", _read_exact(stream, 8))
    return pickle.loads(_read_exact(stream, n))


class UmapWorker:
    """The kernel's one UMAP worker process (see the module's docstring)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._start_lock = threading.Lock()
        self._fit_lock = threading.Lock()  # one fit at a time
        self._errors: IO[bytes] | None = None  # the worker's stderr (a temporary file)
        self._answered = 0  # fits answered by any worker of this process
        #: why the worker cannot run here (None: it can)
        self.broken: str | None = None

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Launch the worker if it does not run (it compiles umap-learn's code at once)."""
        from samplelens_widget.population.projection import _numba_cache_dir

        with self._start_lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            if shutdown.exiting.is_set():
                raise RuntimeError("the interpreter is exiting: no UMAP worker is started")
            _numba_cache_dir()  # in the environment the worker inherits
            self._errors = tempfile.TemporaryFile()
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "samplelens_widget.population.umap_worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self._errors,
                    env=dict(os.environ),
                    # its own session: a kernel interrupt (SIGINT to the kernel's process
                    # group) is not for the worker
                    start_new_session=True,
                )
            except OSError as err:
                self.broken = f"the UMAP worker could not be started: {err}"
                raise WorkerUnavailable(self.broken) from err
            shutdown.stop_at_exit(self)

    def fit(
        self,
        data: np.ndarray,
        knn: tuple[Any, ...],
        params: dict[str, Any],
        cancelled: Callable[[], bool],
    ) -> np.ndarray:
        """UMAP coordinates of ``data`` from the worker; ``Cancelled`` (from
        ``projection``) once ``cancelled()`` is true (the worker is killed)."""
        from samplelens_widget.population.projection import Cancelled

        while not self._fit_lock.acquire(timeout=POLL_S):  # another widget's fit runs
            if cancelled():
                raise Cancelled
        try:
            if cancelled():
                raise Cancelled
            self.start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            try:
                # the worker reads its stdin on a thread of its own, even while it compiles:
                # this write does not wait for the compilation
                _send(proc.stdin, ("fit", data, knn, params))
                while True:
                    if cancelled():
                        raise Cancelled
                    ready, _, _ = select.select([proc.stdout], [], [], POLL_S)
                    if ready:
                        break
                    if proc.poll() is not None:
                        raise self._ended(proc)
                status, value = _recv(proc.stdout)
            except BaseException as err:  # cancelled, the exit, a dead worker: none left behind
                ended = (
                    self._ended(proc)
                    if isinstance(err, (EOFError, OSError, ValueError))
                    and not cancelled()
                    else None
                )
                self.kill()
                if cancelled() and not isinstance(err, Cancelled):
                    raise Cancelled from None
                if ended is not None:
                    raise ended from err
                raise
            self._answered += 1
        finally:
            self._fit_lock.release()
        if status == "error":
            raise RuntimeError(f"UMAP in the worker process: {value}")
        return np.ascontiguousarray(value, dtype=np.float32)

    def _ended(self, proc: subprocess.Popen[bytes]) -> RuntimeError:
        """The error of a worker that ended without an answer, with the end of its stderr;
        one that never answered any fit makes the worker unavailable here."""
        tail = ""
        if self._errors is not None:
            try:
                self._errors.seek(0)
                tail = self._errors.read().decode("utf-8", "replace").strip()[-600:]
            except OSError:
                pass
        text = f"the UMAP worker process ended (exit status {proc.poll()})"
        text += f": {tail}" if tail else ""
        if self._answered == 0 and proc.poll() not in (None, -9):  # not killed by us
            self.broken = text
            return WorkerUnavailable(text)
        return RuntimeError(text)

    def kill(self) -> None:
        """End the worker now (a fit in it is lost)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        errors, self._errors = self._errors, None
        for stream in (proc.stdin, proc.stdout, errors):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    # shutdown.Stoppable
    def stop(self) -> None:
        self.kill()

    def settle(self, timeout: float) -> bool:
        return self._proc is None


#: the kernel's worker
WORKER = UmapWorker()


def _read_requests(stdin: IO[bytes], inbox: queue.Queue[Any]) -> None:
    """The worker's reader thread: every request into ``inbox`` as it comes (the kernel's
    write never waits for the compilation), then None when stdin closes."""
    try:
        while True:
            inbox.put(_recv(stdin))
    except (EOFError, OSError):
        inbox.put(None)


def main() -> None:
    """The worker: compile umap-learn's code with a small fit, then serve fits until stdin
    closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel's interrupts are not for us
    # a background projection: where the CPU is short, the kernel's analyses and the browser
    # go first (numba's compilation took a core from a click's analysis)
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICE)
    stdin = sys.stdin.buffer
    # the replies go out on a copy of fd 1; fd 1 itself (and Python's stdout) become stderr,
    # so that nothing a library prints, from Python or from C, lands in the pipe
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inbox: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_read_requests, args=(stdin, inbox), daemon=True).start()
    from samplelens_widget.population.projection import _fit_umap, umap_2d

    try:
        points = np.random.default_rng(0).random((512, 8), dtype=np.float32)
        umap_2d(points, n_epochs=10)  # compiles (or loads numba's cache)
    except Exception:  # a warm-up only: the real fit reports errors
        pass
    while True:
        request = inbox.get()
        if request is None:
            return
        _, data, knn, params = request
        try:
            reply: tuple[str, Any] = ("ok", _fit_umap(data, knn, params))
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}"[:500])
        try:
            _send(stdout, reply)
        except (BrokenPipeError, OSError):
            return


if __name__ == "__main__":
    main()
