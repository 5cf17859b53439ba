"""Deletion and insertion: does the model's confidence follow the map? (``CamEngine.faithfulness``)

For each depth, the pixels are ranked by ``CamResult.heatmap(depth)`` at the input's resolution,
most salient first (ties by position: a stable sort; a constant map ranks in reading order).
*Deletion* starts from the input and replaces the ``k`` most salient pixels by the baseline,
*insertion* starts from the baseline image and puts them back, for ``k = round(i * H * W /
steps)``, ``i = 0 .. steps`` (half up); all channels of a pixel change together. Each curve is
the measure below on those ``steps + 1`` images, and its area is the trapezoid rule over the
fraction of pixels changed (0 .. 1). A faithful map has a low deletion area (the confidence
falls as soon as its pixels go) and a high insertion area; ``insertion - deletion`` is the
score.

What is measured, by target (the map shows what raises the target's score, so each measure
rises with it; ``Faithfulness.measure`` says which one was used):

=====================  ==============================================================
target                 measure
=====================  ==============================================================
a class (``None``:     its probability as ``outputs.py`` defines it for the task:
the prediction on the  softmax (multi-class), sigmoid (multi-label; binary: ``[1 - p,
unperturbed input,     p]``), the per-pixel softmax averaged over the pixels
fixed for every step)  (segmentation); a regression has none: the output's own value
``Contrast(a, b)``     ``sigmoid(score a - score b)``: ``p(a) / (p(a) + p(b))`` for a
                       softmax
``Loss(labels)``       multi-class / binary with class labels and the default loss:
                       ``1 - p(true label)``, the probability of a mistake (the cross
                       entropy rises with it); otherwise the loss itself
``Region``, callables  the target's own score (not a probability); a callable is
                       called on batches of perturbed images, so it must score each
                       row of the output on its own
=====================  ==============================================================

Two model-free maps give the numbers to beat: ``random`` (a uniformly random ranking, the
mean over ``draws`` seeded draws) and ``edges`` (the Sobel gradient magnitude of the input,
each channel's magnitude summed over the channels, replicate padding).

Speed: every perturbed image of every depth goes through the model in batches of
``batch_size`` (``None``: 32 on a CPU, where batches that stay in the cache run fastest, 256 on
an accelerator) on its device under ``torch.no_grad`` and in eval mode (restored after). The
unperturbed and fully-perturbed images are run once per sample and shared by all curves,
maps that rank a sample's pixels in the same order (aliases, constant maps, a Focus Layer CAM
at the deepest depth) are run once, and so is each step's pair of images (deletion, insertion)
where several maps change the same pixels at that pixel count (neighbouring depths often agree
on their top pixels: a third to a half of a ResNet-18's images are shared so).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from samplelens_widget.cam import inputs as checks
from samplelens_widget.cam.capture import eval_mode
from samplelens_widget.cam.errors import model_raised
from samplelens_widget.cam.outputs import Output, read_output
from samplelens_widget.cam.result import CamResult
from samplelens_widget.cam.targets import Class, Contrast, Loss, Region, Score, Target, _ints

if TYPE_CHECKING:
    from samplelens_widget.cam.cam_engine import CamEngine

__all__ = [
    "Faithfulness",
    "edge_map",
    "faithfulness",
    "partial_faithfulness",
    "perturbation_counts",
    "pixel_ranks",
]

Meter = Callable[[Output, torch.Tensor], torch.Tensor]

_PROBABILITY = {
    "multiclass": "softmax probability of the explained class",
    "multilabel": "sigmoid probability of the explained label",
    "binary": "sigmoid probability of the explained class (1 - p for class 0)",
    "segmentation": "the explained class's per-pixel softmax probability, averaged over the "
                    "pixels",
}


@dataclass
class Faithfulness:
    """Deletion and insertion areas of every depth asked for, and of two model-free maps.

    Attributes:
        depths: the depths, in the order asked for; ``layers`` the layer that stands for each
            (``CamResult.layer_at``).
        deletion, insertion: the areas under the curves (lower / higher is better): ``(D,)``
            for one sample (a ``(C, H, W)`` input), ``(N, D)`` for a batch.
        baselines: ``{"random": {"deletion": a, "insertion": a}, "edges": {...}}``, ``a`` a
            0-d array for one sample, ``(N,)`` for a batch.
        curves: ``{"deletion": c, "insertion": c}``, the measure at each step: ``(D, steps +
            1)`` or ``(N, D, steps + 1)``; ``fractions`` ``(steps + 1,)`` the share of pixels
            changed at each step (the curves' x axis).
        measure: what the curves are (see the module's table); ``algorithm``, ``steps``: what
            was asked for; ``images``: how many images went through the model (the cost).
    """

    depths: list[int]
    layers: list[str]
    deletion: np.ndarray
    insertion: np.ndarray
    baselines: dict[str, dict[str, np.ndarray]]
    curves: dict[str, np.ndarray]
    fractions: np.ndarray
    measure: str
    algorithm: str
    steps: int
    images: int = 0

    @property
    def score(self) -> np.ndarray:
        """``insertion - deletion``, as ``deletion``'s shape: higher is more faithful."""
        out: np.ndarray = self.insertion - self.deletion
        return out

    def baseline_score(self, name: str) -> np.ndarray:
        """``insertion - deletion`` of baseline ``name`` (``"random"`` or ``"edges"``)."""
        if name not in self.baselines:
            raise ValueError(f"name: {name!r} is unknown; allowed: {sorted(self.baselines)}")
        b = self.baselines[name]
        out: np.ndarray = b["insertion"] - b["deletion"]
        return out

    def beating(self) -> list[int]:
        """The depths whose score (the mean over the samples for a batch) is above both
        baselines' scores."""
        score = self._mean(self.score)
        bar = max(float(self._mean(self.baseline_score(k))) for k in self.baselines)
        return [d for d, s in zip(self.depths, score, strict=True) if s > bar]

    def summary(self) -> str:
        """One line: which depths beat both baselines on insertion - deletion."""
        score = self._mean(self.score)
        rand, edges = (float(self._mean(self.baseline_score(k))) for k in ("random", "edges"))
        n = self.deletion.shape[0] if self.deletion.ndim == 2 else 1
        of = f" (mean of {n} samples)" if self.deletion.ndim == 2 else ""
        wins = self.beating()
        best = int(np.argmax(score))
        where = f"{len(wins)} of {len(self.depths)} depths: {_spans(wins)}" if wins else (
            f"none of the {len(self.depths)} depths")
        return (
            f"{self.algorithm}, insertion - deletion{of}: beats both baselines (random "
            f"{rand:.3f}, edges {edges:.3f}) at {where}; best depth {self.depths[best]} "
            f"({score[best]:.3f})"
        )

    def _mean(self, a: np.ndarray) -> np.ndarray:
        out: np.ndarray = a.mean(axis=0) if self.deletion.ndim == 2 else np.asarray(a)
        return out


def _spans(depths: list[int]) -> str:
    """``[3, 7, 8, 9, 21]`` -> ``"3, 7-9, 21"`` (runs in the sorted depths)."""
    parts: list[str] = []
    ordered = sorted(depths)
    start = prev = ordered[0]
    for d in [*ordered[1:], None]:
        if d is not None and d == prev + 1:
            prev = d
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if d is not None:
            start = prev = d
    return ", ".join(parts)


# ---------------------------------------------------------------------------------- checks
def check_steps(steps: object, pixels: int, size: tuple[int, int]) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps: expected an int, got {steps!r}")
    if not 2 <= steps <= pixels:
        raise ValueError(
            f"steps: {steps} is out of range; allowed: 2..{pixels} (at most one step per pixel "
            f"of the input's {size[0]}x{size[1]})"
        )
    return int(steps)


def check_depths(depths: object, allowed: list[int]) -> list[int]:
    """``None`` (all), one depth or several, as a list without repeats."""
    span = f"{allowed[0]}..{allowed[-1]}" if allowed == list(
        range(allowed[0], allowed[-1] + 1)) else str(allowed)
    if depths is None:
        return list(allowed)
    items = list(depths) if isinstance(depths, Iterable) else [depths]
    if not items:
        raise ValueError(f"depths: an empty list; allowed: depths in {span}, or None (all)")
    out: list[int] = []
    for d in items:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"depths: expected ints or None (all), got {d!r}")
        if int(d) not in allowed:
            raise ValueError(
                f"depths: {d} is not a depth of this model; its depths are {span}, or None (all)"
            )
        if int(d) not in out:
            out.append(int(d))
    return out


def check_baseline(baseline: object, x: torch.Tensor) -> torch.Tensor:
    """The image a removed pixel takes, ``(N, C, H, W)`` like ``x``: ``None`` (each channel's
    mean over the sample), a number, ``(C,)``, ``(C, H, W)`` or ``(N, C, H, W)``."""
    n, c, h, w = (int(s) for s in x.shape)
    if baseline is None:
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if isinstance(baseline, bool) or not isinstance(
        baseline, (int, float, np.integer, np.floating, np.ndarray, torch.Tensor)
    ):
        raise TypeError(
            f"baseline: expected None (each channel's mean over the sample), a number or a "
            f"tensor, got {type(baseline).__name__} {baseline!r}"[:300]
        )
    arr = baseline if isinstance(baseline, torch.Tensor) else torch.as_tensor(np.asarray(baseline))
    b = arr.detach().to(x.device, x.dtype)
    shape = tuple(int(s) for s in b.shape)
    if shape == ():
        b = b.reshape(1, 1, 1, 1)
    elif shape == (c,):
        b = b.reshape(1, c, 1, 1)
    elif shape == (c, h, w):
        b = b[None]
    elif shape != (n, c, h, w):
        raise ValueError(
            f"baseline: shape {shape} is not allowed; allowed: a number, (C,) = ({c},), "
            f"(C, H, W) = {(c, h, w)} or (N, C, H, W) = {(n, c, h, w)}"
        )
    if not bool(torch.isfinite(b).all()):
        raise ValueError("baseline: has NaN or infinite values; allowed: finite values")
    return b.expand(n, c, h, w)


#: images per model call when ``batch_size=None``: on a CPU small batches that stay in the cache
#: run fastest (the demo model: ~750 images/s at 16-32, ~350 at 128, 2 cores); on an
#: accelerator, large ones
CPU_BATCH, DEVICE_BATCH = 32, 256
#: the same on a CPU in bfloat16 (channels-last ResNet-18 at 224, 2 cores: ~96 images/s at 16,
#: ~85 at 32, ~73 at 64)
CPU_BATCH_BF16 = 16


#: what ``precision=`` allows: the perturbed images' forward in the model's own float32, or
#: under ``torch.autocast`` in bfloat16 (about 3x faster on CPUs with AMX / AVX-512 BF16 and on
#: recent GPUs; the scores move by about 1e-3, see the README)
PRECISIONS = ("float32", "bfloat16")


def check_precision(precision: object) -> str:
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not allowed; allowed: {list(PRECISIONS)}")
    return precision


def check_batch_size(
    batch_size: object, device: torch.device, precision: str = "float32"
) -> int:
    if batch_size is None:
        if device.type != "cpu":
            return DEVICE_BATCH
        return CPU_BATCH_BF16 if precision == "bfloat16" else CPU_BATCH
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size: expected an int or None (by device), got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size: {batch_size} is out of range; allowed: 1 or more")
    return int(batch_size)


# ---------------------------------------------------------------------------------- maps
def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Each pixel's place in its map, ``(N, H*W)`` int32: 0 for the most salient; ties keep
    the reading order (stable sort)."""
    flat = maps.reshape(maps.shape[0], -1).float()
    order = torch.argsort(-flat, dim=1, stable=True)
    rank = torch.empty_like(order)
    places = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    rank.scatter_(1, order, places)
    return rank.int()


def edge_map(x: torch.Tensor) -> torch.Tensor:
    """The Sobel gradient magnitude of ``x`` ``(N, C, H, W)``: ``sqrt(gx^2 + gy^2)`` per
    channel (replicate padding), summed over the channels, ``(N, H, W)`` float32."""
    n, c, h, w = x.shape
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    kernels = torch.stack([kx, kx.T])[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3)
    padded = F.pad(x.detach().float(), (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(padded, kernels, groups=c).reshape(n, c, 2, h, w)
    return g.pow(2).sum(dim=2).sqrt().sum(dim=1)


def perturbation_counts(pixels: int, steps: int) -> list[int]:
    """Pixels changed at each step: ``round(i * pixels / steps)`` (half up), ``i = 0..steps``."""
    return [(2 * i * pixels + steps) // (2 * steps) for i in range(steps + 1)]


# ---------------------------------------------------------------------------------- measure
def meter_for(goal: Target, res: CamResult, n: int, device: torch.device) -> tuple[str, Meter]:
    """What the curves measure for target ``goal`` (the module's table) and how: ``fn(output,
    idx)`` gives the measure of each row of ``output``, row ``j`` a perturbed image of
    sample ``idx[j]``."""
    classes = torch.as_tensor(res.targets, dtype=torch.long, device=device)
    task = res.task

    def probability(out: Output, picked: torch.Tensor) -> torch.Tensor:
        p = out.probabilities()
        assert p is not None
        return p.gather(1, picked[:, None])[:, 0]

    if isinstance(goal, Class):
        if task == "regression":
            return ("the explained output's value (a regression has no probability)",
                    lambda out, idx: out.scores.float().gather(1, classes[idx, None])[:, 0])
        return _PROBABILITY[task], lambda out, idx: probability(out, classes[idx])
    if isinstance(goal, Contrast):
        b = torch.as_tensor(_ints(goal.b, n, "Contrast: b"), dtype=torch.long, device=device)

        def contrast(out: Output, idx: torch.Tensor) -> torch.Tensor:
            diff = out.class_scores(classes[idx]) - out.class_scores(b[idx])
            return torch.sigmoid(diff.float())

        return "sigmoid(score a - score b): p(a) / (p(a) + p(b)) for a softmax", contrast
    if isinstance(goal, Loss):
        if goal.loss_fn is None and task in ("multiclass", "binary") and bool(
            (classes >= 0).all()
        ):
            return ("1 - probability of the true label (the probability of a mistake)",
                    lambda out, idx: 1 - probability(out, classes[idx]))
        y = goal.labels
        labels = (y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))).to(device)
        if labels.dim() == 0:
            labels = labels[None].expand(n)
        return ("the loss itself (not a probability)",
                lambda out, idx: Loss(labels[idx], goal.loss_fn).scores(out).float())
    if isinstance(goal, Region):
        mask: Any = goal.mask
        if mask is not None:
            mask = (mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask)))
            mask = mask.to(device)

        def region(out: Output, idx: torch.Tensor) -> torch.Tensor:
            m = mask[idx] if mask is not None and mask.dim() == 3 else mask
            return Region(classes[idx], m).scores(out).float()

        return "the region's summed class score (the target's own score, not a probability)", (
            region)
    if isinstance(goal, Score):
        return ("the callable target's own score (not a probability)",
                lambda out, idx: Score(goal.fn).scores(out).float())

    def own(out: Output, idx: torch.Tensor) -> torch.Tensor:
        s = goal.scores(out)
        if tuple(s.shape) != (len(idx),):
            raise ValueError(
                f"target: {goal!r} scored a batch of {len(idx)} perturbed images as shape "
                f"{tuple(s.shape)}; faithfulness needs one score per row of the output"
            )
        return s.float()

    return f"the target's own score ({goal.title}; not a probability)", own


# ---------------------------------------------------------------------------------- the pass
def faithfulness(
    engine: CamEngine,
    inputs: Any,
    target: Any = None,
    algorithm: str = "gradcam",
    connection: int = 0,
    depths: int | Iterable[int] | None = None,
    steps: int = 20,
    baseline: Any = None,
    *,
    batch_size: int | None = None,
    draws: int = 3,
    seed: int = 0,
    precision: str = "float32",
) -> Faithfulness:
    """``CamEngine.faithfulness``: see there and the module's docstring."""
    return partial_faithfulness(
        engine, inputs, target, algorithm, connection, depths, steps, baseline,
        batch_size=batch_size, draws=draws, seed=seed, precision=precision, stacklevel=5,
    )


def partial_faithfulness(
    engine: CamEngine,
    inputs: Any,
    target: Any = None,
    algorithm: str = "gradcam",
    connection: int = 0,
    depths: int | Iterable[int] | None = None,
    steps: int = 20,
    baseline: Any = None,
    *,
    batch_size: int | None = None,
    draws: int = 3,
    seed: int = 0,
    baselines: bool = True,
    result: CamResult | None = None,
    draw_scores: bool = False,
    precision: str = "float32",
    stacklevel: int = 4,
) -> Faithfulness:
    """``faithfulness`` for some depths, with the baselines only when asked: the widget's Trust
    view computes a sample's depths a few at a time and its baselines once. The numbers of each
    depth (and of the baselines) are those ``faithfulness`` gives, whatever else is computed
    with them. ``depths=[]`` with ``baselines=True``: the baselines only; ``baselines=False``:
    ``Faithfulness.baselines`` is empty. ``result``: the ``CamResult`` of these inputs, target,
    algorithm and connection when the caller has it (not computed again). ``draw_scores``:
    ``baselines["random"]["draws"]`` holds each random draw's ``insertion - deletion``
    (``(draws,)``, ``(N, draws)`` for a batch), the spread the mean comes from."""
    tensors = checks.to_tensors(inputs, engine.model, stacklevel=stacklevel)
    connection = checks.check_connection(connection, len(tensors))
    single = tensors[connection].dim() == 3
    batch = checks.add_batch_dim(tensors, connection)
    checks.check_batch(batch, connection)
    x = batch[connection]
    n, _, h, w = (int(s) for s in x.shape)
    steps = check_steps(steps, h * w, (h, w))
    precision = check_precision(precision)
    batch_size = check_batch_size(batch_size, engine.device, precision)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws: {draws!r} is not allowed; allowed: an int, 1 or more")
    if not x.is_floating_point():
        raise ValueError(
            f"connection: input {connection} has dtype {x.dtype}; the heatmap's input must be "
            f"floating point"
        )
    dev = engine.device
    xs = x.detach().to(dev)
    base = check_baseline(baseline, xs)
    if result is None:
        res = engine.explain(tensors, target, algorithm, connection)  # checks the rest
    else:
        res = result
    empty = not isinstance(depths, int) and depths is not None and not list(depths)
    if empty and not baselines:
        raise ValueError("depths: an empty list and baselines=False: nothing to compute")
    chosen = [] if empty else check_depths(depths, res.depths)
    layers = [res.layer_at(d).name for d in chosen]
    assert res.target is not None
    measure, meter = meter_for(res.target, res, n, dev)

    # the maps: every depth, the random draws, the edges; ranked on the CPU
    maps = [torch.from_numpy(res.heatmap(d)) for d in chosen]
    if baselines:
        gen = torch.Generator().manual_seed(seed)
        maps += [torch.rand((n, h, w), generator=gen) for _ in range(draws)]
        maps.append(edge_map(xs).cpu())
    ranks = [pixel_ranks(m) for m in maps]
    # every map of every sample (maps that rank a sample alike share all their images there)
    rankings = [(i, row) for rank in ranks for i, row in enumerate(rank)]
    which = np.arange(len(rankings)).reshape(len(ranks), n)  # (maps, N) -> its ranking
    curves, images = _run_curves(engine, batch, connection, xs, base, rankings, steps, meter,
                                 batch_size, precision)
    counts = perturbation_counts(h * w, steps)
    fractions = np.asarray(counts, dtype=np.float64) / (h * w)
    per_map = curves[which]  # (maps, N, 2, steps + 1)
    areas = trapezoid(per_map, fractions)  # (maps, N, 2)
    d = len(chosen)

    def shaped(a: np.ndarray) -> np.ndarray:  # (N, ...) -> one sample without its axis
        out: np.ndarray = a[0] if single else a
        return out

    deletion = shaped(areas[:d, :, 0].T.copy())
    insertion = shaped(areas[:d, :, 1].T.copy())
    found: dict[str, dict[str, np.ndarray]] = {}
    if baselines:
        rand = areas[d:d + draws].mean(axis=0)
        edges = areas[d + draws]
        found = {
            "random": {"deletion": shaped(rand[:, 0]), "insertion": shaped(rand[:, 1])},
            "edges": {"deletion": shaped(edges[:, 0]), "insertion": shaped(edges[:, 1])},
        }
        if draw_scores:
            per_draw = areas[d:d + draws]  # (draws, N, 2)
            found["random"]["draws"] = shaped((per_draw[:, :, 1] - per_draw[:, :, 0]).T.copy())
    depth_curves = per_map[:d].transpose(1, 0, 2, 3)  # (N, D, 2, steps + 1)
    return Faithfulness(
        depths=chosen, layers=layers, deletion=deletion, insertion=insertion,
        baselines=found,
        curves={"deletion": shaped(depth_curves[:, :, 0].copy()),
                "insertion": shaped(depth_curves[:, :, 1].copy())},
        fractions=fractions, measure=measure, algorithm=res.algorithm, steps=steps,
        images=images,
    )


def trapezoid(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """The area under ``curves`` (``(..., steps + 1)``) over ``fractions``, trapezoid rule."""
    widths = np.diff(fractions)
    area: np.ndarray = ((curves[..., 1:] + curves[..., :-1]) * widths).sum(axis=-1) / 2
    return area


def _forward(
    model: torch.nn.Module, args: list[Any], connection: int, channels_last: bool
) -> tuple[Any, bool]:
    """One batch of perturbed images through the model, channels-last if asked, and whether to
    ask again: a model that refuses channels-last input (a ``.view`` of it, say) gets it
    contiguous, from then on. Its error on contiguous input is the caller's to report."""
    if channels_last:
        cl = list(args)
        cl[connection] = cl[connection].contiguous(memory_format=torch.channels_last)
        try:
            return model(*cl), True
        except torch.OutOfMemoryError:
            raise
        except Exception:  # tried once more, contiguous, below
            pass
    return model(*args), False


def _distinct_masks(
    ranks: torch.Tensor, owner: np.ndarray, counts: list[int], chunk: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct sets of changed pixels among the inner steps of the rankings ``ranks``
    (``(U, H*W)``, ranking ``u`` of sample ``owner[u]``): a step's two images (deletion,
    insertion) depend on its sample and on which pixels change only, so rankings whose top
    pixels agree at a step (two depths, or a depth and a baseline) share them. Returns each
    distinct set's ranking and pixel count (``(M,)`` each) and which set each ranking's inner
    step ``j`` (pixel count ``counts[j + 1]``) uses, ``(U, steps - 1)``."""
    u_count = ranks.shape[0]
    inner = counts[1:-1]
    slot = np.empty((u_count, len(inner)), dtype=np.int64)
    seen: dict[tuple[int, int, bytes], int] = {}
    mask_u: list[int] = []
    mask_c: list[int] = []
    for j, c in enumerate(inner):
        for start in range(0, u_count, chunk):
            packed = np.packbits((ranks[start:start + chunk] < c).cpu().numpy(), axis=1)
            for off, row in enumerate(packed):
                u = start + off
                key = (int(owner[u]), c, hashlib.blake2b(row.tobytes(), digest_size=16).digest())
                found = seen.get(key)
                if found is None:
                    found = seen[key] = len(mask_u)
                    mask_u.append(u)
                    mask_c.append(c)
                slot[u, j] = found
    return np.asarray(mask_u, dtype=np.int64), np.asarray(mask_c, dtype=np.int64), slot


def _run_curves(
    engine: CamEngine,
    batch: list[torch.Tensor],
    connection: int,
    x: torch.Tensor,
    base: torch.Tensor,
    rankings: list[tuple[int, torch.Tensor]],
    steps: int,
    meter: Meter,
    batch_size: int,
    precision: str = "float32",
) -> tuple[np.ndarray, int]:
    """The deletion and insertion curves of each ranking (``(sample, rank (H*W,))``),
    ``(U, 2, steps + 1)``
    float64 (``[:, 0]`` deletion, ``[:, 1]`` insertion), and how many images went through the
    model: each sample's input and baseline image once, then two per distinct set of changed
    pixels (``_distinct_masks``)."""
    n, _, h, w = x.shape
    dev = x.device
    u_count = len(rankings)
    owner = np.asarray([i for i, _ in rankings], dtype=np.int64)
    counts = perturbation_counts(h * w, steps)
    ranks = torch.stack([r for _, r in rankings]).to(dev)  # (U, H*W)
    mask_u, mask_c, slot = _distinct_masks(ranks, owner, counts)
    m_count = len(mask_u)
    # the jobs: each sample's input and baseline image once, then each distinct set's two
    # images; a job is (ranking, sample, pixels changed, insertion?)
    first = np.zeros(n, dtype=np.int64)
    first[owner[::-1]] = np.arange(u_count)[::-1]  # a ranking of each sample (any will do)
    job_u = np.concatenate([np.repeat(first, 2), np.repeat(mask_u, 2)])
    job_c = np.concatenate([np.zeros(2 * n, dtype=np.int64), np.repeat(mask_c, 2)])
    job_ins = np.concatenate([np.tile([0, 1], n), np.tile([0, 1], m_count)])
    job_i = owner[job_u]
    t_u, t_i, t_c, t_ins = (torch.as_tensor(a, device=dev) for a in (job_u, job_i, job_c,
                                                                      job_ins))
    others = [t.detach().to(dev) for t in batch]
    values = np.empty(len(job_u), dtype=np.float64)
    model = engine.model
    # bfloat16's convolutions run fastest on channels-last images (oneDNN on a CPU: ~90
    # images/s for a ResNet-18 at 224 on 2 cores, against ~40 contiguous and ~25 in float32)
    channels_last = precision == "bfloat16" and x.dim() == 4
    # one autocast for every batch: its cache keeps the weights' bfloat16 copies between them
    # (a context per batch cast the whole model again each time)
    fast = (torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bfloat16"
            else contextlib.nullcontext())
    with eval_mode(model), torch.no_grad(), fast:
        for start in range(0, len(job_u), batch_size):
            sl = slice(start, start + batch_size)
            idx = t_i[sl]
            changed = ranks[t_u[sl]] < t_c[sl][:, None]
            use_base = (changed ^ t_ins[sl].bool()[:, None]).reshape(-1, 1, h, w)
            images = torch.where(use_base, base[idx], x[idx])
            args = [images if j == connection else (t[idx] if t.dim() else t)
                    for j, t in enumerate(others)]
            try:
                output, channels_last = _forward(model, args, connection, channels_last)
            except torch.OutOfMemoryError:
                raise
            except Exception as err:
                raise model_raised(err, args) from err
            out = read_output(output, engine.task)
            if out.scores.dtype != torch.float32 and precision == "bfloat16":
                out = dataclasses.replace(out, scores=out.scores.float())  # scored in float32
            got = meter(out, idx)
            values[sl] = got.detach().double().cpu().numpy()
    curves = np.empty((u_count, 2, steps + 1), dtype=np.float64)
    ends = values[:2 * n].reshape(n, 2)  # (input, baseline image) of each sample
    pairs = values[2 * n:].reshape(m_count, 2)  # (deletion, insertion) of each distinct set
    curves[:, 0, 1:steps] = pairs[slot, 0]
    curves[:, 1, 1:steps] = pairs[slot, 1]
    curves[:, 0, 0] = curves[:, 1, steps] = ends[owner, 0]
    curves[:, 0, steps] = curves[:, 1, 0] = ends[owner, 1]
    return curves, len(job_u)
