"""The ROI contact sheet: every source image with its joint boxes, failures first with reasons."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from osteoscan.htmlpage import page, png_figure, table
from osteoscan.roi.localise import KneeDetection

if TYPE_CHECKING:
    from osteoscan.roi.batch import RoiReport

THUMBNAIL_SIDE = 240


def thumbnail(
    pixels: np.ndarray, detection: KneeDetection, boxes: list[tuple[float, float, float]]
) -> bytes:
    """A PNG of the source (longer side ``THUMBNAIL_SIDE``) with each ROI square in red and
    each measured joint line in green."""
    image = Image.fromarray(np.round(pixels * 255.0).astype(np.uint8)).convert("RGB")
    scale = THUMBNAIL_SIDE / max(image.size)
    image = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
        Image.Resampling.BILINEAR,
    )
    draw = ImageDraw.Draw(image)
    for knee, (left, top, side) in zip(detection.knees, boxes, strict=True):
        draw.rectangle(
            [left * scale, top * scale, (left + side) * scale, (top + side) * scale],
            outline=(230, 40, 40),
            width=2,
        )
        half = knee.joint_width / 2
        y = (knee.centre_y + 0.5) * scale
        draw.line(
            [((knee.centre_x + 0.5 - half) * scale, y), ((knee.centre_x + 0.5 + half) * scale, y)],
            fill=(40, 220, 40),
            width=1,
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def contact_sheet(report: RoiReport) -> str:
    """The HTML page: counts, the failures table, then one figure per image."""
    images = report.images
    body = [
        f"<p>Knees found in {report.found} of {len(images)} images. Red: the cropped square "
        f"({report.config.roi_scale:g} joint widths); green: the measured joint line. Check "
        "that every square is centred on the joint space.</p>"
    ]
    if report.failures:
        rows = [(image.path, image.reason) for image in report.failures]
        body.append("<h2>No knee found</h2>")
        body.append(table(("image", "reason"), rows))
    body.append("<h2>Images</h2>")
    ordered = sorted(images, key=lambda image: (not image.reason, image.path))
    for image in ordered:
        png = report.thumbnails.get(image.path)
        if png is None:
            continue
        if image.reason:
            caption = f"{image.path}: {image.reason}"
        else:
            assert image.detection is not None
            knees = ", ".join(
                f"{knee.label} {knee.confidence:.2f}" for knee in image.detection.knees
            )
            caption = f"{image.path}: {knees}"
        body.append(png_figure(png, caption))
    return page("Knee ROI contact sheet", body)
