"""The synthetic shapes data set of the demo: generation and the data-set contract."""

import numpy as np
import pytest
import torch

from samplelens_widget.demo import LABEL_NAMES, ShapesDataset, load_demo, make_shapes

N = 300


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(N, seed=11)


def test_shapes_and_dtypes(shapes):
    images, labels, masks = shapes
    assert images.shape == (N, 64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == (N,) and labels.dtype == np.int64
    assert masks.shape == (N, 64, 64) and masks.dtype == bool
    assert labels.min() >= 0 and labels.max() < len(LABEL_NAMES)
    assert 5 <= len(LABEL_NAMES) <= 6


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = make_shapes(40, seed=3)
    b = make_shapes(40, seed=3)
    c = make_shapes(40, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[2], c[2])


def test_small_sizes():
    for n in (0, 1, 7):
        images, labels, masks = make_shapes(n, seed=0)
        assert len(images) == len(labels) == len(masks) == n


@pytest.mark.parametrize("bad", [-1, 2.5, "10", True])
def test_bad_n_is_a_value_error(bad):
    with pytest.raises(ValueError, match="n must be"):
        make_shapes(bad, seed=0)


def test_labels_are_balanced():
    _, labels, _ = make_shapes(600, seed=5)
    counts = np.bincount(labels, minlength=len(LABEL_NAMES))
    assert counts.max() - counts.min() <= 1


def test_masks_are_inside_and_sized_like_the_object(shapes):
    _, _, masks = shapes
    area = masks.sum(axis=(1, 2))
    # objects are 14-26 px across: at least a small triangle, at most a full 26x26 square
    assert area.min() >= 40 and area.max() <= 26 * 26
    # fully inside the image: nothing on the border rows and columns
    border = np.zeros((64, 64), bool)
    border[[0, -1], :] = True
    border[:, [0, -1]] = True
    assert not (masks & border).any()
    for m in masks[:50]:
        rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
        assert 10 <= extent <= 29


def _dilate(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def test_the_mask_is_exactly_the_flat_coloured_object(shapes):
    images, _, masks = shapes
    for img, m in zip(images, masks, strict=True):
        pix = img[m]
        # one flat colour on the whole mask ...
        assert (pix == pix[0]).all()
        # ... and (almost) nowhere just outside it: the mask does not stop short of the object
        rim = _dilate(m) & ~m
        same = (img[rim] == pix[0]).all(axis=1)
        assert same.mean() < 0.05


def test_the_image_is_not_just_the_object(shapes):
    images, _, masks = shapes
    for img, m in zip(images[:50], masks[:50], strict=True):
        outside = img[~m].astype(float)
        assert outside.std(axis=0).max() > 3.0  # a textured background, not a flat fill
        # the object stands out from its background
        contrast = np.linalg.norm(outside.mean(axis=0) - img[m][0].astype(float))
        assert contrast > 30


def _shape_stats(m: np.ndarray) -> tuple[float, bool, float]:
    """(area / area of the smallest centred disc holding it, hole at centroid, point symmetry)."""
    yy, xx = np.nonzero(m)
    cy, cx = yy.mean(), xx.mean()
    rmax = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2).max() + 0.5
    compact = len(yy) / (np.pi * rmax**2)
    hole = not m[int(round(cy)), int(round(cx))]
    ry, rx = np.round(2 * cy - yy).astype(int), np.round(2 * cx - xx).astype(int)
    inside = (ry >= 0) & (ry < 64) & (rx >= 0) & (rx < 64)
    sym = np.zeros(len(yy), bool)
    sym[inside] = m[ry[inside], rx[inside]]
    return compact, hole, sym.mean()


# expected compactness of each ideal shape: circle 1, ring 1 - 0.55^2 = 0.70, square 2/pi = 0.64,
# equilateral triangle 3 sqrt(3) / (4 pi) = 0.41, plus sign (arm width 0.6) 0.60,
# rhombus with half-diagonals 0.62 and 1: 0.39
BANDS = {
    "circle": (0.8, 1.05),
    "ring": (0.55, 0.75),
    "square": (0.55, 0.75),
    "triangle": (0.32, 0.53),
    "cross": (0.48, 0.68),
    "diamond": (0.32, 0.53),
}


def test_the_label_is_the_shape_of_the_mask(shapes):
    _, labels, masks = shapes
    for label, m in zip(labels, masks, strict=True):
        name = LABEL_NAMES[label]
        compact, hole, sym = _shape_stats(m)
        lo, hi = BANDS[name]
        assert lo <= compact <= hi, (name, compact)
        assert hole == (name == "ring"), name
        if name == "triangle":
            assert sym < 0.85, (name, sym)
        else:
            assert sym > 0.85, (name, sym)


def test_colour_does_not_give_away_the_class():
    images, labels, masks = make_shapes(1200, seed=9)
    colours = np.stack([img[m][0] for img, m in zip(images, masks, strict=True)]).astype(float)
    overall = colours.mean(axis=0)
    for c in range(len(LABEL_NAMES)):
        # 200 uniform colours per class: the standard error of the mean is about 5
        assert np.abs(colours[labels == c].mean(axis=0) - overall).max() < 25
        assert colours[labels == c].std(axis=0).min() > 40


def test_dataset_item_contract():
    images, labels, masks = make_shapes(12, seed=2)
    ds = ShapesDataset(images, labels, masks)
    assert len(ds) == 12
    x, y = ds[3]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (3, 64, 64)
    assert type(y) is int and y == labels[3]
    assert ds.images.shape == (12, 3, 64, 64) and ds.images.dtype == torch.float32
    assert ds.labels.dtype == np.int64 and ds.masks.dtype == bool
    assert ds.label_names == LABEL_NAMES
    np.testing.assert_array_equal(ds.mask(3), masks[3])
    disp = ds.to_display(3)
    assert disp.dtype == np.uint8 and disp.shape == (64, 64, 3)
    np.testing.assert_array_equal(disp, images[3])  # un-normalising gives the generated image
    # normalised roughly to zero mean and unit standard deviation
    assert abs(float(ds.images.mean())) < 0.3
    assert 0.6 < float(ds.images.std()) < 1.4
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    xb, yb = next(iter(loader))
    assert xb.shape == (5, 3, 64, 64) and yb.tolist() == labels[:5].tolist()


def test_load_demo_splits():
    _, data, names = load_demo(n_train=30, n_val=20, seed=0)
    assert set(data) == {"train", "val"} and names == LABEL_NAMES
    assert len(data["train"]) == 30 and len(data["val"]) == 20
    assert not torch.equal(data["train"].images[:20], data["val"].images)
    _, again, _ = load_demo(n_train=30, n_val=20, seed=0)
    assert torch.equal(again["val"].images, data["val"].images)
    _, other, _ = load_demo(n_train=30, n_val=20, seed=1)
    assert not torch.equal(other["val"].images, data["val"].images)
