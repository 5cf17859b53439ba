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
  an exit, the worker ends when it finds its stdin closed.

Messages: an 8-byte little-endian length, then a pickle. ``available()``: POSIX (``select`` on
the pipe) and ``SAMPLELENS_UMAP_WORKER`` not ``"0"``; elsewhere the fit runs in a thread as
before (``projection.umap_2d``).
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from samplelens_widget.population import shutdown

__all__ = ["WORKER", "UmapWorker", "available"]

#: seconds between two looks at ``cancelled()`` while a fit runs in the worker
POLL_S = 0.05


def available() -> bool:
    """Whether fits run in the worker process here (POSIX, not switched off)."""
    return os.name == "posix" and os.environ.get("SAMPLELENS_UMAP_WORKER", "1") != "0"


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
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "samplelens_widget.population.umap_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=dict(os.environ),
            )
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

        with self._fit_lock:
            self.start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            try:
                _send(proc.stdin, ("fit", data, knn, params))
                while True:
                    if cancelled():
                        raise Cancelled
                    ready, _, _ = select.select([proc.stdout], [], [], POLL_S)
                    if ready:
                        break
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"the UMAP worker process ended (exit status {proc.returncode})"
                        )
                status, value = _recv(proc.stdout)
            except (Cancelled, KeyboardInterrupt, EOFError, OSError, RuntimeError):
                self.kill()
                raise
            except BaseException:  # an interruption at the exit, say: leave no worker behind
                self.kill()
                raise
        if status == "error":
            raise RuntimeError(f"UMAP in the worker process: {value}")
        return np.ascontiguousarray(value, dtype=np.float32)

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
        for stream in (proc.stdin, proc.stdout):
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


def main() -> None:
    """The worker: compile umap-learn's code with a small fit, then serve fits until stdin
    closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's print must not land in the pipe
    from samplelens_widget.population.projection import _fit_umap, umap_2d

    try:
        points = np.random.default_rng(0).random((512, 8), dtype=np.float32)
        umap_2d(points, n_epochs=10)  # compiles (or loads numba's cache)
    except Exception:  # a warm-up only: the real fit reports errors
        pass
    while True:
        try:
            _, data, knn, params = _recv(stdin)
        except EOFError:
            return
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
