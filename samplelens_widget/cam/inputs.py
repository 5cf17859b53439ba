"""Checking and shaping what the caller passes: inputs, labels, algorithm, connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def targets_for(label: object, logits: torch.Tensor) -> torch.Tensor:
    """The class to explain per sample: ``label`` (int or one per sample) or the prediction."""
    n, k = logits.shape
    if label is None:
        return logits.argmax(dim=1)
    if isinstance(label, torch.Tensor):
        label = label.tolist()
    elif isinstance(label, np.ndarray):
        label = label.tolist()
    labels = [label] * n if not isinstance(label, (list, tuple)) else list(label)
    if len(labels) != n:
        raise ValueError(
            f"label: got {len(labels)} labels for a batch of {n} samples; give one int, one per "
            f"sample, or None"
        )
    for lab in labels:
        if isinstance(lab, bool) or not isinstance(lab, (int, np.integer)):
            raise TypeError(f"label: expected an int class index or None, got {lab!r}")
        if not 0 <= lab < k:
            raise ValueError(
                f"label: {lab} is out of range; the model has {k} classes, allowed: 0..{k - 1} "
                f"or None (the predicted class)"
            )
    return torch.as_tensor(labels, dtype=torch.long, device=logits.device)


def logits_of(output: object) -> torch.Tensor:
    """The (N, K) logits from what the model returned: a tensor, a tuple or list whose first
    item is one, a mapping (its ``"logits"`` entry, else its first value), or an object with
    ``.logits``; nested ones unwrap in turn."""
    for _ in range(3):  # nested, as in a tuple of a dict
        if isinstance(output, (tuple, list)) and output:
            output = output[0]
        elif isinstance(output, Mapping) and output:
            output = output.get("logits", next(iter(output.values())))
        elif not isinstance(output, torch.Tensor) and hasattr(output, "logits"):
            output = output.logits
        else:
            break
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        raise ValueError(
            f"model: its output is {_describe(output)}; the engine needs logits of shape "
            f"(N, num_classes)"
        )
    return output


def describe_inputs(tensors: list[torch.Tensor]) -> str:
    return ", ".join(
        f"input {i}: {tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
        for i, t in enumerate(tensors)
    )


def _describe(x: object) -> str:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return f"{type(x).__name__} of shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}"[:200]
