"""The picture a saved notebook keeps of a SampleLens, for where the widget cannot run.

A widget's output is a mime bundle whose ``application/vnd.jupyter.widget-view+json`` names a
model that lives only while its kernel does. Reopened with a new kernel, JupyterLab and Notebook 7
still choose that mime type (the widget renderer ranks first and never falls back) and show
"Error displaying widget: model not found"; ``nbconvert --to html`` (nbviewer) skips it when the
notebook holds no widget state and shows the bundle's next mime type, which for a plain
widget is ``text/plain``: ``<...SampleLens object at 0x...>``.

So displaying a ``SampleLens`` publishes two outputs (:func:`repr_mimebundle`):

1. the **snapshot**, a ``display_data`` with a display id the lens owns: the overlay of the
   viewed sample at the shown depth with a caption (sample, label explained, depth and layer,
   algorithm) drawn under it, as ``text/html`` (the picture, the line how to bring the widget
   back, and a small ``<style>``), ``image/png`` and ``text/plain``. When the view changes
   (sample, label, depth, algorithm, ...) the lens replaces it with ``update_display``; the page
   then holds the new picture and a save writes it into the ``.ipynb``.
2. the **widget** itself, its ``text/plain`` :data:`WIDGET_TEXT` (not the object's repr).

The ``<style>`` (trusted HTML only, as in a notebook the front end ran or saved itself) hides,
within one output area, the snapshot while the live widget (``.sl-root``) is drawn right after it,
and the widget's output while it holds no widget (its model is gone: the renderer's "Loading
widget..." / "Error displaying widget" text, or nbconvert's ``text/plain``). In an untrusted
notebook JupyterLab renders only safe mime types: the ``image/png`` (caption in its pixels) and
the widget output's ``text/plain`` line.
"""

from __future__ import annotations

import base64
import html
import io
import threading
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

if TYPE_CHECKING:
    from samplelens_widget.widget import SampleLens

__all__ = ["RUN_LINE", "WIDGET_TEXT", "Snapshot", "repr_mimebundle"]

RUN_LINE = "Run this cell to bring the interactive SampleLens back."
#: the widget output's own ``text/plain`` (shown where neither the widget nor HTML styles run)
WIDGET_TEXT = "SampleLens: the interactive widget, live while its kernel runs."
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: the attribute that marks a snapshot's HTML (the style's selectors start from it)
MARK = "data-samplelens-snapshot"
#: the traits whose change changes the picture
VIEW_TRAITS = (
    "viewed", "label", "contrast", "algorithm", "depth", "connection", "slice", "model_name",
    "colormap", "opacity",
)
#: the picture's longest side is brought near this by an integer factor (pixels)
TARGET_SIDE = 256
MIN_WIDTH = 320  # room for the caption
DEBOUNCE_S = 0.3

_CHILD = ".jp-OutputArea-child"
_STYLE = (
    # live: the widget is drawn right after the snapshot: the snapshot is hidden
    f"{_CHILD}:has([{MARK}]):has(+ {_CHILD} .sl-root){{display:none}}"
    # no live widget after it (the model is gone, or a static export): the widget's output
    # (an error, "Loading widget...", or the text line) is hidden; the snapshot says it all
    f"{_CHILD}:has([{MARK}]) + {_CHILD}:not(:has(.sl-root)){{display:none}}"
    f"[{MARK}] img{{image-rendering:pixelated;max-width:100%;height:auto}}"
    f"[{MARK}] .sl-snapshot-run{{margin:4px 0 0;color:#555;font-style:italic}}"
)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _wrap(text: str, font: Any, width: int, draw: ImageDraw.ImageDraw) -> list[str]:
    lines: list[str] = []
    for part in text.split("\n"):
        line = ""
        for word in part.split(" "):
            trial = f"{line} {word}".strip()
            if line and draw.textlength(trial, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def scale_of(shape: tuple[int, ...]) -> tuple[int, int]:
    """(up, down): the integer factors the overlay is enlarged or reduced by."""
    side = max(shape[:2])
    if side <= TARGET_SIDE:
        return max(1, TARGET_SIDE // side), 1
    return 1, max(1, round(side / TARGET_SIDE))


def picture(overlay: np.ndarray, caption: str) -> Image.Image:
    """The overlay enlarged by an integer factor (nearest: each pixel a block of the same
    colour) or reduced, with ``caption`` drawn under it on white."""
    img = Image.fromarray(overlay)
    up, down = scale_of(overlay.shape)
    if up > 1:
        img = img.resize((img.width * up, img.height * up), Image.Resampling.NEAREST)
    elif down > 1:
        img = img.reduce(down)
    font = _font(12)
    width = max(img.width, MIN_WIDTH)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = _wrap(caption, font, width - 8, probe)
    line_h = 15
    out = Image.new("RGB", (width, img.height + 6 + line_h * len(lines)), "white")
    out.paste(img, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((4, img.height + 3 + i * line_h), line, fill=(34, 34, 34), font=font)
    return out


def png(image: Image.Image, caption: str) -> bytes:
    """PNG bytes (lossless: the overlay's exact colours), the caption also in the file's
    ``Description`` text."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Description", caption)
    info.add_text("Software", "samplelens-widget")
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True, pnginfo=info)
    return buf.getvalue()


def _name(lens: SampleLens, k: int, index: int) -> str:
    names = lens._session.label_names(k)
    return names[index] if 0 <= index < len(names) else f"class {index}"


def caption(lens: SampleLens) -> str:
    """What the picture shows: sample, its true label, the label explained, algorithm, depth."""
    res = lens.result
    if res is None or lens.viewed is None:
        raise ValueError("no sample is viewed")
    k = int(res.num_classes)
    parts = [f"sample {lens.viewed}" + (f" ({lens.slice})" if len(lens._session.slices) > 1
                                          else "")]
    true = _true_label(lens)
    if true is not None:
        parts.append(f"true: {_name(lens, k, true)}")
    pred = int(res.predictions[0])
    if lens.label == "loss":
        what = "the loss against its true label"
    elif lens.label is None:
        what = f"the predicted class ({_name(lens, k, pred)})"
    else:
        what = _name(lens, k, int(lens.label))
        if lens.label != pred:
            what += f" (predicted: {_name(lens, k, pred)})"
    if lens.contrast is not None and lens.label != "loss":
        what += f" rather than {_name(lens, k, int(lens.contrast))}"
    parts.append(f"explains {what}")
    depth = res.depths[-1] if lens.depth is None else int(lens.depth)
    algo = lens._info.get("algorithms") or []
    title = dict((a, t) for a, t in algo).get(lens.algorithm, lens.algorithm)
    parts.append(f"{title}, depth {depth} of {res.depths[-1]} ({res.layer_at(depth).name})")
    if len(lens._session.models) > 1:
        parts.append(f"model {lens.model_name}")
    return " · ".join(parts)


def _true_label(lens: SampleLens) -> int | None:
    label = getattr(lens.sample, "label", None)
    try:
        arr = np.asarray(label.detach().cpu() if isinstance(label, torch.Tensor) else label)
    except Exception:
        return None
    if arr.size == 1 and np.issubdtype(arr.dtype, np.integer):
        return int(arr.reshape(()))
    return None


def bundle(lens: SampleLens, snapshot_id: str) -> dict[str, Any]:
    """The snapshot's mime bundle: ``text/html``, ``image/png`` (base64) and ``text/plain``."""
    try:
        text = caption(lens)
        data = png(picture(lens.overlay(), text), text)
    except Exception as exc:  # no picture: the words alone (never an error in the output)
        why = f"SampleLens: no picture of the view ({type(exc).__name__}: {exc})."
        body = f"<p>{html.escape(why)}</p>"
        return {
            "text/html": _html(snapshot_id, body),
            "text/plain": f"{why} {RUN_LINE}",
        }
    b64 = base64.b64encode(data).decode("ascii")
    alt = html.escape(f"SampleLens, last view: {text}", quote=True)
    img = f'<img src="data:image/png;base64,{b64}" alt="{alt}" title="{alt}">'
    return {
        "text/html": _html(snapshot_id, img),
        "image/png": b64,
        "text/plain": f"SampleLens, last view: {text}. {RUN_LINE}",
    }


def _html(snapshot_id: str, body: str) -> str:
    return (
        f'<div {MARK}="{snapshot_id}" class="sl-snapshot"><style>{_STYLE}</style>{body}'
        f'<p class="sl-snapshot-run">{html.escape(RUN_LINE)}</p></div>'
    )


class Snapshot:
    """One lens's snapshot: its display id, and the updates that follow the view."""

    def __init__(self, lens: SampleLens) -> None:
        self.lens = lens
        self.display_id = f"samplelens-snapshot-{uuid.uuid4().hex}"
        self.shown = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        lens.observe(self._changed, names=list(VIEW_TRAITS))

    def bundle(self) -> dict[str, Any]:
        return bundle(self.lens, self.display_id)

    def display(self) -> None:
        """Publish the snapshot (a ``display_data`` with this lens's display id)."""
        from IPython.display import display

        display(self.bundle(), raw=True, display_id=self.display_id)  # type: ignore[no-untyped-call]
        self.shown = True

    def _changed(self, _change: dict[str, Any]) -> None:
        """A view trait changed: replace the snapshot shortly after the last of a burst (a
        timer thread: the trait's own thread answers the page meanwhile)."""
        if not self.shown:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(DEBOUNCE_S, self.update)
            self._timer.daemon = True
            self._timer.start()

    def update(self) -> None:
        """Replace every output of this snapshot with the current view (no-op once the lens is
        closed)."""
        from IPython.display import update_display

        if getattr(self.lens, "comm", None) is None:
            return
        data = self.bundle()
        if getattr(self.lens, "comm", None) is None:  # closed meanwhile: keep the last picture
            return
        update_display(data, raw=True, display_id=self.display_id)  # type: ignore[no-untyped-call]


def repr_mimebundle(
    lens: SampleLens, widget_bundle: Any, include: Any = None, exclude: Any = None
) -> Any:
    """The widget's bundle with :data:`WIDGET_TEXT` as its ``text/plain``, after publishing the
    snapshot (only where a front end asks for the widget view, in IPython)."""
    if widget_bundle is None:
        return None
    data, metadata = widget_bundle if isinstance(widget_bundle, tuple) else (widget_bundle, {})
    data = {**data, "text/plain": WIDGET_TEXT}
    wanted = WIDGET_MIME in data and (include is None or WIDGET_MIME in include)
    wanted = wanted and getattr(lens, "comm", None) is not None  # not for a closed lens
    if wanted and not (exclude and WIDGET_MIME in exclude):
        from IPython.core.interactiveshell import InteractiveShell

        if InteractiveShell.initialized():
            snap = getattr(lens, "_saved_view", None)
            if snap is None:
                snap = lens._saved_view = Snapshot(lens)
            snap.display()
    return data, metadata
