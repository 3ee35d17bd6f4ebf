"""Small image and DICOM writers shared by the data-layer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def write_dicom(
    path: Path,
    stored: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    signed: bool = False,
    **attributes,
) -> Path:
    """An uncompressed single- or multi-frame DICOM file holding ``stored`` as its pixel data.

    ``attributes`` are set on the dataset as given (``RescaleSlope=2``, ``WindowCenter=40``, ...).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    colour = photometric not in ("MONOCHROME1", "MONOCHROME2")
    frames = stored.shape[:-3] if colour else stored.shape[:-2]
    ds.Rows, ds.Columns = stored.shape[-3:-1] if colour else stored.shape[-2:]
    if frames:
        ds.NumberOfFrames = int(np.prod(frames))
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = stored.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_image(path: Path, pixels: np.ndarray, mode: str | None = None, **save_options) -> Path:
    """Save ``pixels`` with Pillow (optionally converted to ``mode``) and return the path."""
    img = Image.fromarray(pixels)
    if mode is not None:
        img = img.convert(mode)
    img.save(path, **save_options)
    return path


@pytest.fixture
def image_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``image_file(pixels, name, mode=None, **save_options)`` writes into tmp_path."""

    def make(pixels: np.ndarray, name: str, mode: str | None = None, **save_options) -> Path:
        return write_image(tmp_path / name, pixels, mode, **save_options)

    return make


@pytest.fixture
def dicom_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``dicom_file(stored, name="x.dcm", **options)`` writes a DICOM in tmp_path."""

    def make(stored: np.ndarray, name: str = "image.dcm", **options) -> Path:
        return write_dicom(tmp_path / name, stored, **options)

    return make
