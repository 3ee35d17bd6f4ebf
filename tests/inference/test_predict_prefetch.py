"""Predictor.predict decodes the next batch in another thread while the model runs this one
(and decodes itself what that thread has not started, also while it waits): rows stay in input
order, a bad file keeps its own row, look-ahead is bounded, the batches start at two images and
grow to the batch size, and an interrupt stops the run without decoding the rest."""

import threading

import numpy as np
import pytest

from osteoscan.inference import read_metadata
from osteoscan.inference.predict import Predictor, batch_ends


class _RecordingBackend:
    """Logits that encode each image's mean pixel, so a row can be traced to its image."""

    name = "fake"

    def __init__(self, on_batch=None) -> None:
        self.threads: list[int] = []
        self.sizes: list[int] = []
        self.batches = 0
        self.on_batch = on_batch

    def logits(self, batch: np.ndarray) -> np.ndarray:
        self.threads.append(threading.get_ident())
        self.sizes.append(len(batch))
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(self.batches)
        mean = batch.reshape(len(batch), -1).mean(axis=1)
        return np.stack([np.zeros_like(mean), mean], axis=1)


def _predictor(bundle, backend) -> Predictor:
    return Predictor(read_metadata(bundle), backend, bundle)


def _recording_loads(predictor, monkeypatch):
    """Record (path name, thread id) of every load, in the order loads start."""
    loads: list[tuple[str, int]] = []
    lock = threading.Lock()
    real_load = predictor.preprocessor.load

    def load(path):
        with lock:
            loads.append((path.name, threading.get_ident()))
        return real_load(path)

    monkeypatch.setattr(predictor.preprocessor, "load", load)
    return loads


def _decode_threads(before: set[threading.Thread]) -> set[threading.Thread]:
    """Decode threads alive now that were not alive in ``before`` (other tests' predictors may
    still have theirs)."""
    return {t for t in threading.enumerate() if t.name.startswith("osteoscan-decode")} - before


def _images(synth_dir):
    return sorted((synth_dir / "osteoporosis").glob("*.png")) + sorted(
        (synth_dir / "normal").glob("*.png")
    )


def test_rows_keep_input_order_and_a_bad_file_keeps_its_own_row(
    trained_bundle, synth_dir, tmp_path
):
    images = _images(synth_dir)[:11]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    paths = [*images[:5], broken, *images[5:]]
    prefetched = _predictor(trained_bundle, _RecordingBackend())
    results = list(prefetched.predict(paths, batch_size=4))
    assert [row.path for row, _ in results] == [str(p) for p in paths]
    bad_row, bad_image = results[5]
    assert bad_image is None and bad_row.probability is None and "broken.png" in bad_row.error
    # each good row is its own image's: the same numbers as predicting that image alone
    alone = _predictor(trained_bundle, _RecordingBackend())
    for path, (row, image) in zip(paths, results, strict=True):
        if path == broken:
            continue
        ((single, _),) = alone.predict([path], batch_size=1)
        assert row.error is None and row.probability == pytest.approx(single.probability)
        assert image is not None and image.original.shape == (96, 96)


def test_the_next_batch_is_decoded_off_the_inference_thread_while_the_model_runs(
    trained_bundle, synth_dir, monkeypatch
):
    paths = _images(synth_dir)[:8]
    next_batch_started = threading.Event()

    def first_batch_waits_for_the_next_decode(batch_number):
        if batch_number == 1:  # the model is busy with images 0-1: image 2 must be decoding
            assert next_batch_started.wait(timeout=10), "the next batch was not decoded meanwhile"

    predictor = _predictor(trained_bundle, _RecordingBackend(first_batch_waits_for_the_next_decode))
    loads = _recording_loads(predictor, monkeypatch)
    real_load = predictor.preprocessor.load

    def load(path):
        if path == paths[2]:
            next_batch_started.set()
        return real_load(path)

    monkeypatch.setattr(predictor.preprocessor, "load", load)
    rows = [row for row, _ in predictor.predict(paths, batch_size=4)]  # batches 0-1, 2-4, 5-7
    assert [row.path for row in rows] == [str(p) for p in paths]
    inference_threads = set(predictor.backend.threads)
    assert inference_threads == {threading.get_ident()}
    (decoded_meanwhile,) = [thread for name, thread in loads if name == paths[2].name]
    assert decoded_meanwhile not in inference_threads


def test_an_image_the_decode_thread_has_not_started_is_decoded_here_not_waited_for(
    trained_bundle, synth_dir, monkeypatch
):
    paths = _images(synth_dir)[:6]
    predictor = _predictor(trained_bundle, _RecordingBackend())
    loads = _recording_loads(predictor, monkeypatch)
    here_decoded = threading.Event()
    real_load = predictor.preprocessor.load

    def load(path):
        if threading.get_ident() == threading.main_thread().ident:
            here_decoded.set()
        return real_load(path)

    monkeypatch.setattr(predictor.preprocessor, "load", load)
    # the decode thread is busy until this thread has decoded an image itself: waiting for the
    # decode thread instead would never finish
    busy = predictor._decode_pool(1).submit(here_decoded.wait, 10)
    rows = [row for row, _ in predictor.predict(paths, batch_size=3)]
    assert busy.result() is True, "predict waited for the busy decode thread"
    assert [row.path for row in rows] == [str(p) for p in paths]
    assert all(row.error is None for row in rows)
    assert len(loads) == len(paths)  # each image decoded once, by one of the two threads
    predictor.close()


def test_an_interrupt_stops_promptly_without_decoding_the_rest(
    trained_bundle, synth_dir, monkeypatch
):
    paths = _images(synth_dir)[:40]

    def interrupt(batch_number):
        raise KeyboardInterrupt

    before = set(threading.enumerate())
    predictor = _predictor(trained_bundle, _RecordingBackend(interrupt))
    loads = _recording_loads(predictor, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        list(predictor.predict(paths, batch_size=4))
    assert _decode_threads(before)  # the run had its decode thread
    predictor.close()  # waits for a decode that was running
    # the batch being run and at most one batch ahead were decoded, not the 40 images
    assert len(loads) <= 8
    assert not _decode_threads(before)


def test_stopping_early_cancels_the_decoding_not_started(trained_bundle, synth_dir, monkeypatch):
    before = set(threading.enumerate())
    predictor = _predictor(trained_bundle, _RecordingBackend())
    loads = _recording_loads(predictor, monkeypatch)
    rows = predictor.predict(_images(synth_dir)[:40], batch_size=4)
    first, _ = next(rows)
    assert first.error is None
    rows.close()
    predictor.close()
    assert len(loads) <= 8
    assert not _decode_threads(before)


def test_the_decode_thread_is_kept_between_runs_and_ends_with_close(trained_bundle, synth_dir):
    before = set(threading.enumerate())
    predictor = _predictor(trained_bundle, _RecordingBackend())
    seen = []
    for _ in range(2):
        assert all(row.error is None for row, _ in predictor.predict(_images(synth_dir)[:4], 2))
        seen.append(_decode_threads(before))
    assert len(seen[0]) == 1 and seen[1] == seen[0]  # the same thread served both runs
    predictor.close()
    assert not _decode_threads(before)


@pytest.mark.parametrize(
    ("total", "batch_size", "ends"),
    [
        (0, 16, []),
        (1, 16, [1]),
        (3, 4, [2, 3]),
        (10, 4, [2, 5, 9, 10]),
        (5, 1, [1, 2, 3, 4, 5]),
        (96, 16, [2, 5, 9, 14, 20, 27, 35, 44, 54, 65, 77, 90, 96]),
    ],
)
def test_batches_start_at_two_images_and_grow_to_the_batch_size(total, batch_size, ends):
    assert batch_ends(total, batch_size) == ends


@pytest.mark.parametrize("batch_size", [1, 2, 3, 8, 16, 64, 256])
def test_batch_sizes_grow_by_an_eighth_and_stay_at_the_batch_size(batch_size):
    ends = batch_ends(5000, batch_size)
    sizes = np.diff([0, *ends])
    assert ends[-1] == 5000 and sizes.min() >= 1 and sizes.max() == batch_size
    assert sizes[0] == min(2, batch_size)
    grown = sizes[:-1]  # the last batch is what is left
    steps = np.diff(grown)
    assert (steps >= 0).all() and (steps <= np.maximum(1, grown[:-1] // 8)).all()
    reached = int(np.argmax(grown == batch_size))
    assert (grown[reached:] == batch_size).all()


def test_the_model_starts_on_two_images_and_the_batches_grow(trained_bundle, synth_dir):
    predictor = _predictor(trained_bundle, _RecordingBackend())
    paths = _images(synth_dir)[:10]
    rows = [row for row, _ in predictor.predict(paths, batch_size=4)]
    assert [row.path for row in rows] == [str(p) for p in paths]
    assert predictor.backend.sizes == [2, 3, 4, 1]
    predictor.close()


def test_while_waiting_for_an_image_this_thread_decodes_its_batch_from_the_end(
    trained_bundle, synth_dir, monkeypatch
):
    paths = _images(synth_dir)[:12]
    predictor = _predictor(trained_bundle, _RecordingBackend())
    loads = _recording_loads(predictor, monkeypatch)
    here = threading.main_thread().ident
    helped = threading.Event()
    real_load = predictor.preprocessor.load

    def load(path):
        if threading.get_ident() == here:
            helped.set()
        elif path == paths[0]:  # the decode thread is slow on the first image
            assert helped.wait(timeout=10), "this thread waited instead of decoding"
        return real_load(path)

    monkeypatch.setattr(predictor.preprocessor, "load", load)
    rows = [row for row, _ in predictor.predict(paths, batch_size=8)]  # batches 0-1, 2-4, ...
    assert [row.path for row in rows] == [str(p) for p in paths]
    assert all(row.error is None for row in rows)
    mine = [name for name, thread in loads if thread == here]
    assert mine and mine[0] == paths[1].name  # the end of the batch the model waits for
    assert sorted(name for name, _ in loads) == sorted(p.name for p in paths)  # each once
    predictor.close()
