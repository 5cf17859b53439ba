"""The cascading model-parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency
Maps", NeurIPS 2018): ``CamEngine.sanity_check``.

A map that explains the model must change when the model's weights do. On a *copy* of the model
(``copy.deepcopy``, or ``model_factory()``), the parameterised stages are re-initialised one
at a time from the output back towards the input, cumulatively, and after each stage the map
of the same layer is compared with the original one by Spearman's rank correlation. A map that
stays highly correlated while the weights it claims to explain are random is explaining the
input (its edges), not the model. The copy lives on the model's device beside it (twice the
model's memory there while the check runs); the model itself is only read, under its lock.

Stages. By default: the children of the model, in the reverse order of their first calls in a
forward (children that are never called, or have no parameters, are skipped). Where the model
has a single parameterised child (a wrapper around a ``Sequential``), its children are taken
instead, and so on down. Parameters that sit on that module itself and in none of its children
(a ViT's class token) are one more stage, the last, named by the module (the model's class
name for the model itself). ``stages=["fc", "layer4", ...]``: module names of
``model.named_modules()``, re-initialised in the order given (list them from the output
towards the input for the cascading test).

Re-initialising a module: every submodule with a ``reset_parameters()`` (convolutions, linear
layers, norms: these also reset their running statistics) calls it; any other parameter is
drawn from ``N(0, 0.02^2)``. The draws are seeded (``seed``) inside a forked RNG, so the
global random state is left as it was.

The map compared is the raw map of the layer (``CamResult.raw``, at its own resolution), for
the same target: where the target is the predicted class, the class predicted by the original
model stays the class explained. Spearman's rho is computed per sample (ranks, ties averaged)
and averaged over the samples of a batch; two equal maps give 1, and otherwise a constant map
(no ranking: a ReLU that zeroes it) gives 0.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from samplelens_widget.cam import inputs as checks
from samplelens_widget.cam.capture import eval_mode, model_lock
from samplelens_widget.cam.errors import model_raised
from samplelens_widget.cam.result import CamResult
from samplelens_widget.cam.targets import Class, Contrast, Target

if TYPE_CHECKING:
    from samplelens_widget.cam.cam_engine import CamEngine

__all__ = ["cascade", "default_stages", "rank_average", "reinitialise", "sanity_check", "spearman"]

Progress = Callable[[int, int], object]


def rank_average(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``a`` (1-D), ties given the mean of the ranks they span."""
    a = np.asarray(a).ravel()
    order = np.argsort(a, kind="mergesort")
    inverse = np.empty(len(a), dtype=np.int64)
    inverse[order] = np.arange(len(a))
    s = a[order]
    starts = np.concatenate([[True], s[1:] != s[:-1]])
    group = np.cumsum(starts) - 1  # group of each sorted value
    bounds = np.concatenate([np.flatnonzero(starts), [len(a)]])
    mean_rank = (bounds[:-1] + bounds[1:] + 1) / 2.0  # (first + last) / 2, 1-based
    out: np.ndarray = mean_rank[group][inverse]
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (flattened): the Pearson correlation of their
    ranks, ties averaged. Equal maps give 1; otherwise a constant one gives 0."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"b: shape {b.shape} does not match a's {a.shape}")
    if np.array_equal(a, b):
        return 1.0
    ra, rb = rank_average(a), rank_average(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return 0.0 if den == 0 else float((ra * rb).sum() / den)


# ---------------------------------------------------------------------------------- the copy
def make_copy(model: nn.Module, model_factory: Callable[[], nn.Module] | None) -> nn.Module:
    """A copy of ``model`` to re-initialise: ``copy.deepcopy`` under the model's lock (no other
    pass's hooks are on it meanwhile), or ``model_factory()``, checked to share no storage."""
    with model_lock(model):
        if model_factory is None:
            try:
                twin = copy.deepcopy(model)
            except Exception as err:
                raise TypeError(
                    f"model: it cannot be deep-copied ({type(err).__name__}: {err}); the sanity "
                    f"check re-initialises a copy of the model, never the model itself. Pass "
                    f"model_factory=, a callable returning a fresh copy with the same weights, "
                    f"e.g. def fresh(): m = MyNet(); m.load_state_dict(model.state_dict()); "
                    f"return m"
                ) from err
        else:
            if not callable(model_factory):
                raise TypeError(
                    f"model_factory: expected a callable returning a copy of the model, got "
                    f"{type(model_factory).__name__}"
                )
            twin = model_factory()
            if not isinstance(twin, nn.Module):
                raise TypeError(
                    f"model_factory: returned {type(twin).__name__}; it must return a "
                    f"torch.nn.Module, a fresh copy of the model with the same weights"
                )
            if twin is model:
                raise ValueError(
                    "model_factory: returned the model itself; it must return a new copy (the "
                    "check re-initialises it)"
                )
            mine = {t.data_ptr() for t in (*model.parameters(), *model.buffers()) if t.numel()}
            shared = [name for name, t in (*twin.named_parameters(), *twin.named_buffers())
                      if t.numel() and t.data_ptr() in mine]
            if shared:
                raise ValueError(
                    f"model_factory: the model it returned shares storage with the model "
                    f"({', '.join(shared[:3])}{', ...' if len(shared) > 3 else ''}); "
                    f"re-initialising it would change yours. Return an independent copy, e.g. "
                    f"a new instance with load_state_dict(model.state_dict())"
                )
    return twin


# ---------------------------------------------------------------------------------- stages
def _call_order(model: nn.Module, batch: list[torch.Tensor]) -> list[str]:
    """The names of the model's modules in the order of their first calls in a forward."""
    order: dict[str, None] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m: nn.Module, _args: object, name: str = name) -> None:
            order.setdefault(name)

        handles.append(module.register_forward_pre_hook(hook))
    try:
        with eval_mode(model), torch.no_grad():
            try:
                model(*batch)
            except torch.OutOfMemoryError:
                raise
            except Exception as err:
                raise model_raised(err, batch) from err
    finally:
        for h in handles:
            h.remove()
    return list(order)


def _has_params(module: nn.Module) -> bool:
    return next(iter(module.parameters()), None) is not None


def _own_params(module: nn.Module) -> bool:
    return next(iter(module.parameters(recurse=False)), None) is not None


def default_stages(model: nn.Module, batch: list[torch.Tensor]) -> list[tuple[str, nn.Module,
                                                                              bool]]:
    """The stages of the cascade, output first: ``(name, module, recurse)``; ``recurse`` False
    for the own parameters of the module whose children are the stages (see the module's
    docstring)."""
    called = _call_order(model, batch)
    rank = {name: i for i, name in enumerate(called)}
    root, prefix = model, ""

    def children(module: nn.Module) -> list[tuple[str, nn.Module]]:
        kids = [(f"{prefix}{n}", c) for n, c in module.named_children()
                if _has_params(c) and f"{prefix}{n}" in rank]
        return sorted(kids, key=lambda kid: rank[kid[0]])

    kids = children(root)
    while len(kids) == 1 and not _own_params(root):
        name, root = kids[0]
        prefix = f"{name}."
        kids = children(root)
    stages: list[tuple[str, nn.Module, bool]] = [(n, c, True) for n, c in reversed(kids)]
    if _own_params(root):
        stages.append((prefix[:-1] or type(model).__name__, root, False))
    return stages


def named_stages(model: nn.Module, names: object) -> list[tuple[str, nn.Module, bool]]:
    """The user's ``stages=``: module names, in the order given."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(
            f"stages: expected a list of module names (model.named_modules()), got {names!r}"
        )
    if not names:
        raise ValueError("stages: an empty list; allowed: module names, or None (the children)")
    modules = dict(model.named_modules())
    out: list[tuple[str, nn.Module, bool]] = []
    for name in names:
        if not isinstance(name, str) or name not in modules or name == "":
            top = [n for n, _ in model.named_children()]
            raise ValueError(
                f"stages: {name!r} is not a module of the model; allowed: names of "
                f"model.named_modules(), e.g. its children {top[:12]}"
            )
        if not _has_params(modules[name]):
            raise ValueError(f"stages: {name!r} has no parameters to re-initialise")
        out.append((name, modules[name], True))
    return out


def reinitialise(module: nn.Module, recurse: bool = True) -> None:
    """Re-initialise ``module``'s parameters in place: ``reset_parameters()`` where a submodule
    has one, ``N(0, 0.02^2)`` for the others (``recurse=False``: its own parameters only)."""
    subs = list(module.modules()) if recurse else [module]
    done: set[int] = set()
    with torch.no_grad():
        for sub in subs:
            reset = getattr(sub, "reset_parameters", None)
            if recurse and callable(reset):
                reset()
                done.update(id(p) for p in sub.parameters(recurse=False))
        for sub in subs:
            for p in sub.parameters(recurse=False):
                if id(p) not in done:
                    p.normal_(0.0, 0.02)
                    done.add(id(p))


def _fixed_target(goal: Target | None, res: CamResult) -> Target | None:
    """The target with the original model's predicted classes written in."""
    if isinstance(goal, Class) and goal.label is None:
        return Class(res.targets.tolist(), goal.argname)
    if isinstance(goal, Contrast) and goal.a is None:
        return Contrast(res.targets.tolist(), goal.b)
    return goal


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([spearman(a[i], b[i]) for i in range(len(a))]))


def _raw_or_zero(res: CamResult, name: str, like: np.ndarray) -> np.ndarray:
    try:
        return res.raw(name)
    except ValueError:  # the layer is no longer reached: its map is zero
        return np.zeros_like(like)


# ---------------------------------------------------------------------------------- the test
def sanity_check(
    engine: CamEngine,
    inputs: Any,
    target: Any = None,
    algorithm: str = "gradcam",
    connection: int = 0,
    depth: int | None = None,
    stages: Sequence[str] | None = None,
    progress: Progress | None = None,
    *,
    model_factory: Callable[[], nn.Module] | None = None,
    seed: int = 0,
) -> list[tuple[str, float]]:
    """``CamEngine.sanity_check``: see there and the module's docstring."""
    out = cascade(engine, inputs, target, algorithm, connection, depth, stages, progress,
                  model_factory=model_factory, seed=seed)
    return [(name, next(iter(rhos.values()))) for name, rhos in out]


def cascade(
    engine: CamEngine,
    inputs: Any,
    target: Any = None,
    algorithm: str = "gradcam",
    connection: int = 0,
    depth: int | None = None,
    stages: Sequence[str] | None = None,
    progress: Progress | None = None,
    *,
    model_factory: Callable[[], nn.Module] | None = None,
    seed: int = 0,
    every_depth: bool = False,
) -> list[tuple[str, dict[int, float]]]:
    """The cascade: ``[(stage, {depth: rho}), ...]`` for ``depth`` (``None``: the deepest),
    or for every depth of the model with ``every_depth=True`` (one cascade serves them all)."""
    from samplelens_widget.cam.cam_engine import CamEngine

    if progress is not None and not callable(progress):
        raise TypeError(f"progress: expected a callable (done, total) or None, got {progress!r}")
    tensors = checks.to_tensors(inputs, engine.model, stacklevel=5)
    connection = checks.check_connection(connection, len(tensors))
    original = engine.explain(tensors, target, algorithm, connection)
    depths = original.depths if every_depth else [original.layer_at(depth).depth]
    layer_names = {d: original.layer_at(d).name for d in depths}
    ref = {d: original.raw(name) for d, name in layer_names.items()}
    goal = _fixed_target(original.target, original)
    twin = make_copy(engine.model, model_factory)
    batch = [t.detach().to(engine.device) for t in checks.add_batch_dim(tensors, connection)]
    plan = default_stages(twin, batch) if stages is None else named_stages(twin, stages)
    other = CamEngine(twin, device=engine._device, layout=engine.layout, task=engine.task)
    if model_factory is not None:
        same = other.explain(tensors, goal, algorithm, connection)
        for d, name in layer_names.items():
            got = _raw_or_zero(same, name, ref[d])
            scale = float(np.abs(ref[d]).max()) or 1.0
            if not np.allclose(got, ref[d], rtol=1e-3, atol=1e-4 * scale):
                raise ValueError(
                    f"model_factory: the model it returned gives another map at {name!r} "
                    f"(rho {_rho(ref[d], got):.3f}) before any re-initialisation; it must "
                    f"return a copy with the same weights (and buffers)"
                )
    cuda = sorted({p.device.index or 0 for p in twin.parameters() if p.device.type == "cuda"})
    out: list[tuple[str, dict[int, float]]] = []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        for done, (name, module, recurse) in enumerate(plan, start=1):
            reinitialise(module, recurse)
            res = other.explain(tensors, goal, algorithm, connection)
            out.append((name, {d: _rho(ref[d], _raw_or_zero(res, n, ref[d]))
                               for d, n in layer_names.items()}))
            if progress is not None:
                progress(done, len(plan))
    return out
