"""Draw a heat-map over its radiograph with a colour bar and the probability in the caption."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from osteoscan.files import atomic_path
from osteoscan.htmlpage import SCREENING_NOTICE

DPI = 100
CAM_ALPHA = 0.45
COLOUR_MAP = "jet"
_MARGIN_IN = {"left": 0.1, "right": 1.0, "bottom": 0.5, "top": 0.5, "bar": 0.2, "gap": 0.15}
MIN_DRAWN_SIDE = 500  # smaller images are drawn enlarged (by a whole factor) so the text fits


def render_overlay(heat, out: Path) -> Path:
    """Write ``heat`` (a :class:`~osteoscan.explain.gradcam.HeatMap`) as a PNG at ``out``, the
    image drawn at its original resolution and aspect ratio (one image pixel per figure pixel,
    or a whole number of them for images under :data:`MIN_DRAWN_SIDE`); knee crops, when the
    bundle used them, are outlined with their knee's probability."""
    height, width = heat.image.shape
    zoom = max(1, -(-MIN_DRAWN_SIDE // max(height, width)))
    m = _MARGIN_IN
    img_w, img_h = zoom * width / DPI, zoom * height / DPI
    fig_w, fig_h = img_w + m["left"] + m["right"], img_h + m["bottom"] + m["top"]
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
    ax = fig.add_axes((m["left"] / fig_w, m["bottom"] / fig_h, img_w / fig_w, img_h / fig_h))
    bar_left = (m["left"] + img_w + m["gap"]) / fig_w
    cax = fig.add_axes((bar_left, m["bottom"] / fig_h, m["bar"] / fig_w, img_h / fig_h))
    ax.imshow(heat.image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    shown = ax.imshow(
        heat.cam, cmap=COLOUR_MAP, vmin=0.0, vmax=1.0, alpha=CAM_ALPHA, interpolation="nearest"
    )
    for crop, probability in zip(heat.crops, heat.knee_probabilities, strict=True):
        corner = (crop.left - 0.5, crop.top - 0.5)  # imshow puts pixel i's centre at i
        ax.add_patch(Rectangle(corner, crop.side, crop.side, fill=False, color="white", lw=1))
        ax.text(
            corner[0] + 2,
            corner[1] + 2,
            f"{crop.name}: {probability:.2f}",
            color="white",
            fontsize=7,
            va="top",
            clip_on=True,
        )
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    bar = fig.colorbar(shown, cax=cax)
    bar.set_label("Grad-CAM, relative", fontsize=8)
    threshold = "" if heat.threshold is None else f", threshold {heat.threshold:.2f}"
    fig.suptitle(
        f"P({heat.class_name}) = {heat.probability:.2f}; prediction: {heat.prediction}"
        f"{threshold} [{heat.model}]\nheat-map: evidence for {heat.class_name}",
        fontsize=9,
    )
    fig.text(0.01, 0.01, f"{Path(heat.source).name}. {SCREENING_NOTICE}", fontsize=5, wrap=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(out)
