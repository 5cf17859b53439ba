"""The widget on a segmentation model (dense outputs in a dict, as torchvision returns them):
the analysis carries the pixel predictions, the explained class's share of the image and,
against the item's mask, IoU and pixel accuracy; the list and the population show the mean
pixel loss. Expectations are computed by hand from the model's output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from samplelens_widget import SampleLens
from samplelens_widget.protocol import REPLIES, check_message

K = 3


class TinySeg(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Conv2d(8, K, 1)

    def forward(self, x):
        return {"out": F.interpolate(self.head(self.body(x)), size=x.shape[-2:],
                                     mode="bilinear", align_corners=False)}


class Masks(torch.utils.data.Dataset):
    def __init__(self, n=12):
        g = torch.Generator().manual_seed(2)
        self.x = torch.rand(n, 3, 32, 32, generator=g)
        self.m = torch.randint(0, K, (n, 32, 32), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.m[i]


@pytest.fixture
def lens():
    w = SampleLens(TinySeg(), Masks(), background=False, projection="pca", cache_dir=None,
                   label_names=["sky", "road", "car"])
    w.sent = []
    w.send = lambda content, buffers=None: w.sent.append((content, list(buffers or [])))
    yield w
    w.close()


def output(lens, i):
    x, _ = lens._session.slices[lens.slice][i]
    with torch.no_grad():
        return lens._session.models[lens.model_name].eval()(x[None])["out"][0]


def reply(lens, **key):
    k = {**lens._key().as_dict(), **key}
    lens._on_msg(lens, {"type": "analyze", "rid": 1, "keys": [k], "images": [True]}, [])
    return [(c, b) for c, b in lens.sent if c["type"] == "analysis"][-1]


def test_the_analysis_carries_the_pixels_share_iou_and_pixel_accuracy(lens):
    out = output(lens, 0)
    pred = out.argmax(0).numpy()
    mask = lens._session.slices[lens.slice][0][1].numpy()
    assert lens._info["num_classes"] == K
    for label in (None, 0, 1, 2):
        meta, bufs = reply(lens, label=label)
        check_message(meta, REPLIES)
        assert meta["task"] == "segmentation" and meta["true_label"] is None
        seg = meta["segmentation"]
        cls = int(np.bincount(pred.ravel(), minlength=K).argmax()) if label is None else label
        assert seg["cls"] == cls and (seg["h"], seg["w"]) == (32, 32)
        np.testing.assert_array_equal(np.frombuffer(bufs[-1], "<u1").reshape(32, 32), pred)
        assert seg["share"] == pytest.approx(float((pred == cls).mean()))
        inter, union = ((pred == cls) & (mask == cls)).sum(), ((pred == cls) | (mask == cls)).sum()
        assert seg["iou"] == pytest.approx(inter / union)
        assert seg["pixel_accuracy"] == pytest.approx(float((pred == mask).mean()))
        assert len(bufs) == len(meta["layers"]) + 2  # maps, the input PNG, the pixels
        want = F.cross_entropy(out[None], torch.as_tensor(mask)[None].long()).item()
        assert meta["loss"] == pytest.approx(want, rel=1e-4)  # the mean pixel loss
    meta, _ = reply(lens, label="loss")  # the map of the mean pixel loss against the mask
    assert meta["explained"] == "loss (true label)"
    want = F.cross_entropy(out[None], torch.as_tensor(mask)[None].long()).item()
    lens.label = "loss"
    np.testing.assert_allclose(lens.result.scores, [want], rtol=1e-4)
    probs = torch.softmax(out, 0).mean((1, 2)).numpy()
    np.testing.assert_allclose(reply(lens)[0]["probabilities"], probs, rtol=1e-5)


def test_the_list_and_the_population_show_the_mean_pixel_loss(lens):
    assert lens.color_by == "loss"  # a segmentation has no class label per sample
    lens._on_msg(lens, {"type": "rows", "model": lens.model_name, "slice": lens.slice,
                        "ids": [0, 1, 2]}, [])
    [rows] = [c["rows"] for c, _ in lens.sent if c["type"] == "rows"]
    for r in rows:
        out = output(lens, r["id"])
        mask = lens._session.slices[lens.slice][r["id"]][1]
        want = F.cross_entropy(out[None], mask[None]).item()
        assert r["loss"] == pytest.approx(want, rel=1e-4)
        counts = np.bincount(out.argmax(0).numpy().ravel(), minlength=K)
        assert r["prediction"] == int(counts.argmax()) and r["label"] is None
    lens._on_msg(lens, {"type": "population", "model": lens.model_name, "slice": lens.slice}, [])
    [(meta, bufs)] = [(c, b) for c, b in lens.sent if c["type"] == "population"]
    loss_col = [i for i, c in enumerate(meta["columns"]) if c["key"] == "loss"][0]
    losses = np.frombuffer(bufs[1 + loss_col], "<f4")
    want = [F.cross_entropy(output(lens, i)[None],
                            lens._session.slices[lens.slice][i][1][None]).item() for i in range(12)]
    np.testing.assert_allclose(losses, want, rtol=1e-4)
    lens._on_msg(lens, {"type": "stats", "model": lens.model_name, "slice": lens.slice}, [])
    [stats] = [c for c, _ in lens.sent if c["type"] == "stats"]
    acc = [float((output(lens, i).argmax(0) == lens._session.slices[lens.slice][i][1])
                 .float().mean()) for i in range(12)]
    assert stats["accuracy"] == pytest.approx(np.mean(acc))
    assert stats["accuracy_title"] == "Slice pixel accuracy" and stats["confusion"] is None


def test_an_item_without_a_mask_has_no_iou(lens):
    class NoMask(Masks):
        def __getitem__(self, i):
            return self.x[i], None

    w = SampleLens(TinySeg(), NoMask(), background=False, projection="pca", cache_dir=None)
    w.sent = []
    w.send = lambda content, buffers=None: w.sent.append((content, list(buffers or [])))
    meta, _ = reply(w)
    assert meta["segmentation"]["iou"] is None and meta["segmentation"]["pixel_accuracy"] is None
    assert 0.0 <= meta["segmentation"]["share"] <= 1.0
    w.close()
