"""The widget's threads end: at a script's end whatever they are doing, on ``close()``, and when a
kernel shuts down or restarts (issue 10: a script that ended while UMAP ran aborted with
``terminate called without an active exception``, exit status 134).

The exit cases run real scripts (``python -c``) on the demo model; the signals they wait for
are the widget's own (its first progress message, its projection's phase), never a sleep.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import threading
import time

import pytest
from fakes import NAMES, Blobs, TinyNet

from samplelens_widget import SampleLens
from samplelens_widget.workers import WidgetClosed

#: a script that makes demo widgets and ends at ``case``: ``construct`` (at once), ``features``
#: (inside the feature pass), ``umap`` (inside umap-learn's fit; before that, a first widget is
#: closed inside its fit and what is left of it written to argv[3] as JSON) or ``done``
#: (everything computed); argv: case, validation samples, the JSON file
SCRIPT = r"""
import json, sys, threading, time
from samplelens_widget import SampleLens
from samplelens_widget.demo import load_demo

case, n = sys.argv[1], int(sys.argv[2])
model, data, names = load_demo(n_train=8, n_val=n)


def widget(populate):
    lens = SampleLens(model, data["val"], label_names=names, cache_dir=None, projection="umap")
    started = threading.Event()

    def send(content, buffers=None):  # no page: the replies are dropped, the pass's start noted
        if content.get("type") == "population_progress":
            started.set()

    lens.send = send
    if populate:  # what the page asks first
        request = {"type": "population", "rid": 1, "model": lens.model_name, "slice": lens.slice}
        lens._on_msg(lens, request, [])
        assert started.wait(300), "the feature pass did not start"
    return lens


def inside_the_fit(lens):
    st = lens._population.state(lens.model_name, lens.slice)
    deadline = time.monotonic() + 300
    while st.background is None or st.background.phase != "fit":
        assert time.monotonic() < deadline and not st.done.is_set(), "no UMAP fit seen"
        time.sleep(0.005)


lens = widget(case != "construct")
if case == "umap":
    inside_the_fit(lens)
    prefix = lens._workers.prefix + "-"
    lens.close()
    lens.close()  # twice is fine
    left = [t.name for t in threading.enumerate() if t.name.startswith(prefix)]
    try:
        lens.similar([0])
        refused = None
    except RuntimeError as exc:
        refused = str(exc)
    with open(sys.argv[3], "w") as f:
        json.dump({"left": left, "refused": refused}, f)
    inside_the_fit(widget(True))  # the script ends inside this one's fit
if case == "done":
    assert lens.wait(300) and lens.wait_umap(300)
"""
#: case -> validation samples. features: 600, three batches of 256: the exit comes inside the
#: pass, whose next batch does not start. umap: 200, a fit long enough to be seen.
CASES = {"construct": 30, "features": 600, "umap": 200, "done": 60}


class Scripts:
    """The scripts of every case, started together (they take 5-30 s each, mostly importing
    torch and umap-learn and compiling numba's code); ``result(case)``: (return code, stdout,
    stderr) once it has ended."""

    def __init__(self, out: pathlib.Path) -> None:
        self.out = out
        self.procs = {
            case: subprocess.Popen(
                [sys.executable, "-c", SCRIPT, case, str(n), str(out)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for case, n in CASES.items()
        }
        self.results: dict[str, tuple[int, str, str]] = {}

    def result(self, case: str) -> tuple[int, str, str]:
        if case not in self.results:
            out, err = self.procs[case].communicate(timeout=600)
            self.results[case] = (self.procs[case].returncode, out, err)
        return self.results[case]

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    started = Scripts(tmp_path_factory.mktemp("lifecycle") / "closed.json")
    yield started
    started.kill()


def widget_threads(lens: SampleLens) -> list[str]:
    prefix = lens._workers.prefix + "-"
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_close_stops_a_feature_pass_between_batches_and_refuses_what_comes_after():
    lens = SampleLens(TinyNet(), Blobs(40), label_names=NAMES, cache_dir=None, projection="pca")
    lens._population.chunk = 4  # ten batches
    sent: list[dict] = []
    started = threading.Event()

    def send(content, buffers=None):
        sent.append(content)
        if content.get("type") == "population_progress":
            started.set()

    lens.send = send
    request = {"type": "population", "rid": 1, "model": lens.model_name, "slice": lens.slice}
    lens._on_msg(lens, request, [])
    assert started.wait(60)
    assert widget_threads(lens) == [f"{lens._workers.prefix}-population"]
    lens.close()
    assert widget_threads(lens) == []
    lens.close()  # twice is fine
    replies = len(sent)
    lens._on_msg(lens, request, [])  # the page's requests are ignored: no thread, no reply
    assert widget_threads(lens) == [] and len(sent) == replies
    for call in (lambda: lens.result, lens.population, lambda: lens.similar([0])):
        with pytest.raises(WidgetClosed, match="this SampleLens is closed"):
            call()
    assert lens.wait(1)


#: in a kernel: a demo widget asked for its population, as the page asks
KERNEL_CODE = r"""
from samplelens_widget import SampleLens
from samplelens_widget.demo import load_demo
model, data, names = load_demo(n_train=8, n_val={n})
lens = SampleLens(model, data["val"], label_names=names, cache_dir=None, projection="umap")
lens._on_msg(lens, {{"type": "population", "rid": 1, "model": lens.model_name,
                    "slice": lens.slice}}, [])
st = lens._population.state(lens.model_name, lens.slice)
"""
#: the UMAP thread has begun its umap-learn part (waiting for the warm-up that compiles, or
#: fitting)
UMAP_RUNS = "st.background is not None and st.background.phase in ('wait', 'import', 'fit')"


@pytest.mark.slow
def test_a_kernel_restart_and_shutdown_with_a_working_widget_end_the_kernel_by_itself(
    tmp_path,
    scripts,  # the scripts run meanwhile
):
    jupyter_client = pytest.importorskip("jupyter_client")

    def reply(kc, msg_id):
        while True:
            msg = kc.get_shell_msg(timeout=300)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]

    def run(kc, code):
        content = reply(kc, kc.execute(code))
        assert content["status"] == "ok", content

    def value(kc, expression):
        content = reply(kc, kc.execute("", silent=True, user_expressions={"v": expression}))
        return content["user_expressions"]["v"]["data"]["text/plain"]

    def progress_sent(kc):
        """Wait for the widget's first population_progress message on iopub."""
        while True:
            msg = kc.get_iopub_msg(timeout=300)
            data = msg["content"].get("data", {}) if msg["msg_type"] == "comm_msg" else {}
            if data.get("content", {}).get("type") == "population_progress":
                return

    def new_client():
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        return kc

    log = tmp_path / "kernel.log"
    km = jupyter_client.KernelManager(kernel_name="python3")
    # room for a slow machine: the kernel must end by itself, not by jupyter_client's SIGTERM
    # or SIGKILL (which leave return codes -15 or -9; an abort leaves -6)
    km.shutdown_wait_time = 60.0
    f = open(log, "w")  # the restarted kernel writes there too
    km.start_kernel(stdout=f, stderr=f)
    kc = new_client()
    try:
        # a restart inside the feature pass (600 samples: three batches)
        run(kc, KERNEL_CODE.format(n=600))
        progress_sent(kc)
        process = km.provisioner.process
        km.restart_kernel()
        assert process.returncode == 0
        kc.stop_channels()
        # a shutdown while UMAP runs
        kc = new_client()
        run(kc, KERNEL_CODE.format(n=60))
        deadline = time.monotonic() + 300
        while value(kc, UMAP_RUNS) != "True":
            assert time.monotonic() < deadline, "UMAP did not start"
            time.sleep(0.05)
        process = km.provisioner.process
        km.shutdown_kernel()
        assert process.returncode == 0
    finally:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        f.close()
    text = log.read_text()
    assert "terminate called" not in text and "Fatal Python error" not in text


@pytest.mark.parametrize("case", ["construct", "features", "umap"])
def test_a_script_that_ends_while_the_widget_works_exits_cleanly(scripts, case):
    assert scripts.result(case) == (0, "", "")


@pytest.mark.slow
def test_a_script_that_ends_after_everything_is_computed_exits_cleanly(scripts):
    assert scripts.result("done") == (0, "", "")


def test_close_inside_the_umap_fit_ends_the_widgets_threads(scripts):
    assert scripts.result("umap") == (0, "", "")
    got = json.loads(scripts.out.read_text())
    assert got["left"] == []
    assert got["refused"].startswith("similar: this SampleLens is closed")
