"""Hooks and the model guard: what runs around the one forward pass.

Everything here is a context manager, so hooks are removed and the model's mode restored on
every path, errors included.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Capture:
    """The output of one call of a leaf module, as the hook saw it."""

    name: str  # module path, ``path#k`` for the k-th call
    tensor: torch.Tensor
    node: object  # tensor.grad_fn when captured (None for a leaf tensor)
    version: int  # tensor._version when captured: a later in-place change is detected


def is_spatial(t: object) -> bool:
    """A spatial map: a 4-D floating tensor (N, C, h, w) with more than one position."""
    return (
        isinstance(t, torch.Tensor)
        and t.dim() == 4
        and t.is_floating_point()
        and t.shape[2] * t.shape[3] > 1
    )


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules without children, with their paths (the model itself if it has none)."""
    return [
        (name or type(model).__name__, m)
        for name, m in model.named_modules()
        if next(m.children(), None) is None
    ]


_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The one lock of ``model`` that every analysis and feature pass of this package holds."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Hold the model's lock and put every module in eval mode; afterwards restore each
    module's own flag, unless something else has switched it back to training meanwhile.

    The lock makes the package's own passes over one model (the widget's worker threads, the
    population's feature pass, a call from the notebook) take turns, so that none of them sees
    another's hooks or restores another's mode."""
    with model_lock(model):
        flags = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            yield
        finally:
            for m, flag in flags:
                if not m.training:  # still as we left it
                    m.training = flag


@contextmanager
def capture_outputs(model: nn.Module, clone: set[str]) -> Iterator[list[Capture]]:
    """Record every spatial output of every leaf-module call during the forward pass.

    A module called more than once gives ``path``, ``path#2``, ... . Outputs named in ``clone``
    are handed on to the rest of the model as a copy, so that a later in-place operation
    (``nn.ReLU(inplace=True)``, ``out += identity``) changes the copy, not the captured map.
    """
    captures: list[Capture] = []
    calls: dict[str, int] = {}
    owner = threading.get_ident()

    def make_hook(path: str):
        def hook(module, args, output):
            if threading.get_ident() != owner:  # someone else's forward: not ours to record
                return None
            n = calls[path] = calls.get(path, 0) + 1
            name = path if n == 1 else f"{path}#{n}"
            if not is_spatial(output) or not output.requires_grad:
                return None
            captures.append(Capture(name, output, output.grad_fn, output._version))
            return output.clone() if name in clone else None

        return hook

    handles = [m.register_forward_hook(make_hook(path)) for path, m in leaf_modules(model)]
    try:
        yield captures
    finally:
        for h in handles:
            h.remove()
