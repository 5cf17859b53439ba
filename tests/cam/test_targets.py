"""Targets and tasks on hand-computed cases: what each map explains, the probabilities that fit
the output, and clear errors for targets that do not fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from samplelens_widget import CamEngine
from samplelens_widget.targets import Contrast, Loss, Region

torch.manual_seed(0)


class Net(nn.Module):
    """conv -> relu -> conv, pooled, then a linear head with ``k`` outputs (or a dense head)."""

    def __init__(self, k: int, dense: bool = False, squeeze: bool = False) -> None:
        super().__init__()
        torch.manual_seed(k)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1, stride=2)
        self.head = nn.Conv2d(8, k, 1) if dense else nn.Linear(8, k)
        self.dense, self.squeeze = dense, squeeze

    def forward(self, x):
        a = self.conv2(torch.relu(self.conv1(x)))
        if self.dense:
            return {"out": F.interpolate(self.head(a), size=x.shape[-2:], mode="bilinear")}
        out = self.head(a.mean(dim=(2, 3)))
        return out[:, 0] if self.squeeze else out


X = torch.randn(3, 3, 16, 16)


def hand_gradcam(model, x, score_fn, layer="conv2"):
    """GradCAM of ``layer`` for the scores ``score_fn(output) -> (N,)``, written out."""
    kept = {}
    h = model.get_submodule(layer).register_forward_hook(lambda m, a, o: kept.update(t=o))
    try:
        out = model(x)
    finally:
        h.remove()
    act = kept["t"]
    (grad,) = torch.autograd.grad(score_fn(out).sum(), act)
    w = grad.mean(dim=(2, 3), keepdim=True)
    return torch.relu((w * act).sum(1)).detach().numpy()


def test_a_single_logit_is_a_binary_classifier_with_sigmoid_probabilities():
    model = Net(1).eval()
    res = CamEngine(model).explain(X)
    with torch.no_grad():
        logit = model(X)[:, 0]
    p = torch.sigmoid(logit).numpy()
    assert res.task == "binary" and res.num_classes == 2
    np.testing.assert_allclose(res.probabilities, np.stack([1 - p, p], 1), rtol=1e-5)
    assert res.predictions.tolist() == (logit > 0).long().tolist()
    for cls, sign in ((1, 1.0), (0, -1.0)):  # class 0 explains the negated logit
        r = CamEngine(model).explain(X, cls)
        np.testing.assert_allclose(r.scores, sign * logit.numpy(), rtol=1e-5)
        want = hand_gradcam(model, X, lambda o, s=sign: s * o[:, 0])
        np.testing.assert_allclose(r.raw("conv2"), want, rtol=1e-4, atol=1e-6)


def test_one_score_per_sample_as_a_vector_reads_the_same():
    res = CamEngine(Net(1, squeeze=True).eval()).explain(X, 1)
    assert res.task == "binary" and res.logits.shape == (3, 1)


def test_multilabel_has_sigmoid_probabilities_and_multiclass_softmax():
    model = Net(4).eval()
    with torch.no_grad():
        logits = model(X)
    multi = CamEngine(model, task="multilabel").explain(X, 2)
    np.testing.assert_allclose(multi.probabilities, torch.sigmoid(logits).numpy(), rtol=1e-5)
    plain = CamEngine(model).explain(X, 2)
    assert plain.task == "multiclass"
    np.testing.assert_allclose(plain.probabilities, torch.softmax(logits, 1).numpy(), rtol=1e-5)
    y = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]])
    loss = CamEngine(model, task="multilabel").explain(X, Loss(y))
    want = F.binary_cross_entropy_with_logits(logits, y.float(), reduction="none").mean(1)
    np.testing.assert_allclose(loss.scores, want.numpy(), rtol=1e-5)


def test_a_regression_has_no_probabilities_and_explains_its_output():
    model = Net(1).eval()
    res = CamEngine(model, task="regression").explain(X)
    assert res.task == "regression" and res.probabilities is None
    with torch.no_grad():
        np.testing.assert_allclose(res.scores, model(X)[:, 0].numpy(), rtol=1e-5)
    y = torch.tensor([0.5, -1.0, 2.0])
    loss = CamEngine(model, task="regression").explain(X, Loss(y))
    with torch.no_grad():
        np.testing.assert_allclose(loss.scores, ((model(X)[:, 0] - y) ** 2).numpy(), rtol=1e-5)


def test_loss_contrast_and_a_callable_equal_hand_computed_gradcam():
    model = Net(5).eval()
    y = torch.tensor([0, 3, 4])
    cases = [
        (Loss(y), lambda o: F.cross_entropy(o, y, reduction="none")),
        (Loss(y, loss_fn=lambda o, t: F.cross_entropy(o, t, reduction="none") * 2),
         lambda o: 2 * F.cross_entropy(o, y, reduction="none")),
        (Contrast(1, 2), lambda o: o[:, 1] - o[:, 2]),
        (Contrast([1, 2, 3], [0, 0, 0]), lambda o: o[:, [1, 2, 3]].diagonal() - o[:, 0]),
        (lambda o: o.logsumexp(1), lambda o: o.logsumexp(1)),
    ]
    for target, hand in cases:
        res = CamEngine(model).explain(X, target)
        np.testing.assert_allclose(res.raw("conv2"), hand_gradcam(model, X, hand), rtol=1e-4,
                                   atol=1e-6, err_msg=repr(target))
        with torch.no_grad():
            np.testing.assert_allclose(res.scores, hand(model(X)).numpy(), rtol=1e-5)
    assert CamEngine(model).explain(X, Loss(y)).targets.tolist() == [0, 3, 4]
    assert CamEngine(model).explain(X, Contrast(1, 2)).targets.tolist() == [1, 1, 1]
    assert CamEngine(model).explain(X, lambda o: o[:, 0]).targets.tolist() == [-1, -1, -1]


def test_label_and_an_int_target_are_the_same():
    model = Net(5).eval()
    a = CamEngine(model).explain(X, label=3)
    b = CamEngine(model).explain(X, 3)
    np.testing.assert_array_equal(a.raw("conv2"), b.raw("conv2"))


def test_a_dense_output_is_a_segmentation_and_region_sums_the_class_over_the_mask():
    model = Net(3, dense=True).eval()
    with torch.no_grad():
        out = model(X)["out"]
    pred = out.argmax(1)
    res = CamEngine(model).explain(X, Region(1))
    assert res.task == "segmentation"
    np.testing.assert_allclose(res.probabilities, torch.softmax(out, 1).mean((2, 3)).numpy(),
                               rtol=1e-5)
    want = hand_gradcam(model, X, lambda o: (o["out"][:, 1] * (pred == 1)).flatten(1).sum(1))
    np.testing.assert_allclose(res.raw("conv2"), want, rtol=1e-4, atol=1e-6)
    mask = torch.zeros(16, 16)
    mask[2:9, 4:12] = 1
    masked = CamEngine(model).explain(X, Region(2, mask))
    want = hand_gradcam(model, X, lambda o: (o["out"][:, 2] * mask).flatten(1).sum(1))
    np.testing.assert_allclose(masked.raw("conv2"), want, rtol=1e-4, atol=1e-6)
    # an int target on a segmentation: the class over its predicted pixels, as Region(c)
    np.testing.assert_allclose(CamEngine(model).explain(X, 1).raw("conv2"), res.raw("conv2"),
                               rtol=1e-5)
    seg_loss = CamEngine(model).explain(X, Loss(pred))
    want = F.cross_entropy(out, pred, reduction="none").mean((1, 2))
    np.testing.assert_allclose(seg_loss.scores, want.numpy(), rtol=1e-5)


@pytest.mark.parametrize(
    ("model", "kwargs", "exc", "pattern"),
    [
        (Net(5), dict(target=Region(1)), ValueError,
         r"Region: needs dense outputs \(N, K, H, W\), the model's output is \(3, 5\)"),
        (Net(5), dict(target=Loss(None)), ValueError, r"Loss: labels is None"),
        (Net(5), dict(target=Loss([1, 2])), ValueError, r"Loss: labels has 2 rows for a batch"),
        (Net(5), dict(target=Loss([1, 2, 9])), ValueError, r"Loss: labels: 9 is out of range"),
        (Net(5), dict(target=lambda o: o), ValueError,
         r"target: the callable returned shape \(3, 5\); it must return \(N,\) = \(3,\)"),
        (Net(5), dict(target=lambda o: "x"), TypeError, r"target: the callable returned str"),
        (Net(5), dict(target=lambda o: o.argmax(1).float()), ValueError,
         r"target: the score does not depend on input 0 through autograd"),
        (Net(3, dense=True), dict(target=Region(1, torch.ones(8, 8))), ValueError,
         r"Region: mask has shape \(3, 8, 8\); the output's grid is \(16, 16\)"),
        (Net(3, dense=True), dict(target=Region(7)), ValueError,
         r"Region: class_index 7 is out of range; the model has 3 classes"),
        (Net(5), dict(target=Contrast(1, 9)), ValueError, r"Contrast: b: 9 is out of range"),
        (Net(5), dict(target=object()), TypeError, r"target: expected None, a class index"),
        (Net(5), dict(target=1, label=2), ValueError, r"give target= or label=, not both"),
        (Net(1), dict(target=2), ValueError,
         r"target: 2 is out of range; a binary logit has classes 0 \(negative\) and 1"),
    ],
)
def test_targets_that_do_not_fit_get_clear_errors(model, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        CamEngine(model.eval()).explain(X, **kwargs)


@pytest.mark.parametrize(
    ("model", "task", "exc", "pattern"),
    [
        (Net(5), "nonsense", ValueError, r"task: 'nonsense' is unknown; allowed: \['multiclass'"),
        (Net(5), "binary", ValueError,
         r"task: 'binary' does not fit an output of shape \(3, 5\); allowed for it: "
         r"\['multiclass', 'multilabel', 'regression'\]"),
        (Net(1), "multiclass", ValueError, r"task: 'multiclass' does not fit .* \['binary'"),
    ],
)
def test_a_task_that_does_not_fit_gets_a_clear_error(model, task, exc, pattern):
    with pytest.raises(exc, match=pattern):
        CamEngine(model.eval(), task=task).explain(X)
