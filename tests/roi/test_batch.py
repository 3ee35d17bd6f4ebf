"""Reading DICOM PixelSpacing for the ROI, and locating knees in files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from osteoscan.data.synth import Anatomy, render_view
from osteoscan.roi import locate, pixel_spacing


def _knee() -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(8)
    image, (truth,) = render_view("single", 0.0, rng, 192, Anatomy.sample(rng))
    return image, truth.width


def _dicom(path: Path, pixels: np.ndarray, spacing_mm: float | None) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Modality, ds.PhotometricInterpretation = "CR", "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 8, 8, 7
    ds.PixelRepresentation = 0
    if spacing_mm is not None:
        ds.PixelSpacing = [spacing_mm, spacing_mm]
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_pixel_spacing_turns_the_joint_width_into_millimetres(tmp_path: Path) -> None:
    pixels, true_width = _knee()
    spacing = 85.0 / true_width
    path = _dicom(tmp_path / "knee.dcm", pixels, spacing)
    assert pixel_spacing(path) == (spacing, spacing)
    _, detection = locate(path)
    assert 55.0 < detection.knees[0].joint_width_mm < 115.0


def test_an_impossible_pixel_spacing_gives_no_knee_with_the_reason(tmp_path: Path) -> None:
    pixels, _ = _knee()
    _, detection = locate(_dicom(tmp_path / "huge.dcm", pixels, 3.0))
    assert not detection.found
    assert "mm wide" in detection.reason


def test_files_without_a_spacing_are_measured_in_pixels_only(tmp_path: Path) -> None:
    pixels, _ = _knee()
    png = tmp_path / "knee.png"
    Image.fromarray(pixels).save(png)
    assert pixel_spacing(png) is None
    assert pixel_spacing(_dicom(tmp_path / "plain.dcm", pixels, None)) is None
    _, detection = locate(png)
    assert detection.found and detection.knees[0].joint_width_mm is None
