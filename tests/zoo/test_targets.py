"""Every target equals pytorch-grad-cam's GradCAM and LayerCAM with the matching target, at the
block outputs and the default layer of real models (random weights): a CNN (torchvision
ResNet-18), a class-token ViT (timm) and a channels-last Swin (torchvision); and Region equals
its ``SemanticSegmentationTarget`` on torchvision's FCN (a dict output ``{"out": (N, K, H, W)}``).

pytorch-grad-cam calls a target on each sample's output row; the references below are written
that way, independently of the engine's batched targets.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
from torch import nn

from samplelens_widget import CamEngine
from samplelens_widget.targets import Contrast, Loss, Region
from tests.zoo.models import ZOO, build
from tests.zoo.test_zoo import Logits, assert_maps_equal, grad_cam_reference

MODELS = ["torchvision resnet18", "timm vit_tiny_patch16_224", "torchvision swin_t"]
LABELS = [2, 0]


def softmax_of_3(output):  # a user's callable: the probability of class 3
    return torch.softmax(output, dim=1)[:, 3]


CASES = {
    # name: (our target, the per-sample pytorch-grad-cam targets)
    "loss": (Loss(LABELS), [lambda o, y=y: F.cross_entropy(o[None], torch.tensor([y]))
                            for y in LABELS]),
    "contrast": (Contrast(1, 4), [lambda o: o[1] - o[4]] * 2),
    "callable": (softmax_of_3, [lambda o: torch.softmax(o, dim=0)[3]] * 2),
}


@pytest.fixture(scope="module", params=MODELS)
def zoo(request):
    z = next(z for z in ZOO if z.name == request.param)
    model = build(z)
    torch.manual_seed(5)
    return z, model, torch.randn(len(LABELS), 3, *z.size)


@pytest.mark.parametrize("case", list(CASES))
def test_targets_equal_pytorch_grad_cam_at_every_block(zoo, case):
    z, model, x = zoo
    ours_target, ref_targets = CASES[case]
    engine = CamEngine(model)
    results = {a: engine.explain(x, ours_target, algorithm=a) for a in ("gradcam", "layercam")}
    blocks = {n: r for n, r in z.blocks.items() if r != "hand"}
    assert z.default in blocks  # the default layer is compared too
    for name, reshape in blocks.items():
        refs = grad_cam_reference(model, x, model.get_submodule(name), reshape, ref_targets)
        for algorithm, res in results.items():
            assert_maps_equal(res.raw(name), refs[algorithm], f"{z.name} {name} {case} {algorithm}")
        # not a comparison of two empty maps (GradCAM's ReLU may zero one method's map)
        assert max(np.abs(r).max() for r in refs.values()) > 0, f"{z.name} {name} {case}"


def test_the_loss_target_is_each_samples_own_loss(zoo):
    z, model, x = zoo
    res = CamEngine(model).explain(x, Loss(LABELS))
    with torch.no_grad():
        logits = Logits(model.eval())(x)
    want = F.cross_entropy(logits, torch.tensor(LABELS), reduction="none").numpy()
    np.testing.assert_allclose(res.scores, want, rtol=1e-4)
    assert res.targets.tolist() == LABELS and res.target.title == "loss (true label)"


class SegOut(nn.Module):
    """pytorch-grad-cam's segmentation tutorial: hand it ``model(x)["out"]``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


@pytest.fixture(scope="module")
def fcn():
    from torchvision.models.segmentation import fcn_resnet50

    torch.manual_seed(0)
    model = fcn_resnet50(weights=None, weights_backbone=None, num_classes=4, aux_loss=False)
    torch.manual_seed(1)
    return model.eval(), torch.randn(2, 3, 64, 64)


@pytest.mark.parametrize("masked", [False, True])
def test_region_equals_semantic_segmentation_target(fcn, masked):
    model, x = fcn
    with torch.no_grad():
        pred = model(x)["out"].argmax(dim=1)
    cls = int(torch.mode(pred.flatten()).values)  # a class that has pixels
    if masked:
        mask = torch.zeros(64, 64)
        mask[8:40, 16:56] = 1.0
        masks = [mask.numpy(), mask.numpy()]
    else:
        masks = [(pred[i] == cls).float().numpy() for i in range(2)]
    ours = CamEngine(model).explain(x, Region(cls, mask if masked else None))
    assert ours.task == "segmentation"
    for name in ("backbone.layer3", "backbone.layer4", "classifier.0"):
        module = model.get_submodule(name)
        targets = [SemanticSegmentationTarget(cls, m) for m in masks]
        with GradCAM(SegOut(model), [module]) as cam:
            cam(input_tensor=x, targets=targets)
            acts = cam.activations_and_grads.activations[0].numpy().copy()
            grads = cam.activations_and_grads.gradients[0].numpy().copy()
            ref = np.maximum(cam.get_cam_image(x, module, targets, acts, grads, False), 0)
        assert_maps_equal(ours.raw(name), ref, f"fcn {name} masked={masked}")
        assert np.abs(ref).max() > 0
