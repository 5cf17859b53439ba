"""The Trust view's kernel side (issue 11): the curve the widget sends, chunk by chunk, is the
engine's ``faithfulness`` of that sample; a newer request stops the running one; the sanity
check streams its progress; ``lens.faithfulness()`` / ``lens.sanity_check()`` are the engine's
calls; bad inputs are errors that name the argument, and the widget stays usable after one; the
user's model is left as it was.

Expectations come from ``CamEngine`` called directly on the dataset's own items (no widget)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from fakes import NAMES, Blobs, TinyNet
from torch import nn

from samplelens_widget import SampleLens
from samplelens_widget.cam import CamEngine
from samplelens_widget.cam.targets import Class
from samplelens_widget.demo import load_demo
from samplelens_widget.protocol import REPLIES, check_message
from samplelens_widget.trust import CHUNK, MAX_CHUNK, nearest_first

STEPS = 6  # few steps: the numbers are compared, not the speed


@pytest.fixture(scope="module")
def demo():
    model, data, names = load_demo(n_train=40, n_val=30)
    return model, data["val"], names


def make_lens(model, val, names, background=False, **kw):
    lens = SampleLens(model, val, label_names=names, background=background,
                      projection="pca", cache_dir=None, **kw)
    lens.sent = []
    lock = threading.Lock()

    def send(content, buffers=None):
        check_message(content, REPLIES)  # every message as declared
        with lock:
            lens.sent.append(content)

    lens.send = send
    return lens


def of(lens, kind):
    return [c for c in lens.sent if c["type"] == kind]


def snapshot(model: nn.Module) -> dict:
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": {k: m.training for k, m in model.named_modules()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    for k, v in before["params"].items():
        assert torch.equal(after["params"][k], v), k
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        assert not getattr(m, "_backward_pre_hooks", None)
    assert not nn.modules.module._global_forward_hooks


def test_nearest_first_orders_by_distance_to_the_current_depth():
    assert nearest_first([1, 2, 3, 4, 5], 3) == [3, 2, 4, 1, 5]
    assert nearest_first([1, 2, 3, 4, 5], None) == [5, 4, 3, 2, 1]  # None: the deepest
    assert nearest_first([5, 1, 3], 1) == [1, 3, 5]
    assert nearest_first([], 2) == []


def test_the_curve_sent_is_the_engines_faithfulness_of_that_sample(demo):
    model, val, names = demo
    before = snapshot(model)
    lens = make_lens(model, val, names)
    try:
        sid, algorithm = 4, "layercam"
        lens.viewed, lens.algorithm = sid, algorithm
        key = lens._key().as_dict()
        depths = [int(d) for d in lens.result.depths]
        center = depths[len(depths) // 2]
        lens._on_msg(lens, {"type": "trust", "rid": 7, "key": key, "depth": center,
                            "steps": STEPS}, [])
        chunks = of(lens, "trust")
        x, y = val[sid]
        want = CamEngine(model).faithfulness(x, None, algorithm=algorithm, steps=STEPS)
    finally:
        lens.close()
    # the order: the current depth and its neighbours first, CHUNK depths in the first reply
    # (then as many as fit the chunk's time, MAX_CHUNK at most), the baselines once (right
    # after the first chunk), the last reply says so
    sent_depths = [d for c in chunks for d in c["depths"]]
    assert sent_depths == nearest_first(depths, center)
    assert len(chunks[0]["depths"]) == CHUNK
    assert all(1 <= len(c["depths"]) <= MAX_CHUNK for c in chunks[2:])
    assert [("baselines" in c) for c in chunks].count(True) == 1
    assert "baselines" in chunks[1] and not chunks[1]["depths"]
    assert [c["last"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(c["rid"] == 7 and c["key"] == key and c["steps"] == STEPS for c in chunks)
    # the numbers: the engine's, depth by depth
    got = {d: (de, ins) for c in chunks
           for d, de, ins in zip(c["depths"], c["deletion"], c["insertion"], strict=True)}
    assert sorted(got) == want.depths
    for i, d in enumerate(want.depths):
        assert got[d][0] == pytest.approx(float(want.deletion[i]), abs=1e-5)
        assert got[d][1] == pytest.approx(float(want.insertion[i]), abs=1e-5)
    base = chunks[1]["baselines"]
    for name in ("random", "edges"):
        for part in ("deletion", "insertion"):
            assert base[name][part] == pytest.approx(float(want.baselines[name][part]), abs=1e-5)
    # the random band: one score per draw, whose mean is the random baseline's score
    assert len(base["random"]["draws"]) == 3
    assert np.mean(base["random"]["draws"]) == pytest.approx(
        float(want.baseline_score("random")), abs=1e-5)
    assert base["edges"]["draws"] == []
    layers = {d: n for c in chunks for d, n in zip(c["depths"], c["layers"], strict=True)}
    assert [layers[d] for d in want.depths] == want.layers
    assert_untouched(model, before)


def test_only_the_depths_asked_for_and_no_baselines_when_the_page_has_them(demo):
    model, val, names = demo
    lens = make_lens(model, val, names)
    try:
        key = lens._key().as_dict()
        lens._on_msg(lens, {"type": "trust", "key": key, "depths": [2, 5],
                            "baselines": False, "steps": STEPS}, [])
        chunks = of(lens, "trust")
    finally:
        lens.close()
    assert [d for c in chunks for d in c["depths"]] == [5, 2]  # None: nearest the deepest
    assert not any("baselines" in c for c in chunks)


def test_a_newer_request_stops_the_running_one_between_two_chunks(demo):
    """Background threads: when the first chunk of sample A's curve is sent, a request for
    sample B arrives (sent from inside the send, so the order is fixed, not timed). A sends
    nothing more; B's curve is complete."""
    model, val, names = demo
    lens = make_lens(model, val, names, background=True)
    plain_send = lens.send
    key_a = {**lens._key().as_dict(), "id": 1}
    key_b = {**key_a, "id": 2}
    asked = []

    def send(content, buffers=None):
        plain_send(content, buffers)
        if content["type"] == "trust" and content["key"] == key_a and not asked:
            asked.append(1)
            lens._on_msg(lens, {"type": "trust", "rid": 2, "key": key_b, "steps": STEPS}, [])

    lens.send = send
    try:
        lens._on_msg(lens, {"type": "trust", "rid": 1, "key": key_a, "steps": STEPS}, [])
        assert lens.wait(60)
        depths = [int(d) for d in lens.result.depths]
    finally:
        lens.close()
    a = [c for c in of(lens, "trust") if c["key"] == key_a]
    b = [c for c in of(lens, "trust") if c["key"] == key_b]
    assert len(depths) > CHUNK  # A had more chunks to go
    assert len(a) == 1 and not a[0]["last"]
    assert sorted(d for c in b for d in c["depths"]) == depths and b[-1]["last"]


def test_a_hidden_view_stops_the_curve(demo):
    """``key`` null (the Trust tab closed) stops the running curve, and sends nothing."""
    model, val, names = demo
    lens = make_lens(model, val, names, background=True)
    plain_send = lens.send
    key = lens._key().as_dict()

    def send(content, buffers=None):
        plain_send(content, buffers)
        if content["type"] == "trust" and len(of(lens, "trust")) == 1:
            lens._on_msg(lens, {"type": "trust", "key": None}, [])

    lens.send = send
    try:
        lens._on_msg(lens, {"type": "trust", "key": key, "steps": STEPS}, [])
        assert lens.wait(60)
    finally:
        lens.close()
    assert len(of(lens, "trust")) == 1 and not of(lens, "trust_error")


def test_the_sanity_check_streams_its_stages_and_gives_the_engines_rhos(demo):
    model, val, names = demo
    before = snapshot(model)
    lens = make_lens(model, val, names)
    try:
        sid = 3
        lens.viewed = sid
        depth = int(lens.result.depths[-3])
        key = lens._key().as_dict()
        lens._on_msg(lens, {"type": "sanity", "rid": 5, "key": key, "depth": depth}, [])
        x, _ = val[sid]
        want = CamEngine(model).sanity_check(x, None, "gradcam", depth=depth)
        layer = lens.result.layer_at(depth).name
    finally:
        lens.close()
    progress = [(c["done"], c["total"]) for c in of(lens, "sanity_progress")]
    n = len(want)
    assert progress == [(0, 0)] + [(k, n) for k in range(1, n + 1)]
    [done] = of(lens, "sanity")
    assert done["depth"] == depth and done["layer"] == layer and done["rid"] == 5
    assert [s for s, _ in done["stages"]] == [s for s, _ in want]
    np.testing.assert_allclose([r for _, r in done["stages"]], [r for _, r in want], atol=1e-6)
    assert_untouched(model, before)


def test_lens_faithfulness_and_sanity_check_are_the_engines(demo):
    model, val, names = demo
    before = snapshot(model)
    lens = make_lens(model, val, names)
    try:
        lens.viewed, lens.algorithm = 5, "gradcam"
        got = lens.faithfulness(steps=STEPS)
        other = lens.faithfulness(sample=7, label=2, algorithm="layercam", depths=[3, 4],
                                  steps=STEPS)
        fast = lens.faithfulness(steps=STEPS, precision="bfloat16")
        rhos = lens.sanity_check()
        rhos_at = lens.sanity_check(sample=7, depth=4, stages=["fc", "layer3"])
        lens.depth = int(lens.result.depths[2])
        rhos_current = lens.sanity_check()
    finally:
        lens.close()
    eng = CamEngine(model)
    want = eng.faithfulness(val[5][0], None, algorithm="gradcam", steps=STEPS)
    assert got.depths == want.depths and got.layers == want.layers
    np.testing.assert_allclose(got.deletion, want.deletion, atol=1e-6)
    np.testing.assert_allclose(got.insertion, want.insertion, atol=1e-6)
    assert got.summary() == want.summary()
    want_fast = eng.faithfulness(val[5][0], None, algorithm="gradcam", steps=STEPS,
                                 precision="bfloat16")
    np.testing.assert_allclose(fast.score, want_fast.score, atol=1e-6)
    want2 = eng.faithfulness(val[7][0], Class(2), algorithm="layercam", depths=[3, 4],
                             steps=STEPS)
    assert other.depths == [3, 4]
    np.testing.assert_allclose(other.score, want2.score, atol=1e-6)
    assert rhos == pytest.approx(eng.sanity_check(val[5][0], None, "gradcam"), abs=1e-6)
    want_at = eng.sanity_check(val[7][0], None, "gradcam", depth=4, stages=["fc", "layer3"])
    assert rhos_at == pytest.approx(want_at, abs=1e-6)
    depth = int(eng.explain(val[5][0]).depths[2])
    assert rhos_current == pytest.approx(eng.sanity_check(val[5][0], None, depth=depth), abs=1e-6)
    assert_untouched(model, before)


class NoCopy(TinyNet):
    """A model that refuses ``copy.deepcopy`` (it holds something that cannot be copied)."""

    def __deepcopy__(self, memo):
        raise RuntimeError("this model holds a lock")


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda lens: lens.faithfulness(steps=1), r"steps: 1 is out of range; allowed: 2\.\.4096"),
        (lambda lens: lens.faithfulness(steps=10**6), r"steps: 1000000 is out of range"),
        (lambda lens: lens.faithfulness(depths=[99]), r"depths: 99 is not a depth"),
        (lambda lens: lens.faithfulness(baseline=np.zeros((2, 2))),
         r"baseline: shape \(2, 2\) is not allowed; allowed: a number, \(C,\)"),
        (lambda lens: lens.faithfulness(sample=999), r"sample: sample id 999 is out of range"),
        (lambda lens: lens.faithfulness(label=77), r"label: 77"),
        (lambda lens: lens.faithfulness(algorithm="magic"), r"algorithm: 'magic' is not one of"),
        (lambda lens: lens.faithfulness(connection=3), r"connection: 3 is not an input"),
        (lambda lens: lens.faithfulness(precision="half"),
         r"precision: 'half' is not allowed; allowed: \['float32', 'bfloat16'\]"),
        (lambda lens: lens.sanity_check(depth=99), r"depth: 99 is not a depth"),
        (lambda lens: lens.sanity_check(depth="deep"), r"depth: 'deep' is not allowed"),
        (lambda lens: lens.sanity_check(stages=["nowhere"]), r"stages: 'nowhere' is not a module"),
    ],
)
def test_bad_inputs_are_errors_that_name_the_argument(call, pattern):
    lens = SampleLens(TinyNet(), Blobs(8), label_names=NAMES, background=False,
                      projection="pca", cache_dir=None)
    lens.send = lambda content, buffers=None: None
    try:
        with pytest.raises((ValueError, TypeError), match=pattern):
            call(lens)
        assert lens.faithfulness(steps=4).depths  # still usable
    finally:
        lens.close()


def test_a_model_that_cannot_be_copied_is_a_clear_error_and_the_widget_stays_usable():
    net = NoCopy()
    before = snapshot(net)
    lens = make_lens(net, Blobs(8), NAMES)
    try:
        with pytest.raises(TypeError, match=r"model: it cannot be deep-copied.*model_factory="):
            lens.sanity_check()
        # from the page: a trust_error in words (not a banner), and the next request works
        key = lens._key().as_dict()
        lens._on_msg(lens, {"type": "sanity", "rid": 1, "key": key, "depth": None}, [])
        [err] = of(lens, "trust_error")
        assert err["request"] == "sanity" and "cannot be deep-copied" in err["message"]
        assert not of(lens, "error")
        lens._on_msg(lens, {"type": "trust", "rid": 2, "key": key, "steps": 1}, [])
        [_, err2] = of(lens, "trust_error")
        assert err2["request"] == "trust" and "steps: 1 is out of range" in err2["message"]
        lens._on_msg(lens, {"type": "trust", "rid": 3, "key": key, "steps": STEPS}, [])
        assert of(lens, "trust")[-1]["last"]

        def fresh():
            twin = TinyNet()
            twin.load_state_dict(net.state_dict())
            return twin

        assert len(lens.sanity_check(model_factory=fresh)) >= 1
    finally:
        lens.close()
    assert_untouched(net, before)
