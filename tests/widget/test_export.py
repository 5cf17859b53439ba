"""``lens.export``: the format the suffix names, every depth with ``depth="all"``, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import Blobs, TinyNet
from PIL import Image

from samplelens_widget import SampleLens


@pytest.fixture(scope="module")
def lens():
    w = SampleLens(TinyNet(), Blobs(10), background=False, projection="pca", cache_dir=None)
    w.send = lambda content, buffers=None: None
    w.viewed = 4
    w.colormap = "inferno"
    w.opacity = 0.6
    yield w
    w.close()


def close(pixels, want):
    """JPEG is lossy: near the overlay (PSNR over 33 dB on these noisy images), not equal."""
    mse = float(((pixels - want) ** 2).mean())
    return mse > 0 and 10 * np.log10(255**2 / mse) > 33 and np.abs(pixels - want).mean() < 4


def read(path):
    with Image.open(path) as im:
        return im.format, im.size, np.asarray(im.convert("RGB")).astype(int)


@pytest.mark.parametrize("name,fmt", [
    ("x.png", "PNG"), ("x.jpg", "JPEG"), ("x.JPEG", "JPEG"), ("x.webp", "WEBP"),
])
def test_the_suffix_names_the_format(lens, tmp_path, name, fmt):
    path = lens.export(tmp_path / name)
    assert path == tmp_path / name
    got_fmt, size, pixels = read(path)
    want = lens.overlay().astype(int)
    assert got_fmt == fmt and size == (64, 64) and pixels.shape == want.shape
    if fmt == "JPEG":  # lossy: close, not equal
        assert close(pixels, want)
    else:  # PNG, lossless WebP: exactly the overlay
        np.testing.assert_array_equal(pixels, want)


def test_str_paths_and_an_int_depth(lens, tmp_path):
    depth = lens.result.depths[1]
    path = lens.export(str(tmp_path / "d.png"), depth=depth)
    np.testing.assert_array_equal(read(path)[2], lens.overlay(depth=depth))
    assert not np.array_equal(read(path)[2], lens.overlay(depth=None))


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_all_depths_one_file_each_next_to_the_path(lens, tmp_path, suffix):
    res = lens.result
    paths = lens.export(tmp_path / f"x{suffix}", depth="all")
    depths = list(res.depths)
    assert len(paths) == len(depths) >= 4
    want_names = [f"x-depth{d:02d}-{res.layer_at(d).name}{suffix}" for d in depths]
    assert [p.name for p in paths] == want_names
    assert all(p.parent == tmp_path for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(want_names)  # nothing else
    for p, d in zip(paths, depths, strict=True):
        fmt, size, pixels = read(p)
        want = lens.overlay(depth=d).astype(int)
        assert size == (64, 64)
        if suffix == ".png":
            assert fmt == "PNG"
            np.testing.assert_array_equal(pixels, want)
        else:
            assert fmt == "JPEG" and close(pixels, want)
    if suffix == ".png":  # each file is its own depth's overlay (some depths look alike)
        distinct = {lens.overlay(depth=d).tobytes() for d in depths}
        assert len({read(p)[2].astype(np.uint8).tobytes() for p in paths}) == len(distinct) > 2


def test_the_current_depth_follows_the_trait(lens, tmp_path):
    depth = lens.result.depths[0]
    lens.depth = depth
    try:
        path = lens.export(tmp_path / "current.png")
        np.testing.assert_array_equal(read(path)[2], lens.overlay(depth=depth))
    finally:
        lens.depth = None


@pytest.mark.parametrize("name,message", [
    ("x.gif", r"^path: '.*x\.gif' has suffix '\.gif'; allowed: '\.png', '\.jpg', '\.jpeg', "
              r"'\.webp'$"),
    ("x", r"^path: '.*x' has no suffix; allowed: '\.png'"),
    ("x.png.txt", r"has suffix '\.txt'"),
])
def test_an_unknown_suffix_is_refused_and_nothing_is_written(lens, tmp_path, name, message):
    with pytest.raises(ValueError, match=message):
        lens.export(tmp_path / name)
    with pytest.raises(ValueError, match=message):
        lens.export(tmp_path / name, depth="all")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("depth,exc", [
    (99, ValueError), (0, ValueError), ("last", ValueError), (True, ValueError),
    (2.0, TypeError), ([1, 2], TypeError),
])
def test_a_bad_depth_names_the_value_and_the_allowed_depths(lens, tmp_path, depth, exc):
    depths = [int(d) for d in lens.result.depths]
    message = (rf"^depth: {depth!r} is not allowed; allowed: one of the model's depths "
               rf"{depths}, None \(the last layer\), 'current' \(the trait depth, now None\)")
    with pytest.raises(exc, match=message.replace("[", r"\[").replace("]", r"\]")
                       + r" or 'all' \(one file per depth\)$"):
        lens.export(tmp_path / "x.png", depth=depth)
    with pytest.raises(exc, match=r"^depth: .* now None\)$"):
        lens.overlay(depth=depth)
    assert list(tmp_path.iterdir()) == []


def test_a_path_of_another_type(lens):
    with pytest.raises(TypeError, match=r"^path: expected a str or pathlib.Path, got int"):
        lens.export(3)
