"""The embedded demo: a synthetic shapes data set and a small CNN trained on it.

``load_demo()`` returns the trained model (shipped weights, nothing is trained at import or use),
the train and validation splits, and the label names::

    model, data, label_names = load_demo()
    image, label = data["val"][0]
    mask = data["val"].mask(0)  # ground truth: the pixels of the class-defining object
"""

from __future__ import annotations

from pathlib import Path

import torch

from samplelens_widget.demo.data import LABEL_NAMES, MEAN, STD, ShapesDataset, make_shapes
from samplelens_widget.demo.model import DemoNet

__all__ = [
    "LABEL_NAMES",
    "MEAN",
    "STD",
    "WEIGHTS_PATH",
    "DemoNet",
    "ShapesDataset",
    "load_demo",
    "load_model",
    "make_shapes",
    "split_seeds",
]

WEIGHTS_PATH = Path(__file__).with_name("weights.pt")


def split_seeds(seed: int = 0) -> tuple[int, int]:
    """The generator seeds of the train and validation splits for `seed` (always different)."""
    return 2 * seed, 2 * seed + 1


def load_model(device: torch.device | str | None = None) -> DemoNet:
    """A `DemoNet` with the shipped weights, in eval mode, on `device` (default: the CPU)."""
    state = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model = DemoNet(num_classes=len(LABEL_NAMES))
    model.load_state_dict(state)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def load_demo(
    device: torch.device | str | None = None,
    *,
    n_train: int = 4000,
    n_val: int = 1000,
    seed: int = 0,
) -> tuple[DemoNet, dict[str, ShapesDataset], list[str]]:
    """The demo model and data: ``(model, {"train": ds, "val": ds}, label_names)``.

    The model is a `DemoNet` in eval mode with the shipped weights (trained on the default train
    split), moved to `device` when one is given. The data sets are generated on the CPU
    (deterministically, from `seed`; train and val use different seeds) and yield normalised
    ``(image (3, 64, 64) float32, label int)`` items; see `ShapesDataset`.
    """
    model = load_model(device)
    train_seed, val_seed = split_seeds(seed)
    data = {
        "train": ShapesDataset.generate(n_train, train_seed),
        "val": ShapesDataset.generate(n_val, val_seed),
    }
    return model, data, list(LABEL_NAMES)
