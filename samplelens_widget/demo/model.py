"""`DemoNet`: the small ResNet-like CNN of the embedded demo."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicBlock", "DemoNet"]


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: two 3x3 convs, a shortcut, ``out += identity``.

    As in torchvision, the block's one in-place ReLU module is called twice per forward, and a
    1x1 conv + BN shortcut (``downsample``) is used when the stride or the width changes.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        result: torch.Tensor = self.relu(out)
        return result


class DemoNet(nn.Module):
    """A small ResNet for (N, 3, 64, 64) inputs; returns logits (N, num_classes).

    stem (conv3x3 3->16, BN, ReLU) at 64x64, then three stages of one BasicBlock each:
    ``layer1`` 16 channels at 64x64, ``layer2`` 32 at 32x32, ``layer3`` 64 at 16x16; then global
    average pooling and a linear classifier. About 80k parameters.
    """

    def __init__(self, num_classes: int = 6, widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.conv1 = _conv3x3(3, w1)
        self.bn1 = nn.BatchNorm2d(w1)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(w1, w1, stride=1))
        self.layer2 = nn.Sequential(BasicBlock(w1, w2, stride=2))
        self.layer3 = nn.Sequential(BasicBlock(w2, w3, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w3, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = torch.flatten(self.avgpool(x), 1)
        logits: torch.Tensor = self.fc(x)
        return logits
