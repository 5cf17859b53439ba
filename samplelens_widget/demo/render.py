"""Write the heatmaps of a few demo samples at every depth to PNG files (no Jupyter needed).

    python -m samplelens_widget.demo.render [--out samplelens-demo] [--samples 4]
        [--algorithms gradcam layercam focus_layercam] [--colormap jet] [--scale 2]

For each sample, one PNG: a row per algorithm, the input first, then the overlay at every depth
from the shallowest (left) to the deepest (right), each tile titled with its depth.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from samplelens_widget.cam import CamEngine
from samplelens_widget.data import blend
from samplelens_widget.demo import load_demo
from samplelens_widget.demo.data import ShapesDataset


def sample_sheet(
    engine: CamEngine,
    ds: ShapesDataset,
    i: int,
    label_names: Sequence[str],
    algorithms: Sequence[str],
    colormap: str,
    scale: int,
) -> Image.Image:
    image = ds.to_display(i)
    x, label = ds[i]
    rows = []
    for algorithm in algorithms:
        res = engine.explain(x, label=label, algorithm=algorithm)
        tiles = [(f"{label_names[label]} / {algorithm}", image)]
        tiles += [(f"d{d}", blend(image, res.heatmap(d)[0], colormap, 0.5)) for d in res.depths]
        rows.append(tiles)
    h, w = image.shape[:2]
    th, tw, pad = h * scale, w * scale, 14
    sheet = Image.new("RGB", (len(rows[0]) * (tw + 2), len(rows) * (th + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, tiles in enumerate(rows):
        for c, (title, tile) in enumerate(tiles):
            left, top = c * (tw + 2), r * (th + pad)
            big = Image.fromarray(tile).resize((tw, th), Image.Resampling.NEAREST)
            sheet.paste(big, (left, top + pad))
            draw.text((left + 2, top + 1), title if c else title[:22], fill="black")
    return sheet


def main(argv: Sequence[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="samplelens-demo")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--algorithms", nargs="+", default=list(CamEngine.algorithms),
                    choices=list(CamEngine.algorithms))
    ap.add_argument("--colormap", default="jet")
    ap.add_argument("--scale", type=int, default=2)
    args = ap.parse_args(argv)
    model, data, names = load_demo()
    engine = CamEngine(model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(min(args.samples, len(data["val"]))):
        path = out / f"val_{i:04d}.png"
        sample_sheet(engine, data["val"], i, names, args.algorithms, args.colormap,
                     args.scale).save(path)
        written.append(path)
        print(path)
    print(f"{len(written)} sheets in {out}/")
    return written


if __name__ == "__main__":
    main()
