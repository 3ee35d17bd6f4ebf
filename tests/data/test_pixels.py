"""letterbox and prepare: fixed-size pixels in record order, decoded once, cached on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osteoscan.data import pixels as pixels_module
from osteoscan.data.decode import Pixels
from osteoscan.data.pixels import letterbox, prepare
from osteoscan.files import sha256_file

SIZE = 32


def png(path: Path, value: int, shape: tuple[int, int] = (40, 60)) -> Path:
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)
    return path


def cache_entries(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.rglob("*.npy"))


@pytest.fixture(autouse=True)
def no_memory_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about decoding and the disk cache: the in-process cache stays empty."""
    monkeypatch.setattr(pixels_module, "_MEMORY", pixels_module._MemoryCache(max_bytes=0))


@pytest.fixture
def forbid_decoding(monkeypatch: pytest.MonkeyPatch):
    """Call it to make any further decode fail the test: results must come from the cache."""

    def refuse(path, max_pixels):
        raise AssertionError(f"{path} was decoded again instead of read from the cache")

    def forbid() -> None:
        for decoder in ("decode", "read_image"):  # letterboxes, knee crops
            monkeypatch.setattr(pixels_module, decoder, refuse)

    return forbid


def test_letterbox_keeps_aspect_and_centres_a_wide_image() -> None:
    boxed = letterbox(np.ones((50, 100), np.float32), 64)
    assert boxed.shape == (64, 64) and boxed.dtype == np.float32
    assert boxed.min() >= 0.0 and boxed.max() <= 1.0
    np.testing.assert_allclose(boxed[16:48], 1.0, atol=1e-5)  # 64 x 32 band
    assert np.all(boxed[:16] == 0.0) and np.all(boxed[48:] == 0.0)


def test_letterbox_pads_a_tall_image_left_and_right() -> None:
    boxed = letterbox(np.ones((90, 30), np.float32), 48)
    np.testing.assert_allclose(boxed[:, 16:32], 1.0, atol=1e-5)
    assert np.all(boxed[:, :16] == 0.0) and np.all(boxed[:, 32:] == 0.0)


def test_letterbox_keeps_intensities_in_range_when_upscaling() -> None:
    small = np.zeros((8, 8), np.float32)
    small[:, 4:] = 1.0
    boxed = letterbox(small, 64)
    assert boxed.min() >= 0.0 and boxed.max() <= 1.0
    assert boxed[:, :24].max() == 0.0 and boxed[:, 40:].min() > 0.99


def test_prepare_keeps_record_order_and_reports_bad_files(tmp_path: Path) -> None:
    dark = png(tmp_path / "dark.png", 30)
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    bright = png(tmp_path / "bright.png", 220)
    missing = tmp_path / "missing.png"

    prepared = prepare([dark, broken, bright, missing], SIZE, workers=1)

    assert prepared.pixels.shape == (2, SIZE, SIZE)
    assert prepared.pixels.dtype == np.float16
    assert prepared.indices == [0, 2]
    assert prepared.pixels[0].max() == pytest.approx(30 / 255, abs=1e-3)
    assert prepared.pixels[1].max() == pytest.approx(220 / 255, abs=1e-3)
    assert prepared.content_hashes == [sha256_file(dark), sha256_file(bright)]
    assert [index for index, _ in prepared.problems] == [1, 3]
    assert "not a readable image" in prepared.problems[0][1]
    assert "not found" in prepared.problems[1][1]
    for _, reason in prepared.problems:  # the caller names the file; the reason does not
        assert str(tmp_path) not in reason, reason


def test_prepare_with_no_readable_image_returns_an_empty_stack(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    prepared = prepare([broken], SIZE, workers=1)
    assert prepared.pixels.shape == (0, SIZE, SIZE)
    assert prepared.indices == [] and len(prepared.problems) == 1


def test_prepare_passes_the_pixel_limit_on(tmp_path: Path) -> None:
    path = png(tmp_path / "knee.png", 100)
    prepared = prepare([path], SIZE, workers=1, max_pixels=100)
    assert prepared.indices == []
    assert "decompression bomb" in prepared.problems[0][1]


def test_second_prepare_reads_the_disk_cache(tmp_path: Path, forbid_decoding) -> None:
    paths = [png(tmp_path / "a.png", 50), png(tmp_path / "b.png", 200, (60, 40))]
    cache_dir = tmp_path / "cache"
    first = prepare(paths, SIZE, cache_dir=cache_dir, workers=1)
    assert len(cache_entries(cache_dir)) == 2
    forbid_decoding()
    second = prepare(paths, SIZE, cache_dir=cache_dir, workers=1)
    np.testing.assert_array_equal(second.pixels, first.pixels)
    assert second.indices == first.indices and second.problems == []


def test_renamed_identical_file_hits_the_cache(tmp_path: Path, forbid_decoding) -> None:
    path = png(tmp_path / "knee.png", 120)
    cache_dir = tmp_path / "cache"
    first = prepare([path], SIZE, cache_dir=cache_dir, workers=1)
    renamed = path.rename(tmp_path / "renamed.png")
    forbid_decoding()
    second = prepare([renamed], SIZE, cache_dir=cache_dir, workers=1)
    np.testing.assert_array_equal(second.pixels, first.pixels)
    assert len(cache_entries(cache_dir)) == 1


def test_edited_file_misses_the_cache(tmp_path: Path) -> None:
    path = png(tmp_path / "knee.png", 40)
    cache_dir = tmp_path / "cache"
    before = prepare([path], SIZE, cache_dir=cache_dir, workers=1)
    png(path, 240)  # same name, new content
    after = prepare([path], SIZE, cache_dir=cache_dir, workers=1)
    assert after.pixels.max() == pytest.approx(240 / 255, abs=1e-3)
    assert after.content_hashes != before.content_hashes
    assert len(cache_entries(cache_dir)) == 2


def test_another_size_is_another_cache_entry(tmp_path: Path) -> None:
    path = png(tmp_path / "knee.png", 90)
    cache_dir = tmp_path / "cache"
    prepare([path], SIZE, cache_dir=cache_dir, workers=1)
    bigger = prepare([path], 2 * SIZE, cache_dir=cache_dir, workers=1)
    assert bigger.pixels.shape == (1, 2 * SIZE, 2 * SIZE)
    assert len(cache_entries(cache_dir)) == 2


def test_unreadable_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    path = png(tmp_path / "knee.png", 160)
    cache_dir = tmp_path / "cache"
    first = prepare([path], SIZE, cache_dir=cache_dir, workers=1)
    (entry,) = cache_entries(cache_dir)
    entry.write_bytes(b"garbage")
    second = prepare([path], SIZE, cache_dir=cache_dir, workers=1)
    np.testing.assert_array_equal(second.pixels, first.pixels)
    np.testing.assert_array_equal(np.load(entry), first.pixels[0])


def test_bad_files_are_not_cached(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "broken.png"
    path.write_text("not an image")
    cache_dir = tmp_path / "cache"
    prepare([path], SIZE, cache_dir=cache_dir, workers=1)
    assert cache_entries(cache_dir) == []

    def fixed(path, max_pixels):  # e.g. a newer decoder that can read it
        return Pixels(array=np.ones((40, 40), np.float32))

    monkeypatch.setattr(pixels_module, "decode", fixed)
    assert prepare([path], SIZE, cache_dir=cache_dir, workers=1).indices == [0]


def test_memory_cache_serves_a_repeat_without_touching_disk(tmp_path: Path, monkeypatch) -> None:
    memory = pixels_module._MemoryCache()
    monkeypatch.setattr(pixels_module, "_MEMORY", memory)
    path = png(tmp_path / "knee.png", 90)
    first = prepare([path], SIZE, cache_dir=None, workers=1)
    real_prepare_one = pixels_module._prepare_one

    def refuse(*args, **kwargs):
        raise AssertionError("decoded or hashed again instead of served from memory")

    monkeypatch.setattr(pixels_module, "_prepare_one", refuse)
    second = prepare([path], SIZE, cache_dir=None, workers=1)
    np.testing.assert_array_equal(second.pixels, first.pixels)
    assert second.content_hashes == first.content_hashes
    monkeypatch.setattr(pixels_module, "_prepare_one", real_prepare_one)
    png(path, 200, shape=(41, 60))  # edited: new size and mtime, so a miss
    assert prepare([path], SIZE, workers=1).pixels.max() > first.pixels.max()
    assert len(memory.entries) == 2


def test_a_warm_cache_starts_no_worker_process(tmp_path: Path, monkeypatch) -> None:
    """Cached pixels load in the calling process: no fork (a fork from a process already running
    threads, such as a second DDP rank, can hang), and only the misses go to the workers."""
    paths = [png(tmp_path / f"{i}.png", i, (40 + i, 60)) for i in range(40)]
    cache_dir = tmp_path / "cache"
    first = prepare(paths[:36], SIZE, cache_dir=cache_dir, workers=2)  # 36 misses: a pool
    contexts = []
    real_get_context = pixels_module.multiprocessing.get_context
    monkeypatch.setattr(
        pixels_module.multiprocessing,
        "get_context",
        lambda method: contexts.append(method) or real_get_context(method),
    )
    warm = prepare(paths[:36], SIZE, cache_dir=cache_dir, workers=2)
    assert contexts == []
    np.testing.assert_array_equal(warm.pixels, first.pixels)
    mixed = prepare(paths, SIZE, cache_dir=cache_dir, workers=2)  # 4 misses: decoded in process
    assert contexts == [] and mixed.indices == list(range(40))
    np.testing.assert_array_equal(mixed.pixels[:36], first.pixels)


_PREPARE_UNDER_A_SIGTERM_HANDLER = """
import signal, sys
from pathlib import Path
from osteoscan.data.pixels import prepare

# a handler that does not exit (Lightning's during a fit only takes note of the signal)
signal.signal(signal.SIGTERM, lambda number, frame: None)
prepared = prepare(sorted(Path(sys.argv[1]).glob("*.png")), 32, workers=2)
print(len(prepared.indices))
"""


def test_the_decode_pool_ends_when_the_caller_has_a_sigterm_handler(tmp_path: Path) -> None:
    """Leaving the pool terminates its workers with SIGTERM: one that inherited a handler which
    does not exit would never end, and prepare would wait for it forever."""
    import subprocess
    import sys

    for i in range(40):
        png(tmp_path / f"{i}.png", i, (40 + i, 60))
    done = subprocess.run(
        [sys.executable, "-c", _PREPARE_UNDER_A_SIGTERM_HANDLER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "OSTEOSCAN_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "40"
