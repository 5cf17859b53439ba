"""A bug in the model is reported as the model's, on the inputs it raised on; malformed inputs
are ``inputs:`` errors, decided before the model is called."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from samplelens_widget import CamEngine
from tests.cam.archs import TinyResNet, seeded
from tests.cam.test_cam_engine import assert_untouched, snapshot


class WrongView(nn.Module):
    """TinyResNet's features, then a head that flattens with ``.view(1, -1)``: right for one
    sample, a shape error in the Linear for a batch of two."""

    def __init__(self) -> None:
        super().__init__()
        self.body = seeded(TinyResNet)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        feats = self.body.layer1(self.body.relu(self.body.bn1(self.body.conv1(x))))
        return self.fc(self.pool(feats).view(1, -1))  # the bug: 1 instead of x.shape[0]


class WrongInFeatures(nn.Module):
    """A Linear whose ``in_features`` does not match the flattened features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class BadGradient(torch.autograd.Function):
    """An activation whose backward returns a gradient of the wrong shape."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        return grad[:, :1]


class BrokenBackward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv2(BadGradient.apply(self.conv1(x))).mean(dim=(2, 3)))


class Picky(nn.Module):
    """Raises an exception of its own choosing from the forward, after one conv."""

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.exc = exc

    def forward(self, x):
        self.conv(x)
        raise self.exc


class NeedsTwoArguments(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(f"code {code}: {why}")


def test_a_wrong_view_is_the_models_error_on_the_inputs_and_the_engine_stays_usable():
    torch.manual_seed(0)
    model = WrongView()
    before = snapshot(model)
    eng = CamEngine(model)
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(RuntimeError) as info:
        eng.explain(x)
    message = str(info.value)
    assert message.startswith(
        "the model raised on the inputs (input (2, 3, 16, 16) float32): RuntimeError: mat1 and "
        "mat2 shapes cannot be multiplied (1x16 and 8x4)"
    ), message
    assert "rejected" not in message and not message.startswith("inputs:")
    cause = info.value.__cause__
    assert type(cause) is RuntimeError and "mat1 and mat2" in str(cause)
    assert_untouched(model, before)
    res = eng.explain(x[:1])  # one sample is what the head can take
    assert res.logits.shape == (1, 4) and res.heatmap().shape == (1, 16, 16)
    assert_untouched(model, before)


def test_a_linear_with_the_wrong_in_features():
    model = seeded(WrongInFeatures)
    with pytest.raises(RuntimeError, match=r"^the model raised on the inputs \(input "
                                           r"\(1, 3, 16, 16\) float32\): RuntimeError: mat1 and "
                                           r"mat2 shapes cannot be multiplied \(1x1024 and 256x3"):
        CamEngine(model).explain(torch.randn(3, 16, 16))


def test_a_bug_in_the_backward_is_the_models_backward():
    model = seeded(BrokenBackward)
    before = snapshot(model)
    with pytest.raises(RuntimeError) as info:
        CamEngine(model).explain(torch.randn(2, 3, 8, 8))
    message = str(info.value)
    assert message.startswith(
        "the model's backward raised on the inputs (input (2, 3, 8, 8) float32): RuntimeError: "
    ), message
    assert "BadGradient" in message and "invalid gradient" in message
    assert isinstance(info.value.__cause__, RuntimeError)
    assert_untouched(model, before)


def test_several_inputs_are_all_described():
    class Fails(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, a, ids):
            return self.conv(a).mean(dim=(2, 3))[ids]  # ids out of range: an IndexError

    with pytest.raises(IndexError, match=r"^the model raised on the inputs \(input 0 "
                                         r"\(2, 3, 8, 8\) float32, input 1 \(2,\) int64\): "
                                         r"IndexError: "):
        CamEngine(seeded(Fails)).explain((torch.randn(2, 3, 8, 8), torch.tensor([5, 9])))


@pytest.mark.parametrize("raised,kept", [
    (ValueError("bad config"), ValueError),
    (TypeError("forward got a string"), TypeError),
    (NotImplementedError("later"), NotImplementedError),
    (KeyError("stage5"), RuntimeError),  # its str() quotes the message: not kept
    (NeedsTwoArguments(3, "no"), RuntimeError),  # its constructor wants other arguments
    (ZeroDivisionError("division by zero"), RuntimeError),
])
def test_the_original_is_chained_and_its_type_kept_where_it_can_carry_the_message(raised, kept):
    model = Picky(raised)
    with pytest.raises(Exception) as info:
        CamEngine(model).explain(torch.randn(1, 3, 8, 8))
    assert type(info.value) is kept
    assert info.value.__cause__ is raised
    assert str(info.value) == (
        f"the model raised on the inputs (input (1, 3, 8, 8) float32): "
        f"{type(raised).__name__}: {raised}"
    )


@pytest.mark.parametrize("inputs,exc,message", [
    ("x.png", TypeError, r"^inputs: expected a tensor"),
    ([torch.randn(3, 8, 8), torch.randn(3, 6, 6)], ValueError,
     r"^inputs: 2 samples of different shapes"),
    (torch.randn(8, 8), ValueError, r"^inputs: input 0 \(the connection\) has shape"),
])
def test_malformed_inputs_are_inputs_errors_and_never_reach_the_model(inputs, exc, message):
    class Counting(TinyResNet):
        calls = 0

        def forward(self, x):
            type(self).calls += 1
            return super().forward(x)

    model = seeded(Counting)
    with pytest.raises(exc, match=message):
        CamEngine(model).explain(inputs)
    assert Counting.calls == 0
