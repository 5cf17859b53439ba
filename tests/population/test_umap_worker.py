"""UMAP's fit in the worker process (population/umap_worker.py), through the real umap-learn:
the background projection's coordinates are those of umap-learn's own fit in this process, the
kernel never imports umap-learn or numba (whose compiler would hold its GIL), and a cancelled
fit kills the worker, after which the next fit starts a new one.

Each case runs in a fresh interpreter (``sys.modules`` must start without umap). Marked slow:
the worker compiles (or loads from numba's cache) umap-learn's code first."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

DATA = """
import numpy as np
rng = np.random.default_rng(0)
centres = rng.standard_normal((3, 16)) * 4.0
x = np.concatenate([c + rng.standard_normal((60, 16)) for c in centres]).astype(np.float32)
"""


def run(script: str, tmp_path) -> dict:
    path = tmp_path / "case.py"
    path.write_text(DATA + textwrap.dedent(script))
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=900, check=False,
        start_new_session=True,  # its process group is its own (a case sends SIGINT to it)
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_background_fit_runs_in_the_worker_and_equals_umap_learns_own(tmp_path):
    found = run(
        """
        import json, os, sys
        import numpy as np
        from samplelens_widget.population import umap_worker
        from samplelens_widget.population.projection import project_in_background, umap_2d

        job = project_in_background(x)
        got = job.wait(600)
        worker = umap_worker.WORKER.pid
        in_kernel = [m for m in ("umap", "numba", "pynndescent") if m in sys.modules]
        own = umap_2d(x)  # umap-learn's fit in this process: the same code, the same seed
        print(json.dumps({
            "method": got.method, "shape": list(got.coords.shape), "worker": worker,
            "me": os.getpid(), "in_kernel": in_kernel,
            "nice": [os.getpriority(os.PRIO_PROCESS, 0),
                     os.getpriority(os.PRIO_PROCESS, worker)],
            "max_diff": float(np.abs(got.coords - own).max()),
        }))
        """,
        tmp_path,
    )
    assert found["method"] == "umap" and found["shape"] == [180, 2]
    assert found["worker"] is not None and found["worker"] != found["me"]
    assert found["in_kernel"] == []  # numba's compiler never ran on the kernel's GIL
    assert found["max_diff"] < 1e-4
    mine, its = found["nice"]
    assert its == min(19, mine + 10)  # the projection runs below the kernel's priority


def test_a_cancelled_fit_kills_the_worker_and_the_next_fit_starts_a_new_one(tmp_path):
    found = run(
        """
        import json, time
        from samplelens_widget.population import umap_worker
        from samplelens_widget.population.projection import project_in_background

        called = []
        job = project_in_background(x, called.append)
        deadline = time.monotonic() + 600
        while job.phase != "fit" or umap_worker.WORKER.pid is None:  # with the worker
            assert time.monotonic() < deadline
            time.sleep(0.005)
        first = umap_worker.WORKER.pid
        job.cancel()
        dropped = job.wait(60) is None and job.join(60)
        after_cancel = umap_worker.WORKER.pid
        again = project_in_background(x).wait(600)
        print(json.dumps({
            "first": first, "dropped": dropped, "called": len(called),
            "after_cancel": after_cancel, "second": umap_worker.WORKER.pid,
            "method": again.method,
        }))
        """,
        tmp_path,
    )
    assert found["first"] is not None and found["dropped"] and found["called"] == 0
    assert found["after_cancel"] is None  # killed with its fit
    assert found["second"] is not None and found["second"] != found["first"]
    assert found["method"] == "umap"


def test_without_the_worker_the_fit_runs_in_a_thread_as_before(tmp_path):
    found = run(
        """
        import json, os, sys
        os.environ["SAMPLELENS_UMAP_WORKER"] = "0"
        from samplelens_widget.population import umap_worker
        from samplelens_widget.population.projection import project_in_background

        got = project_in_background(x).wait(600)
        print(json.dumps({"method": got.method, "worker": umap_worker.WORKER.pid,
                          "umap_here": "umap" in sys.modules}))
        """,
        tmp_path,
    )
    assert found == {"method": "umap", "worker": None, "umap_here": True}


def test_a_worker_that_cannot_start_leaves_the_fit_to_a_thread_and_says_why(tmp_path):
    found = run(
        """
        import json, sys
        from samplelens_widget.population import umap_worker
        from samplelens_widget.population.projection import project_in_background

        sys.executable = "/bin/false"  # a Python that cannot run the worker
        got = project_in_background(x).wait(600)
        print(json.dumps({"method": got.method, "note": got.note,
                          "broken": umap_worker.WORKER.broken,
                          "available": umap_worker.available(),
                          "umap_here": "umap" in sys.modules}))
        """,
        tmp_path,
    )
    assert found["method"] == "umap" and found["note"] is None  # fitted here instead
    assert found["umap_here"] and not found["available"]
    assert "the UMAP worker process ended (exit status 1)" in found["broken"]


def test_a_kernel_interrupt_does_not_reach_the_worker_and_eof_ends_it(tmp_path):
    found = run(
        """
        import json, os, signal, time
        from samplelens_widget.population import umap_worker
        from samplelens_widget.population.projection import project_in_background

        first = project_in_background(x).wait(600)
        pid = umap_worker.WORKER.pid
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # this process survives its own SIGINT
        os.killpg(os.getpgid(0), signal.SIGINT)  # what Jupyter's "interrupt kernel" sends
        time.sleep(1.0)
        alive = umap_worker.WORKER.pid == pid
        again = project_in_background(x).wait(600)
        same = umap_worker.WORKER.pid == pid
        proc = umap_worker.WORKER._proc
        proc.stdin.close()  # the kernel gone: the worker reads EOF and ends by itself
        code = proc.wait(60)
        print(json.dumps({"first": first.method, "alive": alive, "again": again.method,
                          "same": same, "code": code}))
        """,
        tmp_path,
    )
    assert found == {"first": "umap", "alive": True, "again": "umap", "same": True, "code": 0}
