"""The analysis reply carries what the page needs for honest scales: each map's raw range
(``LayerMeta.lo``/``hi``) and the value the maps explain (``score``, ``score_name``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fakes import Blobs, TinyNet
from torch import nn

from samplelens_widget.cam import CamEngine
from samplelens_widget.cam.targets import Contrast, Loss
from samplelens_widget.protocol import replies
from samplelens_widget.protocol.codec import check_message
from samplelens_widget.protocol.messages import REPLIES

KEY = {"model": "m", "slice": "val", "id": 0, "algorithm": "gradcam", "label": 2,
       "connection": 0, "contrast": None}


def tiny():
    """conv -> ReLU -> global mean -> linear: its last Grad-CAM map is known in closed form."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(3, 4),
    )
    x = torch.rand(2, 6, 6, generator=torch.Generator().manual_seed(1))
    return net, x


def test_lo_hi_and_score_by_hand_on_a_tiny_model():
    net, x = tiny()
    res = CamEngine(net).explain(x, target=2)
    meta, bufs = replies.analysis(KEY, res, true_label=None, image=None)
    check_message(meta, REPLIES)
    json.loads(json.dumps(meta, allow_nan=False))  # plain JSON numbers, no NaN or Infinity

    # by hand, in float64: A = relu(conv(x)); d logit_2 / dA_k = W[2, k] / (h w) everywhere,
    # so Grad-CAM = relu(sum_k W[2, k] / (h w) * A_k); the logit = W[2] . mean(A) + b[2]
    conv, lin = net[0], net[4]
    with torch.no_grad():
        a = torch.relu(conv(x[None]))[0].double().numpy()
    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    c, h, wd = a.shape
    cam = np.maximum(np.tensordot(w[2] / (h * wd), a, axes=1), 0)
    last = meta["layers"][-1]
    assert last["name"] == "1" and (last["h"], last["w"]) == (h, wd)
    assert last["lo"] == pytest.approx(cam.min(), abs=1e-6)
    assert last["hi"] == pytest.approx(cam.max(), rel=1e-5)
    assert last["hi"] > last["lo"]
    logit = float(w[2] @ a.mean(axis=(1, 2)) + b[2])
    assert meta["score"] == pytest.approx(logit, rel=1e-5)
    assert meta["score_name"] == "logit"
    # the bytes are the map min-max normalised: lo + u / 255 * (hi - lo) gives the map back
    u = np.frombuffer(bufs[-1], np.uint8).reshape(h, wd).astype(np.float64)
    back = last["lo"] + u / 255 * (last["hi"] - last["lo"])
    np.testing.assert_allclose(back, cam, atol=(cam.max() - cam.min()) / 255)


def test_lo_hi_are_the_raw_maps_range_at_every_depth():
    net, ds = TinyNet(), Blobs(4)
    x = ds[1][0]
    eng = CamEngine(net)
    for target in (None, 3):
        res = eng.explain(x, target=target)
        meta, _ = replies.analysis({**KEY, "label": target}, res, true_label=ds[1][1], image=None)
        assert len(meta["layers"]) == len(res.depths)
        for layer in meta["layers"]:
            raw = eng.explain(x, target=target).raw(layer["name"])[0]  # independently
            assert layer["lo"] == pytest.approx(float(raw.min()), rel=1e-6, abs=1e-12)
            assert layer["hi"] == pytest.approx(float(raw.max()), rel=1e-6, abs=1e-12)
        with torch.no_grad():
            logits = net(x[None])[0]
        cls = int(logits.argmax()) if target is None else target
        assert meta["score"] == pytest.approx(float(logits[cls]), rel=1e-5)


def test_an_unlikely_class_has_a_smaller_range_than_the_predicted_one():
    """What the page's "across labels" scale shows: the maps' own ranges differ."""
    net, ds = TinyNet(), Blobs(8)
    eng = CamEngine(net)
    x = ds[0][0]
    with torch.no_grad():
        p = torch.softmax(net(x[None])[0], 0)
    top, low = int(p.argmax()), int(p.argmin())
    his = {}
    for c in (top, low):
        meta, _ = replies.analysis({**KEY, "label": c}, eng.explain(x, target=c), None, None)
        his[c] = meta["layers"][-1]["hi"]
    assert his[top] != his[low]  # per map both would be stretched to the same 0..255


def test_score_names_of_the_other_targets():
    net, ds = TinyNet(), Blobs(4)
    eng = CamEngine(net)
    x, y = ds[2]
    with torch.no_grad():
        logits = net(x[None])[0]
    res = eng.explain(x, target=Contrast(1, 4))
    meta, _ = replies.analysis(KEY, res, None, None)
    assert meta["score_name"] == "logit difference"
    assert meta["score"] == pytest.approx(float(logits[1] - logits[4]), rel=1e-5)
    res = eng.explain(x, target=Loss([y]))
    meta, _ = replies.analysis(KEY, res, y, None)
    assert meta["score_name"] == "loss"
    want = float(torch.nn.functional.cross_entropy(logits[None], torch.tensor([y])))
    assert meta["score"] == pytest.approx(want, rel=1e-5)
    res = eng.explain(x, target=lambda out: out[:, 0] * 2)
    meta, _ = replies.analysis(KEY, res, None, None)
    assert meta["score_name"] == "score"
    assert meta["score"] == pytest.approx(float(logits[0] * 2), rel=1e-5)


def test_the_range_costs_two_numbers_a_layer():
    net, ds = TinyNet(), Blobs(2)
    meta, _ = replies.analysis(KEY, CamEngine(net).explain(ds[0][0]), None, None)
    for layer in meta["layers"]:
        extra = {k: layer[k] for k in ("lo", "hi")}
        assert all(isinstance(v, float) for v in extra.values())
        assert len(json.dumps(extra)) < 60
