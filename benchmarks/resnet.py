"""A ResNet-18-shaped model in plain torch (torchvision does not import beside the CPU torch
build here): the same layers, shapes and in-place ReLUs as torchvision's ``resnet18``, built
from the demo's torchvision-style ``BasicBlock``."""

from __future__ import annotations

import torch
from torch import nn

from samplelens_widget.demo.model import BasicBlock


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        chans, cin = [64, 128, 256, 512], 64
        for i, c in enumerate(chans):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, c, stride),
                                                         BasicBlock(c, c)))
            cin = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(seed: int = 0, num_classes: int = 1000) -> ResNet18:
    torch.manual_seed(seed)
    return ResNet18(num_classes).eval()
