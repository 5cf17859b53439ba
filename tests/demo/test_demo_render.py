"""The engine-only main job: PNG sheets of the heatmaps at every depth."""

from __future__ import annotations

import numpy as np
from PIL import Image

from samplelens_widget.cam import CamEngine
from samplelens_widget.demo import load_demo
from samplelens_widget.demo.render import main


def test_render_writes_one_sheet_per_sample_with_a_tile_per_depth(tmp_path):
    written = main(["--out", str(tmp_path), "--samples", "2", "--algorithms", "gradcam",
                    "layercam", "--scale", "1"])
    assert [p.name for p in written] == ["val_0000.png", "val_0001.png"]
    model, data, _ = load_demo()
    n_depths = len({i.depth for i in CamEngine(model).layers(data["val"][0][0])})
    sheet = np.asarray(Image.open(written[0]))
    # tiles of 64 px plus a 2 px gap: the input, then one per depth; a 14 px title per row
    assert sheet.shape == (2 * (64 + 14), (1 + n_depths) * (64 + 2), 3)
    # the input tile is the sample's own picture
    np.testing.assert_array_equal(sheet[14:78, :64], data["val"].to_display(0))
