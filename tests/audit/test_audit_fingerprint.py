"""Fingerprints: one decode per file, pixel hashes that ignore the container, a cache by sha256."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from osteoscan.audit.fingerprint import THUMBNAIL_SIDE, fingerprint_files


@pytest.fixture
def image(tmp_path) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((90, 60)) * 255).astype(np.uint8)


def test_same_pixels_in_other_containers_share_a_pixel_hash(tmp_path, image) -> None:
    paths = []
    for name, mode in (("a.png", "L"), ("b.tiff", "L"), ("c.bmp", "L"), ("d.png", "RGB")):
        Image.fromarray(image).convert(mode).save(tmp_path / name)
        paths.append(tmp_path / name)
    other = image.copy()
    other[0, 0] ^= 1  # one grey level in one pixel
    Image.fromarray(other).save(tmp_path / "e.png")
    fps = fingerprint_files([*paths, tmp_path / "e.png"], cache_dir=tmp_path / "cache", workers=1)
    assert len({fp.sha256 for fp in fps}) == 5  # different bytes ...
    assert len({fp.pixel_hash for fp in fps[:4]}) == 1  # ... same pixels
    assert fps[4].pixel_hash != fps[0].pixel_hash
    assert [(fp.format, fp.mode) for fp in fps[:4]] == [
        ("PNG", "L"),
        ("TIFF", "L"),
        ("BMP", "L"),
        ("PNG", "RGB"),
    ]


def test_metadata_border_and_thumbnail(tmp_path) -> None:
    pixels = np.full((400, 200), 255, dtype=np.uint8)
    pixels[20:-20, 10:-10] = 128  # white frame, grey inside
    Image.fromarray(pixels).save(tmp_path / "framed.png")
    (fp,) = fingerprint_files([tmp_path / "framed.png"], workers=1)
    assert (fp.width, fp.height, fp.bit_depth) == (200, 400, 8)
    assert fp.file_size == (tmp_path / "framed.png").stat().st_size
    assert fp.border_bright == pytest.approx(1.0)
    assert fp.border_dark == 0.0
    assert fp.thumbnail.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2)
    assert fp.embeddings.shape == (2, 144)
    assert fp.preview_png().startswith(b"\x89PNG")


def test_unreadable_files_become_findings_in_order(tmp_path, image) -> None:
    Image.fromarray(image).save(tmp_path / "good.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "garbage.jpg").write_bytes(b"not a jpeg at all")
    paths = [tmp_path / "empty.png", tmp_path / "good.png", tmp_path / "garbage.jpg"]
    fps = fingerprint_files([*paths, tmp_path / "missing.png"], workers=1)
    assert [fp.ok for fp in fps] == [False, True, False, False]
    for fp, name in zip(fps, ["empty.png", "good.png", "garbage.jpg", "missing.png"], strict=True):
        assert fp.path.endswith(name)
        assert fp.ok or (fp.error and str(tmp_path) not in fp.error)  # the path is said once
    assert "empty" in fps[0].error and "not found" in fps[3].error


def test_parallel_and_cached_fingerprints_equal_serial_ones(tmp_path) -> None:
    rng = np.random.default_rng(1)
    paths = []
    for k in range(20):  # enough files for the worker pool to start
        paths.append(tmp_path / f"img{k}.png")
        Image.fromarray((rng.random((64, 48 + k)) * 255).astype(np.uint8)).save(paths[-1])
    serial = fingerprint_files(paths, workers=1)
    cache = tmp_path / "cache"
    parallel = fingerprint_files(paths, cache_dir=cache, workers=2)
    assert len(list(cache.rglob("*.npz"))) == 20
    (paths[0].parent / "renamed.png").write_bytes(paths[0].read_bytes())
    cached = fingerprint_files(
        [*paths, paths[0].parent / "renamed.png"], cache_dir=cache, workers=1
    )
    assert len(list(cache.rglob("*.npz"))) == 20  # the renamed copy reused its entry
    for a, b, c in zip(serial, parallel, cached, strict=False):
        assert a.pixel_hash == b.pixel_hash == c.pixel_hash
        assert (a.width, a.format, a.border_mean) == (c.width, c.format, c.border_mean)
        np.testing.assert_array_equal(a.thumbnail, c.thumbnail)
        np.testing.assert_array_equal(a.embeddings, c.embeddings)
    assert cached[-1].path.endswith("renamed.png")
    assert cached[-1].pixel_hash == serial[0].pixel_hash
