"""Small architectures for the engine's tests, written here since torchvision is not available.

They cover what real vision models do: in-place ReLUs, ``out += identity`` residuals, dense
concatenations, depthwise convolutions, functional ops between modules, branches, a module
called twice, and several inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock shape: in-place ReLU used twice, ``out += identity``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, inplace: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.inplace = inplace

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.inplace:
            out += identity
        else:
            out = out + identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self, num_classes: int = 5, inplace: bool = True, width: int = 8) -> None:
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=inplace)
        self.layer1 = BasicBlock(w, w, 1, inplace)
        self.layer2 = BasicBlock(w, 2 * w, 2, inplace)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * w, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, growth, 3, 1, 1, bias=False)

    def forward(self, features: list[torch.Tensor]):
        x = torch.cat(features, 1)
        return self.conv(self.relu(self.norm(x)))


class TinyDenseNet(nn.Module):
    """DenseNet-like: every layer sees the concatenation of all earlier ones."""

    def __init__(self, num_classes: int = 4, growth: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.layers = nn.ModuleList([DenseLayer(8 + i * growth, growth) for i in range(3)])
        self.head = nn.Linear(8 + 3 * growth, num_classes)

    def forward(self, x):
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(features))
        x = F.relu(torch.cat(features, 1))
        return self.head(x.mean(dim=(2, 3)))


class InvertedResidual(nn.Module):
    """MobileNetV2-like: expand 1x1, depthwise 3x3, project 1x1, ReLU6 in place."""

    def __init__(self, c: int, expand: int = 4) -> None:
        super().__init__()
        h = c * expand
        self.expand = nn.Conv2d(c, h, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(h)
        self.act1 = nn.ReLU6(inplace=True)
        self.dw = nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False)
        self.bn2 = nn.BatchNorm2d(h)
        self.act2 = nn.ReLU6(inplace=True)
        self.project = nn.Conv2d(h, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = self.act1(self.bn1(self.expand(x)))
        out = self.act2(self.bn2(self.dw(out)))
        return x + self.bn3(self.project(out))


class TinyMobileNet(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.Hardswish(inplace=True))
        self.blocks = nn.Sequential(InvertedResidual(8), InvertedResidual(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.blocks(self.stem(x))).flatten(1))


class ThreeConvs(nn.Module):
    """A Sequential of three convs: depths 1, 2, 3."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3)
        )
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


class TwoBranches(nn.Module):
    """A short branch (1 conv) and a long branch (3 convs) merged by a functional add, then a
    conv after the merge: the merge conv sits at depth 4 (one deeper than the long branch).
    The same ``act`` module is called on both branches: ``act`` and ``act#2``."""

    def __init__(self) -> None:
        super().__init__()
        self.short = nn.Conv2d(3, 4, 1)
        self.long1 = nn.Conv2d(3, 4, 3, padding=1)
        self.long2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.merge = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        a = self.short(x)
        b = self.act(self.long2(self.long1(x)))  # long1 1, long2 2, act 3
        m = self.merge(F.relu(a) + b)  # 4
        m = self.act(m)  # act#2, 5
        return self.fc(m.mean(dim=(2, 3)))


class TwoInputs(nn.Module):
    """An image branch and a mask/depth branch fused late; the second input has 1 channel."""

    def __init__(self) -> None:
        super().__init__()
        self.rgb1 = nn.Conv2d(3, 4, 3, padding=1)
        self.rgb2 = nn.Conv2d(4, 4, 3, padding=1)
        self.aux1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fuse = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, rgb, aux):
        a = torch.relu(self.rgb2(torch.relu(self.rgb1(rgb))))
        b = torch.relu(self.aux1(aux))
        return self.fc(self.fuse(torch.cat([a, b], 1)).mean(dim=(2, 3)))


class NoSpatial(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


def seeded(cls, *args, seed: int = 0, **kwargs) -> nn.Module:
    """Build a model with seeded weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = cls(*args, **kwargs)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return model.eval()


class ShortcutBlock(nn.Module):
    """A residual block whose shortcut hands its input on unchanged: ``nn.Identity()`` or an
    empty ``nn.Sequential()`` (as in the common CIFAR ResNets and timm's ConvNeXt)."""

    def __init__(self, c: int, shortcut: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.shortcut = shortcut

    def forward(self, x):
        out = self.conv2(F.relu(self.conv1(x)))
        out += self.shortcut(x)
        return F.relu(out)


class IdentityShortcuts(nn.Module):
    def __init__(self, empty_sequential: bool = False) -> None:
        super().__init__()

        def shortcut():
            return nn.Sequential() if empty_sequential else nn.Identity()

        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.b1 = ShortcutBlock(4, shortcut())
        self.b2 = ShortcutBlock(4, shortcut())
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.b2(self.b1(F.relu(self.stem(x))))
        return self.fc(x.mean(dim=(2, 3)))
