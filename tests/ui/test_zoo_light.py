"""A real timm ViT (random weights, a non-square 160x224 input: a 10x14 patch grid) in the real
bundle on the light page: the slider walks its transformer blocks, the controller says each
layer's layout, and the overlay covers the whole input."""

from __future__ import annotations

import numpy as np
import pytest
from harness import screenshot
from widget_helpers import canvas, pixels, set_slider, settle, wait_canvas

from samplelens_widget import SampleLens
from tests.zoo.models import ZOO, Images, build

pytestmark = pytest.mark.ui

OVERLAY = "canvas[data-role=overlay]"


def test_a_vit_walks_its_blocks_on_the_page(light_page):
    z = next(z for z in ZOO if z.name == "timm vit_tiny_patch16_224")
    lens = SampleLens(build(z), Images(z.size, 6, seed=5), projection="pca", cache_dir=None)
    h = light_page(lens)
    settle(lens, h)
    wait_canvas(h.page, OVERLAY)
    page = h.page
    page.click("[data-role=depth-custom]")
    settle(lens, h)
    res = lens.result
    block = next(d for d in res.depths if res.layer_at(d).name == "blocks.5")
    set_slider(page, "[data-role=depth]", block)
    text = page.inner_text("[data-role=depth-text]")
    # the name may be shortened in the middle to fit; its full form is the readout's title
    full = page.locator("[data-role=depth-text]").evaluate(
        "e => [e.title, ...[...e.querySelectorAll('[title]')].map(c => c.title)].join(' ')"
    )
    assert "blocks.5" in full, full
    assert f"d{block} · " in text and "192×10×14" in text and "tokens (1 prefix + 10x14)" in text
    c = canvas(page)
    assert c["depth"] == str(block)
    img = pixels(page)
    assert img.shape[1] / img.shape[0] == pytest.approx(224 / 160, rel=0.02)
    assert np.ptp(img[..., :3]) > 0
    screenshot(page, "zoo-vit-light")
    lens.close()
