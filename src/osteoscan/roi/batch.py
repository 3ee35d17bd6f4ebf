"""Find and crop the knees of every image in a file or folder; one bad file never stops the run."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from osteoscan.data.decode import DICOM_SUFFIXES, is_supported, read_image
from osteoscan.errors import BadImageError, OsteoscanError
from osteoscan.files import atomic_write, atomic_write_json, check_writable_dir
from osteoscan.roi.config import RoiConfig
from osteoscan.roi.crop import crop_box, crop_knees
from osteoscan.roi.localise import KneeDetection, find_knees

logger = logging.getLogger(__name__)

SHEET_FILE = "roi.html"
SUMMARY_FILE = "roi.json"
CROPS_DIR = "crops"


def pixel_spacing(path: Path | bytes) -> tuple[float, float] | None:
    """DICOM PixelSpacing (row, column mm) of ``path`` (or of a file's bytes, an upload), or
    None (not DICOM, or not stated)."""
    if isinstance(path, bytes):
        if path[128:132] != b"DICM":
            return None
        source = io.BytesIO(path)
    else:
        source = path
        if Path(path).suffix.lower() not in DICOM_SUFFIXES:
            with open(path, "rb") as handle:
                if handle.read(132)[128:132] != b"DICM":
                    return None
    import pydicom

    try:
        dataset = pydicom.dcmread(source, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - read_image reports unreadable files with the reason
        return None
    spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing")
    if not spacing or len(spacing) < 2:
        return None
    row, column = float(spacing[0]), float(spacing[1])
    return (row, column) if row > 0 and column > 0 else None


def locate(path: Path, config: RoiConfig | None = None) -> tuple[np.ndarray, KneeDetection]:
    """Decode ``path`` and find its knees (the DICOM pixel spacing used when stated)."""
    pixels = read_image(path)
    return pixels, find_knees(pixels, config, pixel_spacing(path))


@dataclass(frozen=True)
class RoiImage:
    """One source image's outcome: its detection and crop files, or the error that stopped it."""

    path: str
    detection: KneeDetection | None = None
    crops: tuple[str, ...] = ()
    error: str = ""

    @property
    def reason(self) -> str:
        """Why no knee was found ("" when one was)."""
        if self.error:
            return self.error
        assert self.detection is not None
        return "" if self.detection.found else f"no knee found: {self.detection.reason}"

    def to_dict(self) -> dict:
        knees = []
        if self.detection is not None:
            for knee in self.detection.knees:
                knees.append(
                    {
                        "side": knee.side,
                        "centre_x": round(knee.centre_x, 2),
                        "centre_y": round(knee.centre_y, 2),
                        "joint_width": round(knee.joint_width, 2),
                        "joint_width_mm": knee.joint_width_mm,
                        "confidence": knee.confidence,
                    }
                )
        return {"path": self.path, "knees": knees, "crops": list(self.crops), "reason": self.reason}


@dataclass(frozen=True)
class RoiReport:
    """Everything ``osteoscan roi`` did: per image outcomes, and where the sheet and crops are."""

    images: tuple[RoiImage, ...]
    config: RoiConfig
    out_dir: Path
    sheet: Path
    summary: Path
    thumbnails: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def found(self) -> int:
        return sum(1 for image in self.images if not image.reason)

    @property
    def failures(self) -> tuple[RoiImage, ...]:
        return tuple(image for image in self.images if image.reason)


def image_paths(source: Path) -> list[Path]:
    """``source`` itself, or every supported image below the folder, sorted."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise BadImageError(f"{source}: no such file or folder; give an image or a folder")
    paths = sorted(p for p in source.rglob("*") if p.is_file() and is_supported(p))
    if not paths:
        raise BadImageError(f"{source}: no supported images in this folder")
    return paths


def run_roi(
    source: Path,
    out_dir: Path,
    config: RoiConfig | None = None,
    size: int = 224,
    write_crops: bool = True,
) -> RoiReport:
    """Find the knees of every image under ``source``; write crops, ``roi.json`` and the
    contact sheet ``roi.html`` (each source with its boxes, failures listed with reasons)."""
    from osteoscan.roi.sheet import contact_sheet, thumbnail

    config = config or RoiConfig()
    source = Path(source)
    paths = image_paths(source)
    out_dir = check_writable_dir(out_dir, "--out")
    root = source if source.is_dir() else source.parent
    results, thumbs = [], {}
    for path in paths:
        relative = path.relative_to(root).as_posix()
        try:
            pixels, detection = locate(path, config)
        except OsteoscanError as exc:
            logger.debug("%s", exc)  # listed with the other failures at the end
            results.append(RoiImage(relative, error=str(exc)))
            continue
        written = []
        if write_crops:
            stem = relative.rsplit(".", 1)[0]
            for crop in crop_knees(pixels, detection, config, size):
                name = f"{CROPS_DIR}/{stem}__{crop.name.replace(' ', '')}.png"
                atomic_write(out_dir / name, _png(crop.pixels))
                written.append(name)
        boxes = [crop_box(knee, config) for knee in detection.knees]
        thumbs[relative] = thumbnail(pixels, detection, boxes)
        results.append(RoiImage(relative, detection, tuple(written)))
    report = RoiReport(
        tuple(results), config, out_dir, out_dir / SHEET_FILE, out_dir / SUMMARY_FILE, thumbs
    )
    atomic_write_json(
        report.summary,
        {
            "source": str(source),
            "config": config.to_dict(),
            "images": len(results),
            "found": report.found,
            "results": [image.to_dict() for image in results],
        },
    )
    atomic_write(report.sheet, contact_sheet(report))
    logger.info("knees found in %d of %d images", report.found, len(results))
    return report


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.round(pixels * 255.0).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
