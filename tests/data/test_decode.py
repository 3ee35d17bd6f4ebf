"""read_image: every supported file decodes to the one intensity contract, bad files say why."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from osteoscan.data.decode import (
    MIN_SIDE,
    decode,
    is_supported,
    read_image,
    read_image_with_info,
)
from osteoscan.data.pixels import letterbox
from osteoscan.errors import BadImageError

HEIGHT, WIDTH = 40, 64


def ramp(top: int = 255, dtype=np.uint8, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A left-to-right ramp from 0 to ``top``, identical in every row."""
    return np.tile(np.linspace(0, top, width).round().astype(dtype), (height, 1))


def dicom_linear_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 linear VOI window, with output range [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    below = x <= center - 0.5 - (width - 1) / 2
    above = x > center - 0.5 + (width - 1) / 2
    inside = (x - (center - 0.5)) / (width - 1) + 0.5
    return np.where(below, 0.0, np.where(above, 1.0, inside))


def stored_mode(path: Path) -> str:
    with Image.open(path) as img:
        return img.mode


def assert_contract(pixels: np.ndarray, shape: tuple[int, int] = (HEIGHT, WIDTH)) -> None:
    assert pixels.dtype == np.float32
    assert pixels.shape == shape
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0


# --- raster formats -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ramp.png", "ramp.bmp", "ramp.tif"])
def test_8bit_gray_ramp_decodes_exactly(image_file, name: str) -> None:
    stored = ramp()
    pixels, info = read_image_with_info(image_file(stored, name))
    assert_contract(pixels)
    np.testing.assert_allclose(pixels, stored / 255.0, atol=1e-6)
    assert pixels[0, -1] == 1.0 and pixels[0, 0] == 0.0
    assert info.bit_depth == 8 and (info.width, info.height) == (WIDTH, HEIGHT)


@pytest.mark.parametrize("name", ["ramp16.png", "ramp16.tif"])
def test_16bit_gray_is_scaled_by_65535(image_file, name: str) -> None:
    stored = ramp(65535, np.uint16)
    stored[:, :3] = [0, 32768, 65535]
    path = image_file(stored, name)
    assert stored_mode(path) == "I;16"
    pixels, info = read_image_with_info(path)
    assert_contract(pixels)
    assert pixels[0, 0] == 0.0 and pixels[0, 2] == 1.0
    assert pixels[0, 1] == pytest.approx(0.5, abs=1e-4)
    np.testing.assert_allclose(pixels, stored / 65535.0, atol=1e-6)
    assert info.bit_depth == 16


def test_dark_16bit_png_stays_dark(image_file) -> None:
    """A 16-bit image whose values happen to stay below 256 is not mistaken for 8-bit."""
    stored = ramp(200, np.uint16)
    pixels = read_image(image_file(stored, "dark16.png"))
    assert pixels.max() == pytest.approx(200 / 65535.0)


@pytest.mark.parametrize("name", ["gray.png", "gray.bmp", "gray.tif"])
def test_rgb_with_gray_content_equals_l_decode(image_file, name: str) -> None:
    stored = ramp()
    as_l = read_image(image_file(stored, "l_" + name))
    as_rgb = read_image(image_file(stored, "rgb_" + name, mode="RGB"))
    np.testing.assert_array_equal(as_rgb, as_l)


def test_jpeg_gray_and_rgb_decode_close_to_source(image_file) -> None:
    stored = ramp()
    as_l = read_image(image_file(stored, "l.jpg", quality=95))
    as_rgb = read_image(image_file(stored, "rgb.jpg", mode="RGB", quality=95))
    assert_contract(as_l)
    assert np.abs(as_l - stored / 255.0).mean() < 2 / 255
    assert np.abs(as_rgb - as_l).mean() < 2 / 255


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_black(tmp_path: Path, mode: str) -> None:
    gray = np.full((HEIGHT, WIDTH), 200, np.uint8)
    alpha = np.zeros((HEIGHT, WIDTH), np.uint8)
    alpha[:, WIDTH // 3 :] = 128
    alpha[:, 2 * WIDTH // 3 :] = 255
    channels = [gray, gray, gray, alpha] if mode == "RGBA" else [gray, alpha]
    img = Image.merge(mode, [Image.fromarray(c) for c in channels])
    path = tmp_path / f"alpha_{mode}.png"
    img.save(path)
    pixels = read_image(path)
    assert_contract(pixels)
    assert np.all(pixels[:, 0] == 0.0)  # fully transparent: background
    assert pixels[0, WIDTH // 2] == pytest.approx(200 * 128 / 255 / 255, abs=2 / 255)
    assert pixels[0, -1] == pytest.approx(200 / 255, abs=1 / 255)


def test_palette_image_decodes_through_its_palette(tmp_path: Path) -> None:
    index = (ramp(3) % 4).astype(np.uint8)
    img = Image.fromarray(index, mode="L").convert("P")
    img.putpalette([255, 255, 255, 128, 128, 128, 60, 60, 60, 0, 0, 0] + [0] * (256 * 3 - 12))
    img.putdata(list(index.ravel()))
    path = tmp_path / "palette.png"
    img.save(path)
    assert stored_mode(path) == "P"
    expected = np.array([255, 128, 60, 0], np.float32)[index] / 255.0
    np.testing.assert_allclose(read_image(path), expected, atol=1e-6)


def test_palette_transparent_entry_is_black(tmp_path: Path) -> None:
    index = np.zeros((HEIGHT, WIDTH), np.uint8)
    index[:, WIDTH // 2 :] = 1
    img = Image.fromarray(index, mode="L").convert("P")
    img.putpalette([255, 255, 255, 200, 200, 200] + [0] * (256 * 3 - 6))
    img.putdata(list(index.ravel()))
    path = tmp_path / "palette_alpha.png"
    img.save(path, transparency=0)
    pixels = read_image(path)
    assert np.all(pixels[:, : WIDTH // 2] == 0.0)
    assert pixels[0, -1] == pytest.approx(200 / 255, abs=1e-6)


@pytest.mark.parametrize("name", ["cmyk.jpg", "cmyk.tif"])
def test_cmyk_gray_content_decodes_to_gray(image_file, name: str) -> None:
    stored = ramp()
    path = image_file(stored, name, mode="CMYK", quality=100)
    assert stored_mode(path) == "CMYK"
    pixels = read_image(path)
    assert_contract(pixels)
    assert np.abs(pixels - stored / 255.0).max() <= 2 / 255


@pytest.mark.parametrize(
    ("orientation", "stored_rotation"),
    [
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_90),
        (8, Image.Transpose.ROTATE_270),
    ],
)
def test_exif_orientation_is_honoured(tmp_path: Path, orientation, stored_rotation) -> None:
    upright = np.zeros((HEIGHT, WIDTH), np.uint8)
    upright[:12, :20] = 255  # a bright block in the top-left corner
    stored = Image.fromarray(upright).transpose(stored_rotation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"orientation{orientation}.jpg"
    stored.convert("RGB").save(path, exif=exif, quality=95)
    pixels, info = read_image_with_info(path)
    assert_contract(pixels)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert np.abs(pixels - upright / 255.0).mean() < 0.02
    assert pixels[:12, :20].mean() > 0.9 and pixels[HEIGHT // 2 :, WIDTH // 2 :].max() < 0.1


# --- DICOM ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_dicom_full_range_window_scales_by_bit_depth(dicom_file, bits: int) -> None:
    top = 2**bits - 1
    stored = ramp(top, np.uint8 if bits == 8 else np.uint16)
    path = dicom_file(stored, bits_stored=bits, WindowCenter=2 ** (bits - 1), WindowWidth=2**bits)
    pixels, info = read_image_with_info(path)
    assert_contract(pixels)
    np.testing.assert_allclose(pixels, stored / top, atol=1e-6)
    assert info.format == "DICOM" and info.bit_depth == bits


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_dicom_without_window_uses_robust_range(dicom_file, bits: int) -> None:
    """A burned-in marker at full brightness must not squash the contrast of the anatomy."""
    top = 2**bits - 1
    stored = ramp(top // 2, np.uint8 if bits == 8 else np.uint16) + top // 4
    stored[0, :5] = top  # 5 of 2,560 pixels: under the 0.5 % tail
    pixels = read_image(dicom_file(stored, bits_stored=bits))
    assert_contract(pixels)
    assert pixels[1:, 0].max() < 0.02
    assert pixels[1:, -1].min() > 0.98
    assert pixels[1, WIDTH // 2] == pytest.approx(0.5, abs=0.03)
    assert np.all(pixels[0, :5] == 1.0)


def test_dicom_12bit_ignores_bits_above_bits_stored(dicom_file) -> None:
    clean = ramp(4095, np.uint16)
    dirty = clean | 0xF000  # overlay bits in the unused high nibble
    window = {"WindowCenter": 2048, "WindowWidth": 4096}
    from_clean = read_image(dicom_file(clean, "clean.dcm", bits_stored=12, **window))
    from_dirty = read_image(dicom_file(dirty, "dirty.dcm", bits_stored=12, **window))
    np.testing.assert_array_equal(from_dirty, from_clean)


@pytest.mark.parametrize("window", [{}, {"WindowCenter": 1500, "WindowWidth": 1000}])
def test_monochrome1_is_inverted(dicom_file, window) -> None:
    stored = ramp(4095, np.uint16)
    mono2 = read_image(dicom_file(stored, "m2.dcm", bits_stored=12, **window))
    mono1 = read_image(
        dicom_file(stored, "m1.dcm", bits_stored=12, photometric="MONOCHROME1", **window)
    )
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)
    assert mono2[0, -1] > mono2[0, 0]  # bright stays bright in MONOCHROME2


def test_dicom_rescale_then_window_in_rescaled_units(dicom_file) -> None:
    stored = ramp(2000, np.uint16)
    stored[0, :4] = [262, 512, 700, 762]
    path = dicom_file(
        stored, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=0, WindowWidth=1001
    )
    pixels = read_image(path)
    # stored 262 -> -500, 512 -> 0, 700 -> 376, 762 -> 500 (rescaled units)
    np.testing.assert_allclose(pixels[0, :4], [0.0005, 0.5005, 0.8765, 1.0], atol=1e-6)
    expected = dicom_linear_window(2.0 * stored - 1024, center=0, width=1001)
    np.testing.assert_allclose(pixels, expected, atol=1e-6)


def test_dicom_first_of_several_windows_is_used(dicom_file) -> None:
    stored = ramp(4095, np.uint16)
    path = dicom_file(stored, bits_stored=12, WindowCenter=[1000, 3000], WindowWidth=[500, 100])
    expected = dicom_linear_window(stored, center=1000, width=500)
    np.testing.assert_allclose(read_image(path), expected, atol=1e-6)


def test_signed_dicom_with_window(dicom_file) -> None:
    stored = np.tile(np.arange(-320, 320, 10, dtype=np.int16), (HEIGHT, 1))
    pixels = read_image(dicom_file(stored, signed=True, WindowCenter=0, WindowWidth=641))
    expected = dicom_linear_window(stored, center=0, width=641)
    np.testing.assert_allclose(pixels, expected, atol=1e-6)
    assert pixels[0, 0] == pytest.approx((-320 + 0.5) / 640 + 0.5)


def test_signed_12bit_dicom_is_sign_extended(dicom_file) -> None:
    values = np.tile(np.arange(-32, 32, dtype=np.int16), (HEIGHT, 1))
    stored = (values.astype(np.int32) & 0x0FFF).astype(np.uint16)  # 12-bit two's complement
    path = dicom_file(stored, bits_stored=12, signed=True, WindowCenter=0, WindowWidth=64)
    np.testing.assert_allclose(
        read_image(path), dicom_linear_window(values, center=0, width=64), atol=1e-6
    )


def voi_lut_item(descriptor: list[int], table: np.ndarray, vr: str) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = descriptor
    data = table.astype("<u2").tobytes() if vr == "OW" else [int(v) for v in table]
    item.add_new(0x00283006, vr, data)  # LUTData
    return item


@pytest.mark.parametrize("vr", ["US", "OW"])
def test_voi_lut_sequence_is_applied(dicom_file, vr: str) -> None:
    stored = ramp(4095, np.uint16)
    table = np.round(4095 * np.sqrt(np.arange(4096) / 4095)).astype(np.uint16)
    item = voi_lut_item([4096, 0, 12], table, vr)
    path = dicom_file(stored, bits_stored=12, VOILUTSequence=Sequence([item]))
    np.testing.assert_allclose(read_image(path), table[stored] / 4095.0, atol=1e-6)


def test_voi_lut_with_8bit_entries_covers_12bit_input(dicom_file) -> None:
    """An 8-bit-output LUT with 4,096 entries: inputs above 255 must not wrap around."""
    stored = ramp(4095, np.uint16)
    table = (np.arange(4096) // 16).astype(np.uint16)
    item = voi_lut_item([4096, 0, 8], table, "US")
    pixels = read_image(dicom_file(stored, bits_stored=12, VOILUTSequence=Sequence([item])))
    np.testing.assert_allclose(pixels, table[stored] / 255.0, atol=1e-6)
    assert pixels[0, -1] == 1.0


def test_voi_lut_first_mapped_value_and_clamping(dicom_file) -> None:
    stored = ramp(255)
    table = np.arange(100, dtype=np.uint16) * 2  # inputs 50..149 -> 0..198
    item = voi_lut_item([100, 50, 8], table, "US")
    pixels = read_image(dicom_file(stored, VOILUTSequence=Sequence([item])))
    expected = table[np.clip(stored.astype(int) - 50, 0, 99)] / 255.0
    np.testing.assert_allclose(pixels, expected, atol=1e-6)
    assert pixels[0, 0] == 0.0 and pixels[0, -1] == pytest.approx(198 / 255)


def test_dicom_without_extension_is_recognised_by_preamble(dicom_file) -> None:
    stored = ramp(4095, np.uint16)
    path = dicom_file(stored, "IM000001", bits_stored=12, WindowCenter=2048, WindowWidth=4096)
    assert is_supported(path)
    pixels, info = read_image_with_info(path)
    assert info.format == "DICOM"
    np.testing.assert_allclose(pixels, stored / 4095.0, atol=1e-6)


# --- bad input ------------------------------------------------------------------------------


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )
    return path


def truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def bad_missing(tmp_path, image_file, dicom_file):
    return tmp_path / "missing.png"


def bad_empty(tmp_path, image_file, dicom_file):
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path / "empty.png"


def bad_truncated_png(tmp_path, image_file, dicom_file):
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    return truncated(image_file(noise, "truncated.png"))


def bad_truncated_jpeg(tmp_path, image_file, dicom_file):
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    return truncated(image_file(noise, "truncated.jpg"))


def bad_random_bytes_png(tmp_path, image_file, dicom_file):
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(1).bytes(2048))
    return tmp_path / "noise.png"


def bad_text_jpg(tmp_path, image_file, dicom_file):
    (tmp_path / "notes.jpg").write_text("patient 12, left knee\n")
    return tmp_path / "notes.jpg"


def bad_unknown_extension(tmp_path, image_file, dicom_file):
    return image_file(ramp(), "knee.gif")


def bad_tiny(tmp_path, image_file, dicom_file):
    return image_file(ramp(width=100, height=MIN_SIDE - 1), "tiny.png")


def bad_bomb_over_our_limit(tmp_path, image_file, dicom_file):
    return png_header_only(tmp_path / "bomb9000.png", 9000, 9000)  # 81 Mpx > 80 Mpx default


def bad_bomb_over_pillow_limit(tmp_path, image_file, dicom_file):
    return png_header_only(tmp_path / "bomb20000.png", 20000, 20000)


def bad_dicom_without_pixels(tmp_path, image_file, dicom_file):
    path = dicom_file(ramp(), "nopixels.dcm")
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    return path


def bad_dicom_multiframe(tmp_path, image_file, dicom_file):
    return dicom_file(np.zeros((2, HEIGHT, WIDTH), np.uint16), "multiframe.dcm")


def bad_dicom_colour(tmp_path, image_file, dicom_file):
    return dicom_file(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "colour.dcm", photometric="RGB")


def bad_dicom_garbage(tmp_path, image_file, dicom_file):
    (tmp_path / "garbage.dcm").write_bytes(np.random.default_rng(2).bytes(2048))
    return tmp_path / "garbage.dcm"


def bad_dicom_tiny(tmp_path, image_file, dicom_file):
    return dicom_file(ramp(height=8), "tiny.dcm")


@pytest.mark.parametrize(
    ("make_bad", "hint"),
    [
        (bad_missing, "not found"),
        (bad_empty, "empty"),
        (bad_truncated_png, "truncated"),
        (bad_truncated_jpeg, "truncated"),
        (bad_random_bytes_png, "re-export"),
        (bad_text_jpg, "re-export"),
        (bad_unknown_extension, ".png"),
        (bad_tiny, f"at least {MIN_SIDE} px"),
        (bad_bomb_over_our_limit, "downsize"),
        (bad_bomb_over_pillow_limit, "downsize"),
        (bad_dicom_without_pixels, "no pixel data"),
        (bad_dicom_multiframe, "single-frame"),
        (bad_dicom_colour, "grayscale"),
        (bad_dicom_garbage, "DICOM"),
        (bad_dicom_tiny, f"at least {MIN_SIDE} px"),
    ],
    ids=lambda value: value.__name__.removeprefix("bad_") if callable(value) else None,
)
def test_bad_input_names_the_file(tmp_path, image_file, dicom_file, make_bad, hint) -> None:
    path = make_bad(tmp_path, image_file, dicom_file)
    with pytest.raises(BadImageError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert message.count(path.name) == 1  # named once: lists of skipped files add no repeat
    assert caught.value.reason == message.removeprefix(f"{path}: ")
    assert hint in message
    assert "--max-pixels" not in message  # no such option


def test_decompression_bomb_limit_is_configurable(image_file) -> None:
    path = image_file(ramp(), "normal.png")
    assert read_image(path).shape == (HEIGHT, WIDTH)
    with pytest.raises(BadImageError, match="decompression bomb") as caught:
        read_image(path, max_pixels=HEIGHT * WIDTH - 1)
    assert str(path) in str(caught.value) and "downsize" in str(caught.value)


def test_dicom_over_pixel_limit_is_refused(dicom_file) -> None:
    path = dicom_file(ramp(4095, np.uint16), bits_stored=12)
    with pytest.raises(BadImageError, match="decompression bomb"):
        read_image(path, max_pixels=1000)


def test_float_tiff_with_nan_is_refused_naming_the_file(tmp_path) -> None:
    values = ramp().astype(np.float32)
    values[3, 5] = np.nan
    path = tmp_path / "float.tif"
    Image.fromarray(values, mode="F").save(path)
    with pytest.raises(BadImageError, match="NaN or infinite") as caught:
        read_image(path)
    assert str(caught.value).startswith(f"{path}: ")
    finite = tmp_path / "finite.tif"
    Image.fromarray(ramp().astype(np.float32), mode="F").save(finite)
    assert_contract(read_image(finite))


def test_an_8bit_image_s_float_view_is_its_contract_array_for_every_grey_level(tmp_path) -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(32, 8).repeat(4, axis=1)
    path = tmp_path / "levels.png"
    Image.fromarray(levels, mode="L").save(path)
    pixels = decode(path)
    expected = levels.astype(np.float32) / np.float32(255.0)
    np.testing.assert_array_equal(np.asarray(pixels.float_image(), np.float32), expected)
    np.testing.assert_array_equal(pixels.array, expected)
    assert pixels.shape == (32, 32)


def test_decoded_pixels_letterbox_exactly_as_their_array(tmp_path, dicom_file) -> None:
    rng = np.random.default_rng(1)
    files = {
        "gray.png": Image.fromarray(rng.integers(0, 256, (90, 61), dtype=np.uint8), mode="L"),
        "rgb.jpg": Image.fromarray(rng.integers(0, 256, (70, 97, 3), dtype=np.uint8)),
        "deep.png": Image.fromarray(rng.integers(0, 65536, (64, 40), dtype=np.uint16)),
    }
    paths = []
    for name, image in files.items():
        image.save(tmp_path / name)
        paths.append(tmp_path / name)
    paths.append(dicom_file(rng.integers(0, 4096, (48, 80)).astype(np.uint16), bits_stored=12))
    for path in paths:
        pixels = decode(path)
        assert pixels.shape == read_image(path).shape
        np.testing.assert_array_equal(letterbox(pixels, 40), letterbox(read_image(path), 40))
