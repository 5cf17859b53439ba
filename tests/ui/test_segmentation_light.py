"""A segmentation model (dense outputs) in the light page: the mask outline over the overlay and
the explained class's share, IoU and pixel accuracy in the error analysis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import screenshot
from torch import nn
from widget_helpers import canvas, fakes, pixels, set_slider, settle, wait_canvas

from samplelens_widget import SampleLens

pytestmark = pytest.mark.ui

OVERLAY = "canvas[data-role=overlay]"
NAMES = ["background", "square", "disk"]
SIZE = 32


class TinySeg(nn.Module):
    """conv(3->8, stride 2) relu conv(8->3) upsampled to the input: class c where channel c of
    the (smoothed) image is the largest, plus a little random mixing."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 3, 1)
        with torch.no_grad():
            w1 = torch.randn(8, 3, 3, 3, generator=g) * 0.05
            for c in range(3):
                w1[c, c] += 1 / 9
            self.conv1.weight.copy_(w1)
            self.conv1.bias.zero_()
            w2 = torch.randn(3, 8, 1, 1, generator=g) * 0.05
            for c in range(3):
                w2[c, c, 0, 0] += 4.0
            self.conv2.weight.copy_(w2)
            self.conv2.bias.zero_()

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(x)))
        return {"out": F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)}


class Shapes(torch.utils.data.Dataset):
    """(image 3x32x32 float, mask 32x32 long): a reddish background (0), a green square (1) and
    a blue disk (2), with noise."""

    def __init__(self, n: int = 8) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        rng = np.random.default_rng(100 + i)
        yy, xx = np.mgrid[:SIZE, :SIZE]
        mask = np.zeros((SIZE, SIZE), dtype=np.int64)
        s = int(rng.integers(9, 14))
        y0, x0 = (int(v) for v in rng.integers(1, SIZE - s - 1, size=2))
        mask[y0 : y0 + s, x0 : x0 + s] = 1
        cy, cx, r = (float(v) for v in (*rng.uniform(8, 24, size=2), rng.uniform(5, 8)))
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
        img = np.full((3, SIZE, SIZE), 0.15, dtype=np.float32)
        for c in range(3):
            img[c][mask == c] = 0.85
        img += rng.normal(0, 0.12, img.shape).astype(np.float32)
        return torch.from_numpy(img.clip(0, 1)), torch.from_numpy(mask)


def hand_numbers(net, ds, i: int, cls: int | None = None):
    """The model's pixel classes and, for `cls` (default: the class of the most pixels), its
    share, IoU against the mask and the pixel accuracy."""
    x, mask = ds[i]
    with torch.no_grad():
        pred = net(x[None])["out"][0].argmax(0).numpy()
    mask = mask.numpy()
    if cls is None:
        cls = int(np.bincount(pred.ravel(), minlength=3).argmax())
    mine, truth = pred == cls, mask == cls
    return {
        "pred": pred,
        "cls": cls,
        "share": float(mine.mean()),
        "iou": float((mine & truth).sum() / (mine | truth).sum()),
        "accuracy": float((pred == mask).mean()),
    }


def expected_outline(pred: np.ndarray, cls: int, H: int, W: int):
    """Inner contour (of `cls`, a 4-neighbour is not) and outer halo (not `cls`, a 4-neighbour
    is) of the nearest-neighbour upscaled class map, neighbours inside the canvas only."""
    s = H // pred.shape[0]
    assert H == s * pred.shape[0] and W == s * pred.shape[1]
    m = np.kron(pred == cls, np.ones((s, s), dtype=bool))
    diff = np.zeros_like(m)
    diff[:, 1:] |= m[:, 1:] != m[:, :-1]
    diff[:, :-1] |= m[:, :-1] != m[:, 1:]
    diff[1:, :] |= m[1:, :] != m[:-1, :]
    diff[:-1, :] |= m[:-1, :] != m[1:, :]
    return diff & m, diff & ~m


def panel_numbers(page) -> dict:
    return page.evaluate(
        """() => { const t = (r) => { const e = document.querySelector(`[data-role=${r}] b`);
             return e ? e.textContent : null; };
           return {share: t('seg-share'), iou: t('seg-iou'), accuracy: t('seg-accuracy'),
                   text: document.querySelector('[data-role=error-analysis]').innerText}; }"""
    )


def test_segmentation_outline_and_numbers(light_page):
    net, ds = TinySeg(), Shapes()
    lens = SampleLens(net, ds, background=False, projection="pca", cache_dir=None,
                      label_names=NAMES)
    sid = 2
    lens.selected = [sid, 3]
    lens.viewed = sid
    want = hand_numbers(net, ds, sid)
    assert len(np.unique(want["pred"])) == 3 and 0.5 < want["accuracy"] < 1  # a non-trivial case
    h = light_page(lens)
    settle(lens, h)
    page = h.page
    wait_canvas(page, OVERLAY)
    page.wait_for_function("() => document.querySelector('[data-role=seg-share]') !== null")

    # the analysis is a segmentation and the controller says what the map explains
    meta = page.evaluate(
        "() => { const app = document.querySelector('.sl-root').__samplelens;"
        " const a = app.analysisOf(app.currentKey());"
        " return {task: a.meta.task, seg: a.meta.segmentation, n: a.pixels.length}; }"
    )
    assert meta["task"] == "segmentation" and meta["n"] == SIZE * SIZE
    assert meta["seg"]["cls"] == want["cls"]
    name = NAMES[want["cls"]]
    assert page.inner_text("[data-role=score]").startswith(
        f"explaining {name} over its predicted pixels · score (summed logit) "
    )
    assert page.input_value("[data-role=label]") == ""
    option = page.locator("[data-role=label] option[value='']")
    # shortened in the middle to fit the select, whole in its title
    assert option.get_attribute("title") == f"Predicted ({name})" or option.inner_text() == (
        f"Predicted ({name})"
    )
    assert option.inner_text().startswith("Predicted (") and option.inner_text().endswith(")")

    # the error panel: share, IoU, pixel accuracy; no correct/incorrect badge, no true label
    got = panel_numbers(page)
    assert got["share"] == f"{name}: {want['share'] * 100:.1f}%"
    assert got["iou"] == f"{want['iou']:.3f}"
    assert got["accuracy"] == f"{want['accuracy'] * 100:.1f}%"
    assert "of the image" in got["text"]
    assert page.locator("[data-role=badge]").count() == 0
    assert page.locator("[data-role=true-label]").count() == 0
    assert page.locator("[data-role=error-maps]").count() == 0
    assert page.locator("[data-role=topk] .sl-bar-row").count() == 3

    # the outline checkbox: shown, on by default, next to Grid
    box = page.locator("[data-role=mask-outline]")
    assert box.is_visible() and box.is_checked()
    tools = page.locator(".sl-viewer-tools").inner_text()
    assert "Grid" in tools and "Mask outline" in tools

    # the canvas: white exactly on the inner contour of the class, black on the halo
    on = pixels(page, OVERLAY)
    H, W = on.shape[:2]
    inner, outer = expected_outline(want["pred"], want["cls"], H, W)
    assert inner.sum() > 50
    white = (on[..., :3] == 255).all(-1)
    black = (on[..., :3] == 0).all(-1)
    assert np.array_equal(white, inner)
    assert np.array_equal(black, outer)
    assert canvas(page, OVERLAY)["hash"] != 0
    assert page.get_attribute(OVERLAY, "data-outline") == str(int(inner.sum()))

    # off: the plain overlay (no white, no black pixels), differing only on the outline
    box.click()
    off = pixels(page, OVERLAY)
    changed = (on != off).any(-1)
    assert changed.any() and not (changed & ~(inner | outer)).any()
    assert not (off[..., :3] == 255).all(-1).any() and not (off[..., :3] == 0).all(-1).any()
    assert page.get_attribute(OVERLAY, "data-outline") is None
    box.click()
    assert np.array_equal(pixels(page, OVERLAY), on)

    # a depth change repaints from the page and keeps the same outline
    page.click("[data-role=depth-custom]")
    settle(lens, h)
    set_slider(page, "[data-role=depth]", lens.result.depths[0])
    page.wait_for_function(
        "(d) => document.querySelector('canvas[data-role=overlay]').dataset.depth === String(d)",
        arg=lens.result.depths[0],
    )
    shallow = pixels(page, OVERLAY)
    assert np.array_equal((shallow[..., :3] == 255).all(-1), inner)
    page.click("[data-role=depth-last]")
    settle(lens, h)

    # another class: the share, IoU and the outline follow
    other = next(c for c in range(3) if c != want["cls"])
    page.select_option("[data-role=label]", str(other))
    settle(lens, h)
    assert lens.label == other
    mine = hand_numbers(net, ds, sid, other)
    page.wait_for_function(
        "(t) => { const e = document.querySelector('[data-role=seg-share] b');"
        " return e && e.textContent === t; }",
        arg=f"{NAMES[other]}: {mine['share'] * 100:.1f}%",
    )
    got = panel_numbers(page)
    assert got["iou"] == f"{mine['iou']:.3f}"
    assert got["accuracy"] == f"{want['accuracy'] * 100:.1f}%"  # the same for every class
    want_text = f"explaining {NAMES[other]} over its predicted pixels · score (summed logit) "
    assert page.inner_text("[data-role=score]").startswith(want_text)
    wait_canvas(page, OVERLAY)
    page.wait_for_function(
        "(n) => document.querySelector('canvas[data-role=overlay]').dataset.outline === String(n)",
        arg=int(expected_outline(mine["pred"], other, H, W)[0].sum()),
    )
    inner2, _ = expected_outline(mine["pred"], other, H, W)
    assert np.array_equal((pixels(page, OVERLAY)[..., :3] == 255).all(-1), inner2)

    page.select_option("[data-role=label]", "")
    settle(lens, h)
    wait_canvas(page, OVERLAY)
    page.wait_for_function(
        "(t) => { const e = document.querySelector('[data-role=seg-share] b');"
        " return e && e.textContent === t; }",
        arg=f"{name}: {want['share'] * 100:.1f}%",
    )
    screenshot(page, "segmentation-light")


def test_a_classifier_has_no_outline_checkbox(light_page):
    lens = SampleLens(fakes.TinyNet(), fakes.Blobs(12), background=False, projection="pca",
                      cache_dir=None)
    h = light_page(lens)
    settle(lens, h)
    page = h.page
    wait_canvas(page, OVERLAY)
    assert page.locator("[data-role=mask-outline]").count() == 1
    assert not page.locator("[data-role=mask-outline]").is_visible()
    assert page.locator("[data-role=seg-share]").count() == 0
    assert page.get_attribute(OVERLAY, "data-outline") is None
