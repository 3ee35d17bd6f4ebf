"""Draw a heat-map over its radiograph with a colour bar and the probability in the caption."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from osteoscan.files import atomic_path
from osteoscan.htmlpage import SCREENING_NOTICE

DPI = 100
CAM_ALPHA = 0.45
COLOUR_MAP = "jet"
_MARGIN_IN = {"left": 0.1, "right": 1.3, "bottom": 0.4, "top": 0.5, "bar": 0.2, "gap": 0.15}


def render_overlay(heat, out: Path) -> Path:
    """Write ``heat`` (a :class:`~osteoscan.explain.gradcam.HeatMap`) as a PNG at ``out``, the
    image drawn one image pixel per figure pixel (original resolution and aspect ratio)."""
    height, width = heat.image.shape
    m = _MARGIN_IN
    img_w, img_h = width / DPI, height / DPI
    fig_w, fig_h = img_w + m["left"] + m["right"], img_h + m["bottom"] + m["top"]
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
    ax = fig.add_axes((m["left"] / fig_w, m["bottom"] / fig_h, img_w / fig_w, img_h / fig_h))
    bar_left = (m["left"] + img_w + m["gap"]) / fig_w
    cax = fig.add_axes((bar_left, m["bottom"] / fig_h, m["bar"] / fig_w, img_h / fig_h))
    ax.imshow(heat.image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    shown = ax.imshow(
        heat.cam, cmap=COLOUR_MAP, vmin=0.0, vmax=1.0, alpha=CAM_ALPHA, interpolation="nearest"
    )
    ax.set_axis_off()
    bar = fig.colorbar(shown, cax=cax)
    bar.set_label(f"Grad-CAM evidence for '{heat.class_name}' (relative)", fontsize=8)
    threshold = "" if heat.threshold is None else f", threshold {heat.threshold:.2f}"
    fig.suptitle(
        f"P({heat.class_name}) = {heat.probability:.2f}; prediction: {heat.prediction}"
        f"{threshold} [{heat.model}]",
        fontsize=9,
    )
    fig.text(0.01, 0.01, f"{Path(heat.source).name}. {SCREENING_NOTICE}", fontsize=5, wrap=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(out)
