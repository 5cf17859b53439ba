"""Batches as users hold them: a list of samples, a DataLoader's (inputs, labels) pair, and
several inputs of a multi-input model, told apart by the forward's positional parameters."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from samplelens_widget import CamEngine
from samplelens_widget.cam.targets import Loss
from tests.cam.archs import TinyResNet, TwoInputs, seeded


@pytest.fixture(scope="module")
def model():
    return seeded(TinyResNet)


@pytest.fixture(scope="module")
def samples():
    g = torch.Generator().manual_seed(4)
    return [torch.randn(3, 16, 16, generator=g) for _ in range(3)]


def assert_same_result(batch, singles):
    """A batch's result equals the per-sample results at every layer and depth."""
    assert batch.logits.shape[0] == len(singles)
    np.testing.assert_allclose(batch.logits, np.concatenate([s.logits for s in singles]),
                               rtol=1e-5, atol=1e-6)
    assert batch.targets.tolist() == [int(s.targets[0]) for s in singles]
    assert [i.name for i in batch.layers] == [i.name for i in singles[0].layers]
    for info in batch.layers:
        want = np.concatenate([s.raw(info.name) for s in singles])
        np.testing.assert_allclose(batch.raw(info.name), want, rtol=1e-4, atol=1e-6)
    for d in batch.depths:
        want = np.concatenate([s.heatmap(d) for s in singles])
        np.testing.assert_allclose(batch.heatmap(d), want, atol=1e-5)


@pytest.mark.parametrize("as_", ["list", "tuple", "numpy"])
def test_a_list_of_samples_is_one_batch_equal_to_each_sample_alone(model, samples, as_):
    eng = CamEngine(model)
    given = {"list": list(samples), "tuple": tuple(samples),
             "numpy": [s.numpy() for s in samples]}[as_]
    res = eng.explain(given, target=[1, 3, 0])
    assert_same_result(res, [eng.explain(x, target=t) for x, t in zip(samples, [1, 3, 0],
                                                                       strict=True)])
    stacked = eng.explain(torch.stack(samples), target=[1, 3, 0])
    np.testing.assert_array_equal(res.heatmap(), stacked.heatmap())


def test_a_list_of_samples_equals_pytorch_grad_cam_on_the_stacked_batch(model, samples):
    res = CamEngine(model).explain(samples, target=[1, 3, 0])
    x = torch.stack(samples)
    targets = [ClassifierOutputTarget(t) for t in (1, 3, 0)]
    for name in ("layer1", "layer2"):
        module = model.get_submodule(name)
        with GradCAM(model, [module]) as cam:
            cam(input_tensor=x, targets=targets)
            acts = cam.activations_and_grads.activations[0].numpy().copy()
            grads = cam.activations_and_grads.gradients[0].numpy().copy()
            ref = np.maximum(cam.get_cam_image(x, module, targets, acts, grads, False), 0)
        model.zero_grad(set_to_none=True)
        ours = res.raw(name)
        assert ours.shape == ref.shape == (3, *ref.shape[1:])
        np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * float(np.abs(ref).max()))


def loader_batch(model, n=4):
    """One batch of a DataLoader over a TensorDataset, labels chosen to differ from the
    predictions (so that a target taken from them would show)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, 3, 16, 16, generator=g)
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = (pred + 1) % 5
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=n)
    batch = next(iter(loader))
    assert isinstance(batch, list) and len(batch) == 2
    return batch


def test_a_dataloader_batch_explains_its_inputs_and_warns_the_labels_are_not_the_target(model):
    x, y = loader_batch(model)
    eng = CamEngine(model)
    with pytest.warns(UserWarning, match=r"inputs: read as an \(inputs, labels\) pair from a "
                                         r"DataLoader .* explaining inputs\[0\] "
                                         r"\(4, 3, 16, 16\); the labels are not the target") as rec:
        res = eng.explain([x, y])
    assert rec[0].filename == __file__  # the warning points at the caller's line
    alone = eng.explain(x)
    assert res.targets.tolist() == res.predictions.tolist() == alone.targets.tolist()
    assert res.targets.tolist() != y.tolist()  # the labels were not taken as the target
    np.testing.assert_array_equal(res.heatmap(), alone.heatmap())
    with pytest.warns(UserWarning, match=r"DataLoader"):
        loss = eng.explain((x, y), Loss(y))
    np.testing.assert_allclose(loss.heatmap(), eng.explain(x, Loss(y)).heatmap(), atol=1e-6)
    with pytest.warns(UserWarning, match=r"DataLoader"):
        by_list = eng.explain([x, y.tolist()], target=y)
    assert by_list.targets.tolist() == y.tolist()


def test_a_dataset_item_sample_and_int_label(model, samples):
    eng = CamEngine(model)
    with pytest.warns(UserWarning, match=r"explaining inputs\[0\] \(3, 16, 16\)"):
        res = eng.explain((samples[0], 2))
    np.testing.assert_array_equal(res.heatmap(), eng.explain(samples[0]).heatmap())


def test_ragged_samples_are_a_clear_error(model, samples):
    with pytest.raises(ValueError, match=r"^inputs: 2 samples of different shapes "
                                         r"\(\(3, 16, 16\), \(3, 12, 12\)\) for a model whose "
                                         r"forward takes 1 input \(x\); a list of samples is "
                                         r"stacked into one batch, so they need one shape"):
        CamEngine(model).explain([samples[0], torch.randn(3, 12, 12)])


@pytest.mark.parametrize("inputs,message", [
    ([torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)],
     r"^inputs: 2 items \(\(2, 3, 16, 16\), \(2, 3, 16, 16\)\) for a model whose forward takes "
     r"1 input \(x\); allowed: one tensor \(C,H,W\) or \(N,C,H,W\), a list of same-shaped "
     r"samples"),
    ([torch.randn(4, 3, 16, 16), torch.tensor([1, 2])],  # 2 labels for 4 samples
     r"^inputs: 2 items"),
    ([torch.randn(4, 3, 16, 16), torch.rand(4)],  # float "labels": not a DataLoader pair
     r"^inputs: 2 items"),
])
def test_lists_that_fit_no_reading_are_inputs_errors(model, inputs, message):
    with pytest.raises(ValueError, match=message):
        CamEngine(model).explain(inputs)


def test_multi_input_models_take_one_tensor_per_input():
    model = seeded(TwoInputs)
    eng = CamEngine(model)
    a, b = torch.randn(2, 3, 8, 8), torch.randn(2, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = eng.explain((a, b))
        one = eng.explain([a[0], b[0]], connection=1)
    assert res.logits.shape == (2, 3) and one.logits.shape == (1, 3)
    with torch.no_grad():
        np.testing.assert_allclose(res.logits, model(a, b).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inputs,message", [
    (torch.randn(2, 3, 8, 8),
     r"^inputs: one tensor \(2, 3, 8, 8\) for a model whose forward takes 2 inputs "
     r"\(rgb, aux\); allowed: a tuple of 2 tensors, one per input"),
    ((torch.randn(3, 8, 8), torch.randn(1, 8, 8), torch.randn(1, 8, 8)),
     r"^inputs: 3 items \(\(3, 8, 8\), \(1, 8, 8\), \(1, 8, 8\)\) for a model whose forward "
     r"takes 2 inputs \(rgb, aux\); allowed: one tensor per input \(a tuple of 2\)"),
    ((torch.randn(2, 3, 8, 8), torch.randn(3, 1, 8, 8)),
     r"^inputs: input 1 \(3, 1, 8, 8\) has batch size 3 but input 0 \(the connection\) "
     r"\(2, 3, 8, 8\) has 2; allowed: one batch size for every input"),
])
def test_multi_input_mistakes_are_inputs_errors(inputs, message):
    with pytest.raises(ValueError, match=message):
        CamEngine(seeded(TwoInputs)).explain(inputs)


class Siamese(nn.Module):
    """Two inputs of one shape: a list of two same-shaped tensors is its two inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, left, right):
        return self.fc((self.conv(left) - self.conv(right)).mean(dim=(2, 3)))


class AnyInputs(nn.Module):
    """A wrapper with ``forward(*inputs)`` (as DataParallel's): taken as given."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = seeded(TwoInputs)

    def forward(self, *inputs):
        return self.inner(*inputs)


def test_a_count_that_fits_the_forward_is_its_inputs_and_star_args_take_them_as_given():
    left, right = torch.randn(3, 8, 8), torch.randn(3, 8, 8)
    res = CamEngine(seeded(Siamese)).explain([left, right])
    assert res.logits.shape == (1, 2)  # two inputs of one sample, not a batch of two
    a, b = torch.randn(2, 3, 8, 8), torch.randn(2, 1, 8, 8)
    wrapped = CamEngine(AnyInputs()).explain((a, b))
    direct = CamEngine(seeded(TwoInputs)).explain((a, b))
    np.testing.assert_allclose(wrapped.heatmap(), direct.heatmap(), atol=1e-6)
