"""A bug in the model, seen from the widget: the error names the sample the model raised on, the
other samples are still answered and the widget stays usable."""

from __future__ import annotations

import pytest
import torch
from fakes import Blobs, TinyNet
from torch import nn

from samplelens_widget import SampleLens

BAD = 12


class FixedHead(TinyNet):
    """TinyNet whose head flattens the 8x8 features into a Linear(16 * 8 * 8): a layer with
    the wrong ``in_features`` for any input that is not 64x64."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 8 * 8, 5))


class OneSmaller(torch.utils.data.Dataset):
    """Blobs whose sample ``BAD`` is 48x48 instead of 64x64."""

    def __init__(self) -> None:
        self.blobs = Blobs(20)

    def __len__(self):
        return len(self.blobs)

    def __getitem__(self, i):
        x, y = self.blobs[i]
        return (x[:, :48, :48] if i == BAD else x), y


class BadGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("the backward of this ReLU is not written yet")


class BrokenBackward(TinyNet):
    def forward(self, x):
        return self.head(self.features[2:](BadGradient.apply(self.features[0](x))))


def make(model, data):
    lens = SampleLens(model, data, background=False, projection="pca", cache_dir=None)
    lens.sent = []
    lens.send = lambda content, buffers=None: lens.sent.append((content, list(buffers or [])))
    return lens


def analyze(lens, sample):
    lens.sent.clear()
    key = lens._key(sample_id=sample).as_dict()
    lens._on_msg(lens, {"type": "analyze", "rid": 1, "keys": [key]}, [])
    (reply,) = [c for c, _ in lens.sent if c["type"] in ("analysis", "error")]
    return reply


def test_the_error_names_the_sample_and_the_widget_stays_usable():
    lens = make(FixedHead(), OneSmaller())
    reply = analyze(lens, BAD)
    assert reply["type"] == "error" and reply["key"]["id"] == BAD
    assert reply["message"].startswith(
        f"RuntimeError: the model raised on sample {BAD} (input (1, 3, 48, 48) float32): "
        f"RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x576 and 1024x5)"
    ), reply["message"]
    assert "rejected" not in reply["message"] and "inputs:" not in reply["message"]

    assert analyze(lens, 3)["type"] == "analysis"  # the others are still answered
    lens.viewed = 3
    assert lens.overlay().shape == (64, 64, 3)
    lens.viewed = BAD
    with pytest.raises(RuntimeError, match=rf"^the model raised on sample {BAD} ") as info:
        lens.result  # noqa: B018
    assert type(info.value.__cause__) is RuntimeError  # the model's own error, chained
    assert "mat1 and mat2" in str(info.value.__cause__)
    lens.viewed = 4
    assert lens.result.heatmap().shape == (1, 64, 64)
    lens.close()


def test_slice_passes_name_the_sample_too():
    lens = make(FixedHead(), OneSmaller())
    stats = lens._session.stats
    with pytest.raises(RuntimeError, match=rf"^the model raised on sample {BAD} \(input "
                                           r"\(1, 3, 48, 48\) float32\): RuntimeError: mat1"):
        stats.of_slice("model", lens.slice)
    rows = stats.rows("model", lens.slice, [11, 12, 13])  # one bad sample leaves its row empty
    assert [r["prediction"] is None for r in rows] == [False, True, False]
    lens.close()


def test_a_model_that_raises_on_every_sample_says_so_when_the_widget_is_made():
    class Broken(FixedHead):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(100, 5))

    with pytest.raises(RuntimeError, match=r"^the model raised on sample 0 \(input "
                                           r"\(1, 3, 64, 64\) float32\): RuntimeError: mat1"):
        make(Broken(), Blobs(4))


def test_a_bug_in_the_backward():
    lens = make(BrokenBackward(), Blobs(8))
    reply = analyze(lens, 2)
    assert reply["type"] == "error"
    assert reply["message"].startswith(
        "RuntimeError: the model's backward raised on sample 2 (input (1, 3, 64, 64) float32): "
        "RuntimeError: the backward of this ReLU is not written yet"
    ), reply["message"]
    lens.sent.clear()
    lens._on_msg(lens, {"type": "stats", "rid": 2, "model": "model", "slice": lens.slice}, [])
    assert [c["type"] for c, _ in lens.sent] == ["stats"]  # predictions need no backward
    lens.close()
