"""The picture of a sample (``samplelens_widget/display.py``): a dataset's torchvision
``Normalize`` inverted, the default by range, ``display=fn``; and that the viewer, thumbnails,
export, overlay and ``sample.image`` all show that one picture.

Expectations come from the original PIL pixels (and PIL's own resize for thumbnails), never from
the code under test.
"""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from fakes import TinyNet
from PIL import Image, ImageDraw

from samplelens_widget import SampleLens
from samplelens_widget.data import tensor_to_image
from samplelens_widget.display import normalize_steps, tensor_image

torchvision = pytest.importorskip("torchvision")
from torchvision import transforms as T  # noqa: E402
from torchvision.datasets import VisionDataset  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet's
SIZE = 48


# ------------------------------------------------------------------------------ data
def photo(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 image (sky-to-ground gradient, texture, noise) with channel means
    exactly 148/111/87; red spans 2..210, green 0..202, blue 0..190 (the extremes fix what the
    old min-max stretch of the ImageNet-normalised tensor shows: 177/142/127)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    chans = []
    for c, (mean, lo, hi) in enumerate([(148, 2, 210), (111, 0, 202), (87, 0, 190)]):
        f = 0.6 * (1 - yy) + 0.25 * np.sin(6 * xx + c) + 0.15 * rng.random((size, size))
        f = (f - f.min()) / (f.max() - f.min())
        v = lo + (hi - lo) * f
        v = np.clip(np.rint(v - v.mean() + mean).astype(int), lo + 1, hi - 1).reshape(-1)
        v[0], v[1] = lo, hi
        need = mean * v.size - v.sum()
        for i in rng.permutation(np.arange(2, v.size)):
            if need == 0:
                break
            new = np.clip(v[i] + int(np.sign(need)) * min(abs(need), 20), lo + 1, hi - 1)
            need -= new - v[i]
            v[i] = new
        chans.append(v.reshape(size, size))
    return np.stack(chans, -1).astype(np.uint8)


def shapes(n: int, seed: int = 1) -> list[np.ndarray]:
    """Noise with a drawn ellipse and rectangle of random colours."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(im)
        x0, y0 = (int(v) for v in rng.integers(0, SIZE // 2, 2))
        colours = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2)]
        draw.ellipse((x0, y0, x0 + 20, y0 + 16), fill=colours[0])
        draw.rectangle((4, 30, 24, 44), fill=colours[1])
        out.append(np.asarray(im).copy())
    return out


ARRAYS = [photo(), *shapes(5)]


class Pictures(VisionDataset):
    """PIL images through real torchvision transforms, as ``ImageFolder`` gives them."""

    def __init__(self, arrays=ARRAYS, transform=None, transforms=None, display=None):
        super().__init__(root=None, transform=transform, transforms=transforms)
        self.arrays = arrays
        if display is not None:
            self.to_display = display

    def __len__(self):
        return len(self.arrays)

    def __getitem__(self, i):
        img, label = Image.fromarray(self.arrays[i]), i % 5
        if self.transforms is not None:
            img, label = self.transforms(img, label)
        return img, label


def v1() -> T.Compose:
    return T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])


def v2_tf() -> v2.Compose:
    steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    return v2.Compose(steps)


def make(ds, **kw) -> SampleLens:
    lens = SampleLens(TinyNet(), ds, background=False, projection="pca", cache_dir=None, **kw)
    lens.sent = []
    lens.send = lambda content, buffers=None: lens.sent.append((content, list(buffers or [])))
    return lens


def of_type(lens, kind):
    return [(c, b) for c, b in lens.sent if c.get("type") == kind]


def decoded(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def resized(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """What a thumbnail of ``arr`` should be: PIL's box filter, as a thumbnail is made."""
    return np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BOX)).astype(int)


def assert_every_picture_is(lens, i: int, want: np.ndarray, tmp_path) -> None:
    """Session.image, the viewer's image, both thumbnails, sample.image, a visualizer's
    sample.image, the overlay and the export at opacity 0: each equals ``want`` (±1)."""
    want = want.astype(int)
    s, name = lens._session, lens.slice
    assert np.abs(s.image(name, i).astype(int) - want).max() <= 1, "Session.image"
    lens.selected = [i]
    lens.viewed = i
    lens.opacity = 0.0
    assert np.abs(lens.sample.image.astype(int) - want).max() <= 1, "lens.sample.image"
    assert np.abs(lens.overlay().astype(int) - want).max() <= 1, "overlay at opacity 0"
    path = lens.export(tmp_path / f"export_{i}.png")
    assert np.abs(decoded(path.read_bytes()) - want).max() <= 1, "export at opacity 0"
    lens.sent.clear()
    key = lens._key().as_dict()
    lens._on_msg(lens, {"type": "analyze", "rid": 1, "keys": [key], "images": [True]}, [])
    ((_, buffers),) = of_type(lens, "analysis")
    assert np.abs(decoded(buffers[-1]) - want).max() <= 1, "the viewer's image"
    rows = {"type": "rows", "rid": 2, "model": lens.model_name, "slice": name, "ids": [i]}
    lens._on_msg(lens, rows, [])
    ((_, [thumb]),) = of_type(lens, "rows")
    got = decoded(thumb)
    assert np.abs(got - resized(want.astype(np.uint8), got.shape[1::-1])).max() <= 1, "row thumb"
    lens._on_msg(lens, {"type": "thumb", "rid": 3, "slice": name, "id": i}, [])
    ((_, [hover]),) = of_type(lens, "thumb")
    got = decoded(hover)
    assert np.abs(got - resized(want.astype(np.uint8), got.shape[1::-1])).max() <= 1, "hover"
    if "picture" in s.visualizers:
        visual = {"type": "visual", "rid": 4, "name": "picture", "slice": name, "id": i}
        lens._on_msg(lens, visual, [])
        ((meta, [png]),) = of_type(lens, "visual")
        assert meta["kind"] == "image"
        assert np.abs(decoded(png) - want).max() <= 1, "a visualizer's sample.image"


def means(arr: np.ndarray) -> np.ndarray:
    return arr.reshape(-1, 3).astype(float).mean(axis=0)


# ------------------------------------------------------------------------------ the issue's row
def test_the_issues_photo_keeps_its_channel_means():
    ds = Pictures(transform=v1())
    x, _ = ds[0]
    np.testing.assert_allclose(means(ARRAYS[0]), [148, 111, 87])
    # the issue: the old per-sample min-max stretch of the normalised tensor shifts the colours
    assert np.abs(means(tensor_to_image(x)) - [177, 142, 127]).max() <= 1
    lens = make(ds)
    shown = lens._session.image(lens.slice, 0)
    assert np.abs(means(shown) - [148, 111, 87]).max() <= 1
    assert np.abs(shown.astype(int) - ARRAYS[0]).max() <= 1
    lens.close()


# ------------------------------------------------------------------------------ Normalize found
def flipped(arrays):
    return [np.ascontiguousarray(a[:, ::-1]) for a in arrays]


CASES = {
    "v1 Compose": (lambda: Pictures(transform=v1()), ARRAYS),
    "v2 Compose": (lambda: Pictures(transform=v2_tf()), ARRAYS),
    "v2 joint transforms=": (lambda: Pictures(transforms=v2_tf()), ARRAYS),
    "nested Compose, two Normalize": (
        lambda: Pictures(
            transform=T.Compose([v1(), T.Normalize([0.5, 0.2, 0.1], [2.0, 0.5, 3.0])])
        ),
        ARRAYS,
    ),
    "Subset": (
        lambda: torch.utils.data.Subset(Pictures(transform=v1()), [3, 1, 4, 0]),
        [ARRAYS[j] for j in (3, 1, 4, 0)],
    ),
    "Subset of a Subset": (
        lambda: torch.utils.data.Subset(
            torch.utils.data.Subset(Pictures(transform=v2_tf()), [5, 4, 3, 2]), [2, 0, 1]
        ),
        [ARRAYS[j] for j in (3, 5, 4)],
    ),
    "a step not understood before Normalize": (
        lambda: Pictures(
            transform=T.Compose(
                [T.ToTensor(), T.Lambda(lambda t: t.flip(-1)), T.Normalize(MEAN, STD)]
            )
        ),
        flipped(ARRAYS),
    ),
    "a pixel move after Normalize": (
        lambda: Pictures(transform=T.Compose([v1(), T.RandomHorizontalFlip(p=1.0)])),
        flipped(ARRAYS),
    ),
    "Normalize of 0..255 floats": (
        lambda: Pictures(
            transform=v2.Compose(
                [
                    v2.PILToTensor(),
                    v2.ToDtype(torch.float32, scale=False),
                    v2.Normalize([123.675, 116.28, 103.53], [58.395, 57.12, 57.375]),
                ]
            )
        ),
        ARRAYS,
    ),
    "no Normalize: ToTensor floats in [0, 1]": (lambda: Pictures(transform=T.ToTensor()), ARRAYS),
    "no Normalize: PILToTensor uint8": (lambda: Pictures(transform=T.PILToTensor()), ARRAYS),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_picture_shows_the_original_pixels(case, tmp_path):
    build, originals = CASES[case]
    lens = make(build(), visualizers={"picture": lambda s: s.image})
    for i in (0, 2):
        assert_every_picture_is(lens, i, originals[i], tmp_path)
    lens.close()


def test_normalize_steps_are_duck_typed_and_in_order():
    class Normalize:  # not torchvision's: the class name and mean/std are what count
        def __init__(self, mean, std):
            self.mean, self.std = mean, std

    class Chain:
        def __init__(self, *steps):
            self.transforms = list(steps)

    class Data:
        def __init__(self, transform, dataset=None):
            self.transform, self.dataset = transform, dataset

    inner = Data(Chain(Normalize([1.0], [2.0]), Chain(Normalize([3.0], [4.0]))))
    steps = normalize_steps(Data(Normalize([5.0], [6.0]), dataset=inner))
    assert [(float(m[0]), float(s[0])) for m, s in steps] == [(1, 2), (3, 4), (5, 6)]
    # inverted in reverse order: x -> ((x * 6 + 5) * 4 + 3) * 2 + 1, then shown as floats in [0, 1]
    raw = torch.full((3, 2, 2), 0.4)
    x = ((((raw - 1) / 2 - 3) / 4) - 5) / 6
    np.testing.assert_array_equal(tensor_image(x, steps), np.full((2, 2, 3), 102, np.uint8))
    assert normalize_steps(Data(None)) == [] and normalize_steps(object()) == []
    # a Normalize whose mean does not fit the channels is not inverted: the default instead
    wrong = [(torch.tensor([0.1, 0.2], dtype=torch.float64), torch.tensor([1.0, 1.0]).double())]
    y = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(tensor_image(y, wrong), tensor_to_image(y))


def test_the_default_picture_by_range():
    g = torch.Generator().manual_seed(0)
    unit = torch.rand(3, 5, 6, generator=g)
    want = np.rint(unit.permute(1, 2, 0).numpy().astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(tensor_image(unit), want)  # floats in [0, 1]: x * 255
    u8 = (torch.rand(3, 5, 6, generator=g) * 255).to(torch.uint8)
    np.testing.assert_array_equal(tensor_image(u8), u8.permute(1, 2, 0).numpy())  # as it is
    wide = torch.randn(3, 5, 6, generator=g) * 3
    a = wide.permute(1, 2, 0).numpy().astype(np.float64)
    stretched = np.rint((a - a.min()) / (a.max() - a.min()) * 255).astype(np.uint8)
    assert np.abs(tensor_image(wide).astype(int) - stretched).max() <= 1  # min-max, as before
    gray = torch.rand(5, 6, generator=g)
    want_gray = np.rint(gray.numpy().astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(tensor_image(gray), np.repeat(want_gray[:, :, None], 3, 2))


# ------------------------------------------------------------------------------ display=
def inverted(arrays):
    return [255 - a for a in arrays]


RETURNS = {
    "uint8 HxWx3": (lambda a: 255 - a, inverted(ARRAYS)),
    "uint8 HxW": (lambda a: a[:, :, 1], [np.repeat(a[:, :, 1:2], 3, 2) for a in ARRAYS]),
    "PIL": (lambda a: Image.fromarray(a).convert("L"), [
        np.repeat(np.asarray(Image.fromarray(a).convert("L"))[:, :, None], 3, 2) for a in ARRAYS
    ]),
    "float HWC in [0, 1]": (lambda a: a.astype(np.float64) / 255, ARRAYS),
    "float tensor CHW in [0, 1]": (
        lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255,
        ARRAYS,
    ),
}


def unnormalised(x: torch.Tensor) -> np.ndarray:
    """The user's own inversion: uint8 HWC of an ImageNet-normalised (3, H, W) tensor."""
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return ((x * std + mean) * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("kind", list(RETURNS))
def test_display_fn_wins_and_every_return_kind_is_a_picture(kind, tmp_path):
    to_picture, want = RETURNS[kind]
    seen = []

    def fn(x):
        seen.append(tuple(x.shape))
        return to_picture(unnormalised(x))

    # the dataset also has a to_display and a Normalize: display= comes first
    ds = Pictures(transform=v1(), display=lambda i: np.zeros((SIZE, SIZE, 3), np.uint8))
    lens = make(ds, display=fn, visualizers={"picture": lambda s: s.image})
    assert seen and seen[0] == (3, SIZE, SIZE)  # called with the input tensor (C, H, W)
    assert_every_picture_is(lens, 1, want[1], tmp_path)
    lens.close()


def test_to_display_comes_before_the_inverted_normalize(tmp_path):
    ds = Pictures(transform=v1(), display=lambda i: ARRAYS[i][:, :, ::-1])  # channels swapped
    lens = make(ds)
    assert_every_picture_is(lens, 2, ARRAYS[2][:, :, ::-1], tmp_path)
    lens.close()


def test_a_bad_display_is_an_error_naming_it():
    ds = Pictures(transform=v1())
    with pytest.raises(TypeError, match=r"display: expected a function .* got 3"):
        make(ds, display=3)
    with pytest.raises(TypeError, match=r"display: returned str 'nope'; expected a uint8 array"):
        make(ds, display=lambda x: "nope")
    with pytest.raises(TypeError, match=r"display: returned NoneType"):
        make(ds, display=lambda x: None)
    # the normalised tensor itself: the photo's red 2 -> (2 / 255 - 0.485) / 0.229 = -2.084,
    # its blue 190 -> (190 / 255 - 0.406) / 0.225 = 1.507
    with pytest.raises(TypeError, match=r"display: returned floats in \[-2\.084, 1\.507\]; "):
        make(ds, display=lambda x: x)
    with pytest.raises(TypeError, match=r"display: returned ndarray of shape \(5,\)"):
        make(ds, display=lambda x: np.zeros(5, np.uint8))
    with pytest.raises(TypeError, match=r"display: returned integers in \[300, 300\]"):
        make(ds, display=lambda x: np.full((4, 4, 3), 300))


MEANS_OF: dict[int, float] = {}  # sample id -> its input's mean, to recognise it in a display fn


def test_the_widget_stays_usable_when_display_fails(tmp_path):
    def fn(x):
        if abs(float(x.mean()) - MEANS_OF[1]) < 1e-6:
            raise RuntimeError("broken on purpose")
        if abs(float(x.mean()) - MEANS_OF[2]) < 1e-6:
            return "not a picture"
        return unnormalised(x)

    ds = Pictures(transform=v1())
    MEANS_OF.update({i: float(ds[i][0].mean()) for i in (1, 2)})
    lens = make(ds, display=fn)
    with pytest.warns(RuntimeWarning, match=r"display: failed on sample 1 of slice 'data' "
                      r"\(RuntimeError: broken on purpose\); the picture falls back"):
        shown = lens._session.image(lens.slice, 1)
    assert np.abs(shown.astype(int) - ARRAYS[1]).max() <= 1  # the inverted Normalize instead
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the next failure is not warned again
        assert_every_picture_is(lens, 2, ARRAYS[2], tmp_path)
        assert_every_picture_is(lens, 1, ARRAYS[1], tmp_path)
    assert not of_type(lens, "error")
    lens.close()


def test_a_failing_to_display_warns_once_and_falls_back():
    def to_display(i):
        raise ValueError(f"no picture for {i}")

    lens = make(Pictures(transform=v1(), display=to_display))
    with pytest.warns(RuntimeWarning, match=r"to_display: failed on sample 3 .*no picture for 3"):
        shown = lens._session.image(lens.slice, 3)
    assert np.abs(shown.astype(int) - ARRAYS[3]).max() <= 1
    lens.close()


@pytest.mark.slow  # a fresh interpreter importing torch
def test_the_package_does_not_import_torchvision():
    code = (
        "import sys, samplelens_widget.widget, samplelens_widget.display; "
        "assert 'torchvision' not in sys.modules, 'torchvision imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
