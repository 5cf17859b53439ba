"""The synthetic "shapes" data set of the embedded demo.

Every 64x64 RGB image holds exactly one class-defining object (its shape is the label) at a random
position, size, rotation and colour, on a random textured background (low-frequency noise, stripes
and a gradient), plus one to three distractors (thin lines, elongated blobs, clusters of dots) that
never look like a class shape and never touch the object. The ground-truth mask of each sample is
exactly the pixels of its object, which makes the data set a benchmark for the localisation
quality of class-activation maps. The object is drawn last, in one flat colour, so its colour is
constant on the mask; colours are drawn independently of the label, so only the shape tells the
class.

Generation is vectorised numpy and deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["IMAGE_SIZE", "LABEL_NAMES", "MEAN", "STD", "ShapesDataset", "make_shapes"]

IMAGE_SIZE = 64
LABEL_NAMES: list[str] = ["circle", "square", "triangle", "cross", "ring", "diamond"]

# Per-channel mean and standard deviation of the generated images (in [0, 1] units), measured on
# 20k samples and rounded. Fixed constants, so that every split is normalised the same way.
MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.2, 0.2, 0.2)

_S = IMAGE_SIZE
_YY, _XX = np.mgrid[0:_S, 0:_S].astype(np.float32)
_GRID = 5  # resolution of the low-frequency background noise before upsampling


def _interp_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) matrix of a bilinear (align-corners) upsampling along one axis."""
    pos = np.linspace(0.0, src - 1.0, dst)
    lo = np.clip(np.floor(pos).astype(int), 0, src - 2)
    frac = (pos - lo).astype(np.float32)
    w = np.zeros((dst, src), np.float32)
    w[np.arange(dst), lo] = 1.0 - frac
    w[np.arange(dst), lo + 1] = frac
    return w


_UPSAMPLE = _interp_matrix(_GRID, _S)


def _col(a: np.ndarray) -> np.ndarray:
    """(n,) -> (n, 1, 1), for broadcasting against (n, 64, 64) pixel grids."""
    return np.asarray(a, np.float32)[:, None, None]


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random textured backgrounds, float32 (n, 3, 64, 64) in [0, 255] (channels first)."""
    base = rng.uniform(50.0, 205.0, (n, 3, 1, 1)).astype(np.float32)
    # low-frequency colour noise: a 5x5 random grid per channel, upsampled bilinearly
    grid = rng.standard_normal((n, 3, _GRID, _GRID)).astype(np.float32)
    grid *= rng.uniform(6.0, 28.0, (n, 1, 1, 1)).astype(np.float32)
    img = _UPSAMPLE @ grid @ _UPSAMPLE.T
    img += base
    # stripes of random orientation, period, phase, amplitude and colour direction
    theta = rng.uniform(0.0, np.pi, n)
    freq = 2.0 * np.pi / rng.uniform(5.0, 18.0, n)
    phase = rng.uniform(0.0, 2.0 * np.pi, n)
    proj = _XX * _col(np.cos(theta) * freq) + _YY * _col(np.sin(theta) * freq) + _col(phase)
    direction = rng.standard_normal((n, 3)).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-6
    amp = rng.uniform(0.0, 25.0, n).astype(np.float32)
    img += np.sin(proj)[:, None] * (direction * amp[:, None])[:, :, None, None]
    # a linear gradient
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    ramp = (_XX - 31.5) * _col(np.cos(phi) / 32.0) + (_YY - 31.5) * _col(np.sin(phi) / 32.0)
    gcol = rng.uniform(-25.0, 25.0, (n, 3)).astype(np.float32)
    img += ramp[:, None] * gcol[:, :, None, None]
    out: np.ndarray = np.clip(img, 0.0, 255.0, out=img)
    return out


def _contrasting_colours(
    rng: np.random.Generator, ref: np.ndarray, min_dist: float, tries: int = 30
) -> np.ndarray:
    """Uniform random RGB colours, (n, 3), each at least `min_dist` away from its `ref` row."""
    n = len(ref)
    out = rng.uniform(0.0, 255.0, (n, 3)).astype(np.float32)
    for _ in range(tries):
        bad = np.linalg.norm(out - ref, axis=1) < min_dist
        if not bad.any():
            return out
        out[bad] = rng.uniform(0.0, 255.0, (int(bad.sum()), 3))
    bad = np.linalg.norm(out - ref, axis=1) < min_dist
    out[bad] = np.where(ref[bad] > 127.5, 0.0, 255.0)  # the far corner of the colour cube
    return out


def _object_masks(
    labels: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray, rot: np.ndarray
) -> np.ndarray:
    """Masks of the class shapes, bool (n, 64, 64); r is the half-extent in pixels."""
    n = len(labels)
    masks = np.zeros((n, _S, _S), bool)
    for c in range(len(LABEL_NAMES)):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        dx, dy = _XX - _col(cx[idx]), _YY - _col(cy[idx])
        cos, sin, rr = _col(np.cos(rot[idx])), _col(np.sin(rot[idx])), _col(r[idx])
        u = (dx * cos + dy * sin) / rr
        v = (-dx * sin + dy * cos) / rr
        name = LABEL_NAMES[c]
        if name == "circle":
            m = u * u + v * v <= 1.0
        elif name == "square":
            m = np.maximum(np.abs(u), np.abs(v)) <= 0.75
        elif name == "triangle":  # equilateral, apex at v = -1, base at v = 0.5
            m = (v <= 0.5) & (v >= -1.0 + np.sqrt(3.0) * np.abs(u))
        elif name == "cross":  # a plus sign
            au, av = np.abs(u), np.abs(v)
            m = ((au <= 1.0) & (av <= 0.3)) | ((av <= 1.0) & (au <= 0.3))
        elif name == "ring":
            d2 = u * u + v * v
            m = (d2 <= 1.0) & (d2 >= 0.55**2)
        elif name == "diamond":  # a tall rhombus
            m = np.abs(u) / 0.62 + np.abs(v) <= 1.0
        else:  # pragma: no cover - LABEL_NAMES and this function go together
            raise AssertionError(name)
        masks[idx] = m
    return masks


def _segment_dist(
    px: np.ndarray, py: np.ndarray, ang: np.ndarray, half_len: np.ndarray,
    qx: np.ndarray, qy: np.ndarray,
) -> np.ndarray:
    """Distance from points (qx, qy) to segments centred at (px, py); broadcasts."""
    ca, sa = np.cos(ang), np.sin(ang)
    t = np.clip((qx - px) * ca + (qy - py) * sa, -half_len, half_len)
    dist: np.ndarray = np.hypot(qx - px - t * ca, qy - py - t * sa)
    return dist


def _distractor_masks(
    rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray, n_cand: int = 24
) -> np.ndarray:
    """One distractor per sample, bool (n, 64, 64), placed clear of the object.

    The object occupies at most the disc (cx, cy, radius). A distractor is a thin line, an
    elongated blob or a cluster of small dots; none of them is a class shape. Its position is the
    first of `n_cand` random candidates that keeps it clear of the object; the last candidate is
    the image corner (inset) farthest from the object, which is always clear.
    """
    n = len(cx)
    kind = rng.integers(0, 3, n)  # 0 line, 1 blob, 2 dots
    half_len = rng.uniform(6.0, 14.0, n)  # line
    width = rng.uniform(0.6, 1.2, n)
    ang = rng.uniform(0.0, np.pi, n)
    semi_a = rng.uniform(3.0, 6.0, n)  # blob: semi-axes a >= 2 b, never a disc
    semi_b = semi_a * rng.uniform(0.25, 0.45, n)
    dots_off = rng.uniform(-6.0, 6.0, (n, 4, 2))  # dots: 4 dots around the centre
    dots_r = rng.uniform(0.8, 1.4, n)
    extent = np.where(kind == 1, semi_a, 10.0)  # centre-to-edge reach of blobs and dot clusters

    px = rng.uniform(2.0, _S - 3.0, (n, n_cand))
    py = rng.uniform(2.0, _S - 3.0, (n, n_cand))
    px[:, -1] = np.where(cx < (_S - 1) / 2, _S - 7.0, 6.0)
    py[:, -1] = np.where(cy < (_S - 1) / 2, _S - 7.0, 6.0)
    ok_line = _segment_dist(px, py, ang[:, None], half_len[:, None], cx[:, None], cy[:, None])
    ok_line = ok_line >= radius[:, None] + 3.0
    ok_other = np.hypot(px - cx[:, None], py - cy[:, None]) >= (radius + extent + 2.0)[:, None]
    ok = np.where((kind == 0)[:, None], ok_line, ok_other)
    first = np.argmax(ok, axis=1)  # the last candidate is always ok
    px, py = px[np.arange(n), first], py[np.arange(n), first]

    masks = np.zeros((n, _S, _S), bool)
    idx = np.flatnonzero(kind == 0)
    if idx.size:
        d = _segment_dist(
            _col(px[idx]), _col(py[idx]), _col(ang[idx]), _col(half_len[idx]), _XX, _YY
        )
        masks[idx] = d <= _col(width[idx])
    idx = np.flatnonzero(kind == 1)
    if idx.size:
        dx, dy = _XX - _col(px[idx]), _YY - _col(py[idx])
        cos, sin = _col(np.cos(ang[idx])), _col(np.sin(ang[idx]))
        u = (dx * cos + dy * sin) / _col(semi_a[idx])
        v = (-dx * sin + dy * cos) / _col(semi_b[idx])
        masks[idx] = u * u + v * v <= 1.0
    idx = np.flatnonzero(kind == 2)
    if idx.size:
        m = np.zeros((idx.size, _S, _S), bool)
        for k in range(dots_off.shape[1]):
            ox, oy = _col(px[idx] + dots_off[idx, k, 0]), _col(py[idx] + dots_off[idx, k, 1])
            m |= (_XX - ox) ** 2 + (_YY - oy) ** 2 <= _col(dots_r[idx]) ** 2
        masks[idx] = m
    return masks


def make_shapes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate `n` samples of the shapes data set, deterministically for `seed`.

    Returns ``(images, labels, masks)``: uint8 (n, 64, 64, 3) RGB images, int64 (n,) labels (index
    into `LABEL_NAMES`, balanced: every class appears n // 6 or n // 6 + 1 times) and bool
    (n, 64, 64) masks of the class-defining object of each image.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    n = int(n)
    rng = np.random.default_rng(seed)
    k = len(LABEL_NAMES)
    labels = rng.permutation(np.arange(n) % k).astype(np.int64)

    # the object: half-extent r (size 2r in 14..26 px), rotation, centre fully inside the image
    r = rng.uniform(7.0, 13.0, n)
    small_rot = rng.uniform(-np.pi / 12, np.pi / 12, n)  # keeps squares and diamonds apart
    rot = np.where(labels == LABEL_NAMES.index("triangle"), rng.uniform(0, 2 * np.pi, n), small_rot)
    reach = 1.1 * r  # every shape lies within the disc of radius 1.05 r around its centre
    cx = reach + 1.0 + rng.uniform(0.0, 1.0, n) * (_S - 3.0 - 2.0 * reach)
    cy = reach + 1.0 + rng.uniform(0.0, 1.0, n) * (_S - 3.0 - 2.0 * reach)
    obj = _object_masks(labels, cx, cy, r, rot)

    img = _background(rng, n)  # (n, 3, 64, 64)
    bg_mean = img.mean(axis=(2, 3))

    # one to three distractors, drawn before the object
    n_dis = rng.integers(1, 4, n)
    for slot in range(3):
        dmask = _distractor_masks(rng, cx, cy, reach)
        dmask &= (slot < n_dis)[:, None, None]
        colour = _contrasting_colours(rng, bg_mean, 60.0)
        img = np.where(dmask[:, None], colour[:, :, None, None], img)

    colour = np.round(_contrasting_colours(rng, bg_mean, 90.0))
    img = np.where(obj[:, None], colour[:, :, None, None], img)
    images = np.round(img).astype(np.uint8).transpose(0, 2, 3, 1)
    images = np.ascontiguousarray(images)
    return images, labels, obj


class ShapesDataset(Dataset[tuple[torch.Tensor, int]]):
    """A map-style data set over arrays: ``ds[i] -> (image (3, 64, 64) float32, label int)``.

    Attributes: ``images`` (float32 tensor (N, 3, 64, 64), normalised with `MEAN`/`STD`),
    ``labels`` (int64 numpy (N,)), ``masks`` (bool numpy (N, 64, 64), the class-defining object)
    and ``label_names``.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        masks: np.ndarray,
        label_names: list[str] | None = None,
    ) -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}"
            )
        if len(labels) != len(images) or masks.shape != images.shape[:3]:
            raise ValueError(
                f"labels {labels.shape} and masks {masks.shape} do not match images {images.shape}"
            )
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        self.images: torch.Tensor = ((x - mean) / std).contiguous()
        self.labels: np.ndarray = np.asarray(labels, np.int64)
        self.masks: np.ndarray = np.asarray(masks, bool)
        self.label_names: list[str] = list(label_names if label_names is not None else LABEL_NAMES)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def mask(self, i: int) -> np.ndarray:
        """The ground-truth object mask of sample `i`, bool (64, 64)."""
        mask: np.ndarray = self.masks[i]
        return mask

    def to_display(self, i: int) -> np.ndarray:
        """Sample `i` as a uint8 (64, 64, 3) RGB image, un-normalised, for showing to a human."""
        mean = torch.tensor(MEAN).view(3, 1, 1)
        std = torch.tensor(STD).view(3, 1, 1)
        x = (self.images[i] * std + mean) * 255.0
        return x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    @classmethod
    def generate(cls, n: int, seed: int = 0) -> ShapesDataset:
        """`make_shapes(n, seed)` wrapped as a data set."""
        return cls(*make_shapes(n, seed))
