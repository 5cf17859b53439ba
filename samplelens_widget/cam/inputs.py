"""Checking and shaping what the caller passes: inputs, algorithm, connection (targets and
outputs: ``targets.py``, ``outputs.py``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def to_tensors(inputs: object) -> list[torch.Tensor]:
    """One sample, a batch, or a tuple/list of them (several inputs) as a list of tensors."""
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        items = [inputs]
    elif isinstance(inputs, (tuple, list)) and inputs:
        items = list(inputs)
    else:
        raise TypeError(
            f"inputs: expected a tensor (C,H,W) or (N,C,H,W), or a non-empty tuple/list of "
            f"tensors, got {_describe(inputs)}"
        )
    tensors = []
    for i, x in enumerate(items):
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"inputs[{i}]: expected a tensor or numpy array, got {_describe(x)}")
        tensors.append(x)
    return tensors


def add_batch_dim(tensors: list[torch.Tensor], connection: int) -> list[torch.Tensor]:
    """A 3-D connection input is one sample: give every input a batch dimension of one."""
    x = tensors[connection]
    if x.dim() == 3:
        return [t.unsqueeze(0) for t in tensors]
    if x.dim() == 4:
        return tensors
    raise ValueError(
        f"inputs: input {connection} (the connection) has shape {tuple(x.shape)}; the heatmap "
        f"needs an image, (C,H,W) for one sample or (N,C,H,W) for a batch"
    )


def check_connection(connection: object, n_inputs: int) -> int:
    if isinstance(connection, bool) or not isinstance(connection, (int, np.integer)):
        raise TypeError(f"connection: expected an int input index, got {connection!r}")
    if not 0 <= connection < n_inputs:
        raise ValueError(
            f"connection: {connection} is out of range; the model takes {n_inputs} input(s), "
            f"allowed: 0..{n_inputs - 1}"
        )
    return int(connection)


def check_algorithm(algorithm: object, allowed: Sequence[str]) -> str:
    if not isinstance(algorithm, str) or algorithm not in allowed:
        raise ValueError(f"algorithm: {algorithm!r} is unknown; allowed: {list(allowed)}")
    return algorithm


def describe_inputs(tensors: list[torch.Tensor]) -> str:
    return ", ".join(
        f"input {i}: {tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
        for i, t in enumerate(tensors)
    )


def _describe(x: object) -> str:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return f"{type(x).__name__} of shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}"[:200]
