"""CamEngine's contract: the call shapes, the heatmaps, the untouched model, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from samplelens_widget import CamEngine, CamResult, LayerInfo
from tests.cam.archs import NoSpatial, TinyResNet, TwoBranches, TwoInputs, seeded


def snapshot(model: nn.Module) -> dict:
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "grad": {k: None if p.grad is None else p.grad.clone() for k, p in
                 model.named_parameters()},
        "training": {k: m.training for k, m in model.named_modules()},
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    for k, v in before["params"].items():
        assert torch.equal(after["params"][k], v), k
    for k, g in before["grad"].items():
        if g is None:
            assert after["grad"][k] is None, f"{k} has a .grad left behind"
        else:
            assert torch.equal(after["grad"][k], g), k
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        assert not getattr(m, "_backward_pre_hooks", None)
    assert not nn.modules.module._global_forward_hooks


def mixed_mode_model() -> nn.Module:
    model = seeded(TinyResNet)
    model.train()
    model.layer1.eval()  # a mix the engine must restore module by module
    model.fc.weight.requires_grad_(False)
    return model


def test_explain_returns_the_contract():
    model = seeded(TinyResNet)
    x = torch.randn(2, 3, 16, 16)
    res = CamEngine(model).explain(x)
    assert isinstance(res, CamResult)
    assert all(isinstance(i, LayerInfo) for i in res.layers)
    assert res.logits.shape == (2, 5) and res.logits.dtype == np.float32
    np.testing.assert_allclose(res.logits, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(res.predictions, res.logits.argmax(1))
    np.testing.assert_array_equal(res.targets, res.predictions)  # label=None: predicted class
    np.testing.assert_allclose(res.probabilities.sum(1), 1.0, rtol=1e-6)
    assert res.depths == list(range(1, 16))
    assert res.input_size == (16, 16)


def test_heatmap_is_the_upsampled_min_max_map_of_the_last_layer_at_that_depth():
    model = seeded(TinyResNet)
    x = torch.randn(2, 3, 16, 16)
    res = CamEngine(model).explain(x, algorithm="layercam")
    # depth 11 holds layer2.downsample.1 and layer2.bn1; bn1 runs later
    assert res.layer_at(11).name == "layer2.bn1"
    for depth in (None, 11, 1):
        info = res.layer_at(depth)
        raw = torch.from_numpy(res.raw(info.name))
        up = F.interpolate(raw[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
        flat = up.reshape(2, -1)
        lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
        expected = ((up - lo) / (hi - lo)).numpy()
        hm = res.heatmap(depth)
        assert hm.shape == (2, 16, 16) and hm.dtype == np.float32
        np.testing.assert_allclose(hm, expected, rtol=1e-5, atol=1e-6)
        assert hm.min() >= 0 and hm.max() <= 1
    assert res.layer_at(None) == res.layer_at(15)
    np.testing.assert_array_equal(res.heatmap(), res.heatmap(15))


def test_one_label_per_sample_equals_each_sample_alone():
    model = seeded(TinyResNet)
    x = torch.randn(3, 3, 16, 16)
    eng = CamEngine(model)
    batch = eng.explain(x, label=[4, 0, 2], algorithm="gradcam")
    for i, lab in enumerate([4, 0, 2]):
        one = eng.explain(x[i], label=lab, algorithm="gradcam")  # (C, H, W): one sample
        assert one.logits.shape == (1, 5)
        for info in batch.layers:
            np.testing.assert_allclose(batch.raw(info.name)[i], one.raw(info.name)[0],
                                       rtol=1e-4, atol=1e-6)


def test_label_accepts_numpy_and_tensor_ints():
    model, x = seeded(TinyResNet), torch.randn(2, 3, 16, 16)
    eng = CamEngine(model)
    a = eng.explain(x, label=np.int64(3)).targets
    b = eng.explain(x, label=torch.tensor([3, 3])).targets
    assert a.tolist() == b.tolist() == [3, 3]


def test_several_inputs_heatmap_at_the_connection_resolution():
    model = seeded(TwoInputs)
    x = (torch.randn(2, 3, 8, 8), torch.randn(2, 1, 8, 8))
    res = CamEngine(model).explain(x, connection=1)
    assert [i.name for i in res.layers] == ["aux1", "fuse"]
    assert res.heatmap().shape == (2, 8, 8)
    one = CamEngine(model).explain((x[0][0], x[1][0]), connection=0)  # one sample, 2 inputs
    assert one.logits.shape == (1, 3)


@pytest.mark.parametrize("algorithm", CamEngine.algorithms)
def test_the_model_is_untouched_after_success(algorithm):
    model = mixed_mode_model()
    before = snapshot(model)
    eng = CamEngine(model)
    eng.explain(torch.randn(2, 3, 16, 16), label=1, algorithm=algorithm)
    eng.layers(torch.randn(1, 3, 16, 16))
    assert_untouched(model, before)


def test_explain_runs_in_eval_mode():
    model = seeded(TinyResNet)
    model.train()
    seen = []
    handle = model.bn1.register_forward_pre_hook(lambda m, a: seen.append(m.training))
    try:
        CamEngine(model).explain(torch.randn(2, 3, 16, 16))
    finally:
        handle.remove()
    assert seen and not any(seen)
    assert model.training and model.bn1.training


def test_a_grad_already_on_a_parameter_is_left_as_it_was():
    model = seeded(TinyResNet)
    model(torch.randn(1, 3, 16, 16)).sum().backward()
    before = snapshot(model)
    CamEngine(model).explain(torch.randn(1, 3, 16, 16))
    assert_untouched(model, before)


def test_works_under_no_grad_and_inference_mode_and_with_frozen_weights():
    model = seeded(TinyResNet)
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, 3, 16, 16)
    expected = CamEngine(model).explain(x).raw("conv1")
    with torch.no_grad():
        np.testing.assert_allclose(CamEngine(model).explain(x).raw("conv1"), expected)
    with torch.inference_mode():
        xi = x.clone()
        np.testing.assert_allclose(CamEngine(model).explain(xi).raw("conv1"), expected)


def test_the_users_input_is_not_changed():
    class InPlaceFirst(TwoBranches):
        def forward(self, x):
            x.mul_(2)  # a model that edits its input in place
            return super().forward(x)

    model = seeded(InPlaceFirst)
    x = torch.randn(1, 3, 8, 8)
    keep = x.clone()
    CamEngine(model).explain(x)
    assert torch.equal(x, keep) and not x.requires_grad


BAD = [
    (dict(label=5), ValueError,
     r"label: 5 is out of range; the model has 5 classes, allowed: 0\.\.4"),
    (dict(label=-1), ValueError, r"label: -1 is out of range"),
    (dict(label=[1]), ValueError, r"label: got 1 labels for a batch of 2"),
    (dict(label=1.5), TypeError, r"label: expected an int"),
    (dict(label=True), TypeError, r"label: expected an int"),
    (dict(algorithm="scorecam"), ValueError,
     r"algorithm: 'scorecam' is unknown; allowed: \['gradcam', 'layercam', 'focus_layercam'\]"),
    (dict(connection=1), ValueError, r"connection: 1 is out of range; .* allowed: 0\.\.0"),
    (dict(connection="0"), TypeError, r"connection: expected an int"),
]


@pytest.mark.parametrize("kwargs,exc,message", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_arguments_get_clear_errors_and_the_model_stays_untouched(kwargs, exc, message):
    model = mixed_mode_model()
    before = snapshot(model)
    eng = CamEngine(model)
    with pytest.raises(exc, match=message):
        eng.explain(torch.randn(2, 3, 16, 16), **kwargs)
    assert_untouched(model, before)
    eng.explain(torch.randn(2, 3, 16, 16))  # still usable


def test_inputs_the_model_raises_on_name_the_input_and_its_shape():
    model = mixed_mode_model()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match=r"the model raised on the inputs \(input "
                                           r"\(2, 4, 16, 16\) float32\): RuntimeError: "):
        CamEngine(model).explain(torch.randn(2, 4, 16, 16))
    assert_untouched(model, before)


@pytest.mark.parametrize("inputs,exc,message", [
    (torch.randn(16, 16), ValueError, r"inputs: input 0 .* has shape \(16, 16\)"),
    ("image.png", TypeError, r"inputs: expected a tensor"),
    ((), TypeError, r"inputs: expected a tensor"),
    ([torch.randn(3, 8, 8), [1, 2]], TypeError, r"inputs\[1\]: expected a tensor"),
])
def test_malformed_inputs(inputs, exc, message):
    with pytest.raises(exc, match=message):
        CamEngine(seeded(TwoBranches)).explain(inputs)


def test_a_model_without_spatial_layers():
    model = seeded(NoSpatial)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"connection: no spatial layer .* input 0 of NoSpatial"):
        CamEngine(model).explain(torch.randn(1, 3, 8, 8))
    assert_untouched(model, before)


def test_an_integer_connection_input_is_refused():
    model = seeded(TwoInputs)
    with pytest.raises(ValueError, match=r"connection: input 1 has dtype torch.int64"):
        CamEngine(model).explain(
            (torch.randn(1, 3, 8, 8), torch.ones(1, 1, 8, 8, dtype=torch.long)), connection=1
        )


def test_bad_depth_and_layer_names_on_the_result():
    res = CamEngine(seeded(TwoBranches)).explain(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"depth: 9 is not a depth of this model; allowed: 1\.\.5"):
        res.heatmap(9)
    with pytest.raises(TypeError, match=r"depth: expected an int or None"):
        res.heatmap("last")
    with pytest.raises(ValueError, match=r"name: 'nope' is not a layer"):
        res.raw("nope")


def test_device_defaults_to_the_parameters_device_and_a_model_must_be_a_module():
    assert CamEngine(seeded(TwoBranches)).device == torch.device("cpu")
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module, got function"):
        CamEngine(lambda x: x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_maps_match_the_cpu_and_stay_on_the_device():
    model = seeded(TinyResNet)
    x = torch.randn(2, 3, 16, 16)
    cpu = CamEngine(model).explain(x, algorithm="layercam")
    gpu_model = seeded(TinyResNet).cuda()
    gpu = CamEngine(gpu_model).explain(x, algorithm="layercam")
    assert gpu.map_tensor("conv1").device.type == "cuda"
    for info in cpu.layers:
        np.testing.assert_allclose(gpu.raw(info.name), cpu.raw(info.name), rtol=1e-3, atol=1e-5)


def test_a_detached_output_gets_a_clear_error():
    class Detached(TwoBranches):
        def forward(self, x):
            return super().forward(x).detach()

    with pytest.raises(ValueError, match=r"model: its output does not depend on input 0"):
        CamEngine(seeded(Detached)).explain(torch.randn(1, 3, 8, 8))


def test_the_device_follows_the_model_when_none_was_given():
    model = seeded(TwoBranches)
    eng = CamEngine(model)
    pinned = CamEngine(model, device="cpu")
    model.to("meta")  # moved after the engines were made
    assert eng.device == torch.device("meta")
    assert pinned.device == torch.device("cpu")


def test_concurrent_explains_on_one_model_each_see_only_their_own_forward():
    """Two threads (say the widget's worker and the notebook) explaining the same model take
    turns: neither records the other's forward, so names never gain a stray ``#2``."""
    import threading

    model = seeded(TinyResNet)
    expected = [i.name for i in CamEngine(model).layers(torch.randn(1, 3, 16, 16))]
    seen, errors = [], []

    def work(seed):
        try:
            eng = CamEngine(model)
            g = torch.Generator().manual_seed(seed)
            for _ in range(8):
                res = eng.explain(torch.randn(2, 3, 16, 16, generator=g), algorithm="layercam")
                seen.append([i.name for i in res.layers])
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(seen) == 24 and all(names == expected for names in seen)
    assert not model.training and all(not m._forward_hooks for m in model.modules())


def test_logits_are_found_in_tuples_dicts_and_nested_outputs():
    class Wrapped(TwoBranches):
        def __init__(self, wrap):
            super().__init__()
            self.wrap = wrap

        def forward(self, x):
            return self.wrap(super().forward(x))

    x = torch.randn(2, 3, 8, 8)
    plain = CamEngine(seeded(TwoBranches)).explain(x, label=1).raw("merge")
    for wrap in (lambda y: (y, "aux"), lambda y: {"logits": y, "aux": y * 0},
                 lambda y: ({"logits": y},)):
        model = seeded(Wrapped, wrap)
        np.testing.assert_allclose(CamEngine(model).explain(x, label=1).raw("merge"), plain)
