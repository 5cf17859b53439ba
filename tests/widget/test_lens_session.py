"""Session and request coalescing: the newest request wins, stale ones are dropped."""

from __future__ import annotations

import threading

import numpy as np
from fakes import NAMES, Blobs, TinyNet

from samplelens_widget import SampleLens
from samplelens_widget.analyses import AnalysisKey
from samplelens_widget.protocol.buffers import to_uint8
from samplelens_widget.session import Session
from samplelens_widget.workers import LatestWorker


def test_to_uint8_min_max():
    m = np.array([[1.0, 2.0], [3.0, 5.0]])
    # (m - 1) / 4 * 255 = 0, 63.75, 127.5, 255 -> rint: 0, 64, 128 (half to even), 255
    np.testing.assert_array_equal(to_uint8(m), [[0, 64], [128, 255]])
    np.testing.assert_array_equal(to_uint8(np.full((2, 2), 3.0)), np.zeros((2, 2)))


def test_latest_worker_drops_stale_requests():
    gate = threading.Event()
    seen = []

    def handler(channel, req):
        if req == 0:
            gate.wait(5)
        seen.append((channel, req))

    w = LatestWorker(handler, ("a", "b"))
    w.submit("a", 0)  # starts running and blocks
    while not w._busy:
        pass
    for i in range(1, 6):
        w.submit("a", i)  # 1..4 are replaced while waiting
    w.submit("b", "x")
    gate.set()
    assert w.wait_idle(5)
    assert seen == [("a", 0), ("a", 5), ("b", "x")]
    assert w.dropped == 4
    w.close()


def test_widget_coalesces_analyze_requests():
    data = Blobs(20)
    w = SampleLens(TinyNet(), data, label_names=NAMES)  # background worker
    sent = []
    w.send = lambda c, buffers=None: sent.append(c)
    gate = threading.Event()
    orig = w._answers.analysis_reply
    started = threading.Event()

    def slow_payload(*args, **kw):
        started.set()
        gate.wait(5)
        return orig(*args, **kw)

    w._answers.analysis_reply = slow_payload
    keys = [w._key(sample_id=i).as_dict() for i in range(6)]
    w._on_msg(w, {"type": "analyze", "rid": 1, "keys": [keys[0]]}, [])
    started.wait(5)
    for rid in range(2, 7):
        w._on_msg(w, {"type": "analyze", "rid": rid, "keys": [keys[rid - 1]]}, [])
    gate.set()
    assert w.wait(10)
    answered = [c["rid"] for c in sent if c["type"] == "analysis"]
    assert answered == [1, 6]  # the running one, then only the newest
    assert sent[-1]["key"]["id"] == 5
    w.close()


def test_session_caches_analyses_lru():
    s = Session({"m": TinyNet()}, {"val": Blobs(10)}, cache_size=2)
    k = [AnalysisKey("m", "val", i, "gradcam", None, 0) for i in range(3)]
    a0 = s.analysis(k[0])
    assert s.analysis(k[0]) is a0
    s.analysis(k[1])
    s.analysis(k[2])
    assert s.analysis(k[0]) is not a0  # evicted, recomputed
    np.testing.assert_allclose(s.analysis(k[0]).logits, a0.logits, rtol=1e-5)
