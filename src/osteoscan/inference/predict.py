"""Screen new radiographs with a bundle: files, folders and DICOM in, one row per image out.

A bad file becomes a row with its ``error`` and the run goes on. Probabilities are the
temperature-scaled probability of osteoporosis; ``prediction`` applies the bundle's operating
threshold (the calibrated one when ``calibrate`` ran) in the binary task, the most probable
class in the three-class task.

A bundle trained on knee crops (``metadata.roi``) gives, per radiograph, one row per knee
(``knee``: "right"/"left" when the side can be told, else "knee 1"/"knee 2", or "knee") and the
image-level row (``knee`` empty), which is the knee with the higher probability of osteoporosis;
a radiograph where no knee is found gets its error row.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from itertools import islice
from pathlib import Path

import numpy as np

from osteoscan.data.decode import is_supported
from osteoscan.data.labels import OSTEOPOROSIS
from osteoscan.errors import BadBundleError, BadConfigError, OsteoscanError
from osteoscan.files import atomic_write, atomic_write_json, check_writable_dir
from osteoscan.inference.allocator import keep_freed_memory
from osteoscan.inference.backends import BACKENDS, DEFAULT_BACKEND, Backend, OnnxBackend
from osteoscan.inference.bundle_io import check_file, load_torch_net, read_metadata
from osteoscan.inference.preprocess import PreparedImage, Preprocessor
from osteoscan.metadata import BundleMetadata, json_ready
from osteoscan.roi.summary import most_abnormal
from osteoscan.stats import softmax

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16
DEFAULT_DECODE_WORKERS = 1  # threads decoding the next batch while the model runs this one
OUTPUT_SUFFIXES = (".csv", ".json")


@dataclass(frozen=True)
class PredictionRow:
    """One image's result; ``error`` is set (and the numbers are None) when it could not be read."""

    path: str
    probability: float | None
    prediction: str | None
    threshold: float | None
    model: str
    error: str | None = None
    knee: str | None = None  # a knee-ROI bundle's knee row; None for the image-level row
    # the image-level row of a knee-ROI bundle: its knee rows (not a CSV/JSON column)
    knees: tuple[PredictionRow, ...] = ()


COLUMNS = tuple(f.name for f in fields(PredictionRow) if f.name != "knees")  # CSV/JSON fields


def decide(metadata: BundleMetadata, probs: np.ndarray) -> str:
    """The class predicted from one image's probabilities: P(osteoporosis) against the operating
    threshold in the binary task, the most probable class otherwise."""
    names, threshold = metadata.class_names, metadata.operating_threshold
    if threshold is None:
        return names[int(np.argmax(probs))]
    return OSTEOPOROSIS if probs[names.index(OSTEOPOROSIS)] >= threshold else names[0]


class Predictor:
    """A bundle opened for prediction: its metadata, one preprocessor and one backend."""

    def __init__(self, metadata: BundleMetadata, backend: Backend, bundle_dir: Path) -> None:
        self.metadata = metadata
        self.backend = backend
        self.bundle_dir = bundle_dir
        self.preprocessor = Preprocessor(metadata.input, roi=metadata.roi)
        self.positive_index = metadata.class_names.index(OSTEOPOROSIS)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_workers = 0
        keep_freed_memory()

    def probabilities(self, squares: Sequence[np.ndarray]) -> np.ndarray:
        """Calibrated class probabilities (N, K) of letterboxed [0, 1] squares."""
        return self._scored(self.preprocessor.normalise(squares))

    def _scored(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (N, K) of normalised network input (N, C, S, S)."""
        return softmax(self.backend.logits(batch), self.metadata.temperature)

    def rows_for(self, paths: Sequence[Path], probs: np.ndarray) -> list[PredictionRow]:
        """One whole-image row per path and probability vector."""
        return [self._row(str(path), p) for path, p in zip(paths, probs, strict=True)]

    def _row(self, path: str, probs: np.ndarray, knee: str | None = None) -> PredictionRow:
        meta = self.metadata
        return PredictionRow(
            path,
            float(probs[self.positive_index]),
            decide(meta, probs),
            meta.operating_threshold,
            meta.model,
            knee=knee,
        )

    def image_row(self, path: str, image: PreparedImage, probs: np.ndarray) -> PredictionRow:
        """The row of one prepared image from the probabilities of its ``inputs``: the whole
        image's, or (knee ROI) the most abnormal knee's, carrying every knee's row."""
        if not image.crops:
            return self._row(path, probs[0])
        knees = tuple(
            self._row(path, p, crop.name) for crop, p in zip(image.crops, probs, strict=True)
        )
        summary = self._row(path, probs[most_abnormal(probs)])
        return replace(summary, knees=knees)

    def predict(
        self,
        paths: Sequence[Path],
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False,
        decode_workers: int = DEFAULT_DECODE_WORKERS,
    ) -> Iterator[tuple[PredictionRow, PreparedImage | None]]:
        """Image-level rows in input order, each with its prepared image (None for a file that
        failed); for a knee-ROI bundle each row holds its knees' rows in ``knees``.

        ``decode_workers`` threads decode and letterbox the next batch while the model runs the
        current one, at most ``batch_size`` images ahead (so memory stays bounded); the
        batches are :func:`batch_ends`'s."""
        bar = _Progress(len(paths)) if progress else None
        ends = batch_ends(len(paths), batch_size)
        starts = [0, *ends[:-1]]
        buffers: dict[int, np.ndarray] = {}

        def slot(index: int) -> np.ndarray | None:
            """Where the decode thread writes image ``index``'s network input: its row of its
            batch's input array (a knee-ROI image has as many inputs as knees: None)."""
            if self.preprocessor.roi is not None:
                return None
            number = bisect_right(ends, index)
            if number not in buffers:
                spec = self.preprocessor.spec
                size, channels = spec.image_size, spec.in_chans
                rows = ends[number] - starts[number]
                buffers[number] = np.empty((rows, channels, size, size), np.float32)
            return buffers[number][index - starts[number] : index - starts[number] + 1]

        decoded = self._decoded(paths, ends, batch_size, decode_workers, slot)
        try:
            for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
                chunk = paths[start:end]
                results = [next(decoded) for _ in chunk]
                assembled = buffers.pop(number, None)
                good = [i for i, item in enumerate(results) if isinstance(item, tuple)]
                loaded = [item[0] if isinstance(item, tuple) else item for item in results]
                rows = {}
                if good:
                    if assembled is None:  # knee crops: each image's own inputs
                        batch = np.concatenate([results[i][1] for i in good])
                    else:  # written in place by the decode threads; a failed file's row left out
                        batch = assembled if len(good) == len(chunk) else assembled[good]
                    probs = self._scored(batch)
                    splits = np.cumsum([len(loaded[i].inputs) for i in good])
                    for i, own in zip(good, np.split(probs, splits[:-1]), strict=True):
                        rows[i] = self.image_row(str(chunk[i]), loaded[i], own)
                for i, (path, item) in enumerate(zip(chunk, loaded, strict=True)):
                    if isinstance(item, PreparedImage):
                        yield rows[i], item
                    else:
                        log.warning("%s", item)
                        yield (
                            PredictionRow(str(path), None, None, None, self.metadata.model, item),
                            None,
                        )
                if bar is not None:
                    bar.advance(len(chunk))
        finally:
            decoded.close()
            if bar is not None:
                bar.close()

    def _decoded(
        self,
        paths: Sequence[Path],
        ends: Sequence[int],
        ahead: int,
        workers: int,
        slot: Callable[[int], np.ndarray | None],
    ) -> Iterator[tuple[PreparedImage, np.ndarray] | str]:
        """Each path's :meth:`_load` (written into ``slot(index)``), in input order: ``workers``
        threads decode at most ``ahead`` images beyond the one handed out, from the front. This
        thread never waits idle on them: an image they have not started when it is needed is
        decoded here, and while the one needed is still being decoded this thread decodes the
        last image of the same batch (batches end at ``ends``) that nobody has started. So the
        first batch (which the model has to wait for), and any stretch where decoding is the
        slower side, is decoded by both threads. Closing the iterator (also on Ctrl-C or an
        error) cancels what has not started."""
        pool = self._decode_pool(workers)
        todo = enumerate(paths)

        def job(index: int, path: Path) -> tuple[int, Path, np.ndarray | None, Future]:
            out = slot(index)
            return index, path, out, pool.submit(self._load, path, out)

        pending: deque[tuple[int, Path, np.ndarray | None, Future]] = deque(
            job(index, path) for index, path in islice(todo, max(1, ahead))
        )
        try:
            while pending:
                index, path, out, done = pending.popleft()
                following = next(todo, None)
                if following is not None:
                    pending.append(job(*following))
                if done.cancel():
                    yield self._load(path, out)
                    continue
                batch_end = ends[bisect_right(ends, index)]
                while not done.done() and self._decode_one_not_started(pending, batch_end):
                    pass
                yield done.result()
        finally:
            for *_, future in pending:
                future.cancel()

    def _decode_one_not_started(
        self, pending: deque[tuple[int, Path, np.ndarray | None, Future]], batch_end: int
    ) -> bool:
        """Decode here the last image before ``batch_end`` that no decode thread has started,
        keeping its result in its place; False when there is none."""
        for position in range(len(pending) - 1, -1, -1):
            index, path, out, future = pending[position]
            if index < batch_end and future.cancel():
                result: Future = Future()
                result.set_result(self._load(path, out))
                pending[position] = (index, path, out, result)
                return True
        return False

    def close(self) -> None:
        """End the decode threads (after the image each one is decoding); predict starts new
        ones if called again."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _decode_pool(self, workers: int) -> ThreadPoolExecutor:
        """The decode threads, kept for the predictor's life: a thread that decoded before
        reuses the memory it freed (a new thread's first images page-fault theirs in)."""
        workers = max(1, workers)
        if self._pool is None or self._pool_workers != workers:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="osteoscan-decode")
            self._pool_workers = workers
        return self._pool

    def _load(
        self, path: Path, out: np.ndarray | None = None
    ) -> tuple[PreparedImage, np.ndarray] | str:
        """The prepared image and its normalised network input, written into ``out`` when
        given (its row of the batch, so the inference thread need not normalise or copy:
        the decode thread has time to spare while the model runs), or the error message."""
        try:
            image = self.preprocessor.load(path)
        except OsteoscanError as exc:
            return str(exc)
        return image, self.preprocessor.normalise(image.inputs, out)


def batch_ends(total: int, batch_size: int) -> list[int]:
    """Where each batch of a run of ``total`` images ends. The batches start small and grow to
    ``batch_size``: 2 images, then each one larger by an eighth (at least one image). A batch cannot
    start before its images are decoded, and the decode thread can only decode the next batch while
    the model runs this one; when decoding an image takes nearly as long as inferring it, a batch
    larger than the one before must wait for the difference. Small first batches let the model start
    after one image's decoding (two threads decode the first two) and keep each wait short; on a
    CPU a small batch is about as fast per image as a large one, or faster
    (``benchmarks/predict_pipeline.py``).
    The batches depend only on ``total`` and ``batch_size``: a run gives the same numbers however
    fast its threads are."""
    ends: list[int] = []
    size, end = min(2, max(1, batch_size)), 0
    while end < total:
        end = min(total, end + size)
        ends.append(end)
        size = min(max(1, batch_size), size + max(1, size // 8))
    return ends


def flatten(rows: Iterable[PredictionRow]) -> list[PredictionRow]:
    """Image-level rows with each one's knee rows first: the rows of a CSV or JSON file."""
    return [flat for row in rows for flat in (*row.knees, row)]


def open_predictor(
    bundle_dir: Path | str, backend: str = DEFAULT_BACKEND, threads: int | None = None
) -> Predictor:
    """Open ``bundle_dir`` with ``backend``: 'torch', 'onnx' (fp32 export), 'onnx-int8', or
    'auto' (the fp32 ONNX export when the bundle has one, else torch)."""
    bundle_dir = Path(bundle_dir)
    if backend not in BACKENDS:
        raise BadConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    meta = read_metadata(bundle_dir)
    if backend == "auto":
        backend = "onnx" if meta.export("fp32") is not None else "torch"
    if backend == "torch":
        from osteoscan.inference.backends import TorchBackend

        net, meta = load_torch_net(bundle_dir)
        return Predictor(meta, TorchBackend(net, threads), bundle_dir)
    precision = "int8" if backend == "onnx-int8" else "fp32"
    export = meta.export(precision)
    if export is None:
        flag = " --int8" if precision == "int8" else ""
        raise BadBundleError(
            f"{bundle_dir}: has no {precision} ONNX export; run "
            f"'osteoscan export {bundle_dir} --format onnx{flag}' first, or use --backend torch"
        )
    onnx_file = check_file(bundle_dir, export.file, export.sha256)
    return Predictor(meta, OnnxBackend(onnx_file, threads, name=backend), bundle_dir)


def expand_paths(inputs: Iterable[Path | str]) -> list[Path]:
    """Files as given, folders expanded to their supported images (sorted, recursive)."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += sorted(p for p in item.rglob("*") if p.is_file() and is_supported(p))
        else:
            out.append(item)
    return out


def write_rows(rows: Sequence[PredictionRow], out: Path | str) -> Path:
    """Write rows as CSV or JSON, chosen by ``out``'s suffix, atomically."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise BadConfigError(f"--out {out}: use a .csv or .json file name")
    plain = [{name: getattr(row, name) for name in COLUMNS} for row in rows]
    if suffix == ".json":
        return atomic_write_json(out, json_ready(plain))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in plain:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return atomic_write(out, buffer.getvalue())


def predict(
    bundle_dir: Path | str,
    inputs: Iterable[Path | str],
    backend: str = DEFAULT_BACKEND,
    batch_size: int = DEFAULT_BATCH_SIZE,
    out: Path | str | None = None,
    cam_dir: Path | str | None = None,
    progress: bool = False,
    threads: int | None = None,
) -> list[PredictionRow]:
    """Predict every image in ``inputs`` (files and folders); optionally write ``out`` (.csv or
    .json) and a Grad-CAM overlay per image into ``cam_dir`` (needs torch). Returns the rows
    as written: for a knee-ROI bundle each image's knee rows, then its image-level row."""
    paths = expand_paths(inputs)
    if out is not None and Path(out).suffix.lower() not in OUTPUT_SUFFIXES:
        raise BadConfigError(f"--out {out}: use a .csv or .json file name")
    if out is not None:
        check_writable_dir(Path(out).resolve().parent, "--out")
    explainer = None
    if cam_dir is not None:
        from osteoscan.explain.gradcam import Explainer

        check_writable_dir(cam_dir, "--cam")
        explainer = Explainer.from_bundle(bundle_dir)
    rows = []
    with open_predictor(bundle_dir, backend, threads) as predictor:
        for row, image in predictor.predict(paths, batch_size, progress):
            rows.append(row)
            if explainer is not None and image is not None:
                target = Path(cam_dir) / f"{Path(row.path).stem}.cam.png"
                explainer.explain_prepared(image, Path(row.path).name).save(target)
    rows = flatten(rows)
    if out is not None:
        write_rows(rows, out)
    return rows


class _Progress:
    """A one-line progress bar on stderr for long runs (only when stderr is a terminal)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.enabled = total > 0 and sys.stderr.isatty()

    def advance(self, n: int) -> None:
        self.done += n
        if self.enabled:
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\rpredict [{bar}] {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
