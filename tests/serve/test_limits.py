"""Type by content, and decoding from memory giving exactly what decoding the file gives."""

from __future__ import annotations

import numpy as np
import pytest

from osteoscan.data.decode import read_image, read_image_bytes
from osteoscan.errors import BadImageError
from osteoscan.serve.limits import sniff_type
from tests.serve.conftest import jpeg_bytes, png_bytes

PIXELS = (np.random.default_rng(1).random((50, 70)) * 255).astype(np.uint8)


def test_sniff_type_reads_the_magic_bytes(dicom_bytes):
    assert sniff_type(png_bytes(PIXELS)) == "PNG"
    assert sniff_type(jpeg_bytes(PIXELS)) == "JPEG"
    assert sniff_type(dicom_bytes) == "DICOM"
    assert sniff_type(b"II*\x00rest") == sniff_type(b"MM\x00*rest") == "TIFF"
    assert sniff_type(b"BM" + bytes(60)) == "BMP"
    for other in (b"", b"GIF89a", b"%PDF-1.7", b"<html>", bytes(200)):
        assert sniff_type(other) is None


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".dcm"])
def test_bytes_decode_like_the_file(tmp_path, suffix, dicom_bytes):
    data = {".png": png_bytes(PIXELS), ".jpg": jpeg_bytes(PIXELS), ".dcm": dicom_bytes}[suffix]
    path = tmp_path / f"knee{suffix}"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_image_bytes(data, path.name), read_image(path))


def test_bytes_errors_name_the_upload(dicom_bytes):
    with pytest.raises(BadImageError, match=r"^scan\.png: image is corrupt or truncated"):
        read_image_bytes(png_bytes(PIXELS)[:300], "scan.png")
    with pytest.raises(BadImageError, match=r"^x\.dcm: DICOM file has no pixel data"):
        read_image_bytes(bytes(128) + b"DICM" + b"\x02\x00" * 4, "x.dcm")
    with pytest.raises(BadImageError, match=r"^cut\.dcm: "):
        read_image_bytes(dicom_bytes[: len(dicom_bytes) // 2], "cut.dcm")
