"""Small models and data sets for the widget tests (fast on a CPU)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

NAMES = ["circle", "square", "triangle", "cross", "ring"]


class TinyNet(nn.Module):
    """Three conv stages (64 -> 32 -> 16 -> 8) and a linear head: 4+ depths."""

    def __init__(self, classes: int = 5, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 12, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(12, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))

    def forward(self, x):
        return self.head(self.features(x))


class TwoInputNet(nn.Module):
    """Model with two image inputs: model(a, b)."""

    def __init__(self, classes: int = 5):
        super().__init__()
        torch.manual_seed(1)
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
        self.b = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
        self.head = nn.Linear(16, classes)

    def forward(self, a, b):
        fa = self.a(a).mean(dim=(2, 3))
        fb = self.b(b).mean(dim=(2, 3))
        return self.head(torch.cat([fa, fb], dim=1))


class Blobs(torch.utils.data.Dataset):
    """n random 3x(size)x(size) images with a bright blob whose position depends on the label."""

    def __init__(self, n: int = 60, size: int = 64, classes: int = 5, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, size, size, generator=g) * 0.3
        self.y = torch.randint(0, classes, (n,), generator=g)
        for i in range(n):
            c = int(self.y[i])
            r0 = (c * size) // (classes + 1)
            self.x[i, c % 3, r0 : r0 + size // 4, r0 : r0 + size // 4] += 0.7

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])

    def to_display(self, i):
        return (self.x[i].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


class PairData(torch.utils.data.Dataset):
    """Items ((rgb, gray), label) for TwoInputNet."""

    def __init__(self, n: int = 20):
        g = torch.Generator().manual_seed(3)
        self.a = torch.rand(n, 3, 32, 32, generator=g)
        self.b = torch.rand(n, 1, 48, 48, generator=g)
        self.y = torch.randint(0, 5, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return (self.a[i], self.b[i]), int(self.y[i])


def histogram_text(sample) -> str:
    x, y = sample
    return f"sample {sample.id}: label {y}, mean {float(x.mean()):.4f}"


def red_image(sample) -> np.ndarray:
    img = np.zeros((16, 16, 3), dtype=np.uint8)
    img[..., 0] = 255
    return img


def broken(sample):
    raise RuntimeError("this visualizer is broken on purpose")
