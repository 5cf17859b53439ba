"""Hooks and the model guard: what runs around the one forward pass.

Everything here is a context manager, so hooks are removed and the model's mode restored on
every path, errors included.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Capture:
    """The output of one module call, as the hook saw it.

    ``key`` is the name it was first recorded under (``path``, ``path#k`` for the k-th call);
    ``name`` the name it goes by: the outermost module whose output it is (``layer4`` rather
    than ``layer4.1`` or ``layer4.1.relu#2``, the very same tensor); ``aliases`` the others."""

    key: str
    tensor: torch.Tensor
    node: object  # tensor.grad_fn when captured (None for a leaf tensor)
    version: int  # tensor._version when captured: a later in-place change is detected
    module: nn.Module
    name: str = ""
    aliases: list[str] = field(default_factory=list)
    # a pure permute or reshape of capture ``view_of``; ``outer``: made by a module whose call
    # encloses that capture (then its name wins where the two are one layer)
    view_of: Capture | None = None
    outer: bool = False
    # (module, its input, the input's version): a norm whose output a later in-place operation
    # rewrites is recomputed from its unchanged input when its gradient arrives, instead of
    # being kept as a copy (``tensor`` then holds the rewritten values: not to be read)
    recompute: tuple[nn.Module, torch.Tensor, int] | None = None
    can_recompute: bool = False

    def activation(self) -> torch.Tensor:
        """The output's values as the module made them."""
        if self.recompute is None:
            return self.tensor.detach()
        module, arg, _ = self.recompute
        with torch.no_grad():
            out: torch.Tensor = module.forward(arg.detach())  # forward: no one's hooks run
        return out

    def __post_init__(self) -> None:
        self.name = self.name or self.key


@dataclass
class Seen:
    """A floating output that is no layer candidate (wrong rank or batch): kept for errors."""

    name: str
    shape: tuple[int, ...]


def is_candidate(t: object) -> bool:
    """A floating tensor of 3 or 4 dimensions that depends on an input through autograd."""
    return (
        isinstance(t, torch.Tensor)
        and t.dim() in (3, 4)
        and t.is_floating_point()
        and t.requires_grad
    )


def first_tensor(output: object) -> torch.Tensor | None:
    """The tensor a module returned: itself, the first item of a tuple or list, or the first
    value of a mapping (transformers' output objects)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, Mapping) and output:
        first = next(iter(output.values()))
        return first if isinstance(first, torch.Tensor) else None
    return None


def _replace_first(output: object, tensor: torch.Tensor) -> object | None:
    """``output`` with its first tensor replaced, or None where that cannot be done."""
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, tuple) and not hasattr(output, "_fields"):
        return (tensor, *output[1:])
    if isinstance(output, list):
        return [tensor, *output[1:]]
    return None


# autograd nodes that only view their input: a permuted or reshaped layer is the same layer
_VIEW_NODES = frozenset(
    {"PermuteBackward0", "ViewBackward0", "TransposeBackward0", "UnsafeViewBackward0",
     "ReshapeAliasBackward0", "AliasBackward0", "TBackward0"}
)


def _viewed(
    node: object, numel: int, by_node: dict[object, int], captures: list[Capture]
) -> int | None:
    """The capture a chain of view nodes leads to from ``node``, if it has as many elements."""
    for _ in range(4):
        if node is None or type(node).__name__ not in _VIEW_NODES:
            return None
        children = [c for c, _ in getattr(node, "next_functions", ()) if c is not None]
        if len(children) != 1:
            return None
        node = children[0]
        j = by_node.get(node)
        if j is not None:
            return j if captures[j].tensor.numel() == numel else None
    return None


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


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters are (its buffers' device without parameters; else CPU)."""
    first: torch.Tensor | None = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def all_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every module with its path, the model itself (named by its class) included."""
    return [(name or type(model).__name__, m) for name, m in model.named_modules()]


@dataclass
class Captured:
    """What one forward recorded: the candidates in the order their values were computed, and
    the floating outputs that were not candidates."""

    captures: list[Capture] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)


# norms: a pure function of their one input in eval mode, cheap to run again
RECOMPUTABLE: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def recomputable(module: nn.Module, args: tuple[object, ...]) -> bool:
    return (
        isinstance(module, RECOMPUTABLE)
        and len(args) == 1
        and isinstance(args[0], torch.Tensor)
    )


@contextmanager
def capture_outputs(
    model: nn.Module, clone: set[str], batch: int, recompute: frozenset[str] = frozenset()
) -> Iterator[Captured]:
    """Record the output of every module call during the forward pass: leaves and blocks.

    A module called more than once gives ``path``, ``path#2``, ... . A module whose output is
    the very tensor of an earlier capture (a block returning its last layer's output, an
    ``nn.Identity``) adds a name to that capture rather than a new one; the outermost block's
    name wins. A pure permute or reshape of an earlier capture is recorded with ``view_of``:
    whether it is the same layer shows only once both layouts are known. Outputs whose key is
    in ``recompute`` (norms) keep a reference to their input to be run again in the backward;
    outputs whose key is in ``clone`` are handed on to the rest of the model as a copy, so that
    a later in-place operation
    (``nn.ReLU(inplace=True)``, ``out += identity``) changes the copy, not the captured map.
    """
    rec = Captured()
    captures = rec.captures
    calls: dict[str, int] = {}
    by_tensor: dict[int, tuple[int, int]] = {}  # id -> (capture index, version handed on)
    by_node: dict[object, int] = {}
    starts: dict[int, list[int]] = {}
    keep: list[torch.Tensor] = []  # the copies handed on: their ids must stay unique
    owner = threading.get_ident()

    def pre_hook(module: nn.Module, args: tuple[object, ...]) -> None:
        if threading.get_ident() == owner:
            starts.setdefault(id(module), []).append(len(captures))

    def make_hook(path: str, is_root: bool) -> Callable[..., object]:
        def hook(module: nn.Module, args: tuple[object, ...], output: object) -> object:
            if threading.get_ident() != owner:  # someone else's forward: not ours to record
                return None
            begin = starts[id(module)].pop() if starts.get(id(module)) else len(captures)
            n = calls[path] = calls.get(path, 0) + 1
            name = path if n == 1 else f"{path}#{n}"
            t = first_tensor(output)
            if is_root or not is_candidate(t):
                return None
            assert t is not None
            if t.shape[0] != batch:
                rec.seen.append(Seen(name, tuple(t.shape)))
                return None
            known = by_tensor.get(id(t))
            j = known[0] if known is not None and known[1] == t._version else None
            if j is not None:  # the very tensor of an earlier capture: one layer, more names
                cap = captures[j]
                if j >= begin:  # computed inside this call: this block's name wins
                    cap.aliases.insert(0, cap.name)
                    cap.name = name
                else:
                    cap.aliases.append(name)
                return None
            index = len(captures)
            cap = Capture(name, t, t.grad_fn, t._version, module)
            viewed = _viewed(t.grad_fn, t.numel(), by_node, captures)
            if viewed is not None:
                cap.view_of, cap.outer = captures[viewed], viewed >= begin
            captures.append(cap)
            by_tensor[id(t)] = (index, t._version)
            if t.grad_fn is not None:
                by_node.setdefault(t.grad_fn, index)
            cap.can_recompute = recomputable(module, args)
            arg = args[0] if args else None
            if name in recompute and cap.can_recompute and isinstance(arg, torch.Tensor):
                cap.recompute = (module, arg, arg._version)
            elif name in clone:
                copy = t.clone()
                replaced = _replace_first(output, copy)
                if replaced is not None:
                    keep.append(copy)
                    by_tensor[id(copy)] = (index, copy._version)
                    return replaced
            return None

        return hook

    modules = all_modules(model)
    handles = [m.register_forward_pre_hook(pre_hook) for _, m in modules]
    handles += [m.register_forward_hook(make_hook(path, m is model)) for path, m in modules]
    try:
        yield rec
    finally:
        for h in handles:
            h.remove()
