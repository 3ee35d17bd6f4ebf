"""Where ``Predictor.predict``'s time goes: the decode/inference pipeline, timed piece by piece.

Prints, for one model and backend (random weights: speed only), on the same real images:
* the bare model's throughput at batch sizes 1 to 16 on prepared tensors (best of ``--repeats``):
  on a CPU a small batch is about as fast per image as batch 16, or faster, which is why the
  batches may start small;
* ``--runs`` end-to-end runs over ``--e2e-images`` images for each batch schedule, run
  alternately: "osteoscan" (``batch_ends``: 2 images, then each batch an eighth larger, up to
  the batch size) and "fixed" (every batch the batch size, from the first). Per schedule, the
  median over runs of: end-to-end img/s, and its ratio to the bare model timed just before on
  the same number of batch-16 images; "fill" (from the call to the start of the first
  inference: the model waiting for the first batch's decoding); "waits" (between inferences: the
  model waiting for decoding, plus the rows' bookkeeping); inference ms (the sum of the model's
  calls) against the same batches run bare right after; and decode ms per image in each thread
  (the caller decodes when it would otherwise wait).

The timings come from wrapping the predictor's ``_load`` (decode, letterbox, normalise of one
file) and ``_scored`` (one batch through the model); "fixed" replaces ``batch_ends`` for its runs.

    .venv/bin/python benchmarks/predict_pipeline.py [--model efficientnet_lite0]
        [--backend onnx-int8] [--images 32] [--e2e-images 96] [--runs 7] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import inference_speed as common  # the sibling benchmark: its models, backends and images
import numpy as np

from osteoscan.inference.predict import Predictor, expand_paths

PREDICT_MODULE = sys.modules["osteoscan.inference.predict"]  # the package re-exports predict()
BATCH = common.BATCH
SCHEDULES = {
    "osteoscan": PREDICT_MODULE.batch_ends,
    "fixed": lambda total, size: [*range(size, total, size), total] if total else [],
}


class _Timed:
    """Wraps a predictor's per-image load and per-batch scoring to record when each ran."""

    def __init__(self, predictor: Predictor) -> None:
        self.loads: list[tuple[str, float, float]] = []  # (thread, start, end)
        self.batches: list[tuple[int, float, float]] = []  # (images, start, end)
        load, scored = predictor._load, predictor._scored

        def timed_load(path, out=None):
            start = time.perf_counter()
            result = load(path, out)
            self.loads.append((threading.current_thread().name, start, time.perf_counter()))
            return result

        def timed_scored(batch):
            start = time.perf_counter()
            result = scored(batch)
            self.batches.append((len(batch), start, time.perf_counter()))
            return result

        predictor._load, predictor._scored = timed_load, timed_scored

    def clear(self) -> None:
        self.loads.clear()
        self.batches.clear()


def _best_rate(backend, batch: np.ndarray, images: int, repeats: int) -> float:
    """Best img/s over ``repeats`` passes of ``images`` images in batches of ``len(batch)``."""
    calls = max(1, images // len(batch))
    backend.logits(batch)
    return max(common.bare_rate(backend, batch, calls) for _ in range(repeats))


def _one_run(predictor, timed, paths, prepared, schedule) -> dict:
    """One end-to-end run with ``schedule``, the bare model timed on as many images just before."""
    bare = _best_rate(predictor.backend, prepared, len(paths), 1)
    PREDICT_MODULE.batch_ends = SCHEDULES[schedule]
    try:
        timed.clear()
        start = time.perf_counter()
        rows = [row for row, _ in predictor.predict(paths, BATCH)]
        wall = time.perf_counter() - start
    finally:
        PREDICT_MODULE.batch_ends = SCHEDULES["osteoscan"]
    if any(row.error for row in rows):
        sys.exit(f"a real image failed: {next(row.error for row in rows if row.error)}")
    batches = list(timed.batches)
    inference = sum(end - begin for _, begin, end in batches)
    again = time.perf_counter()
    for size, *_ in batches:
        predictor.backend.logits(prepared[:size])
    decode: dict[str, list[float]] = {}
    for thread, begin, end in timed.loads:
        decode.setdefault("caller" if thread == "MainThread" else "thread", []).append(end - begin)
    return {
        "e2e": len(rows) / wall,
        "ratio": len(rows) / wall / bare,
        "fill": batches[0][1] - start,
        "waits": sum(b[1] - a[2] for a, b in zip(batches[:-1], batches[1:], strict=True)),
        "inference": inference,
        "inference_bare": time.perf_counter() - again,
        "batches": len(batches),
        **{f"{who} n": len(times) for who, times in decode.items()},
        **{f"{who} ms": 1000 * float(np.mean(times)) for who, times in decode.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--backend", default="onnx-int8", choices=common.BACKENDS)
    parser.add_argument("--images", type=int, default=32, help="real images (repeated to fill)")
    parser.add_argument("--e2e-images", type=int, default=96, help="images per end-to-end run")
    parser.add_argument("--runs", type=int, default=7, help="end-to-end runs per schedule")
    parser.add_argument("--repeats", type=int, default=3, help="passes per bare batch size")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the model")
    parser.add_argument("--data", type=Path, default=common.REAL, help="folder of radiographs")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no real images at {args.data}; pass --data FOLDER")
    jpegs = [p for p in expand_paths([args.data]) if p.suffix.lower() in (".jpg", ".jpeg")]
    images = (jpegs or expand_paths([args.data]))[: args.images]
    paths = (images * (args.e2e_images // len(images) + 1))[: args.e2e_images]
    with tempfile.TemporaryDirectory() as folder:
        onnx_dir = Path(folder)
        if args.backend.startswith("onnx"):
            common._prepare_onnx(args.model, onnx_dir, images, images)
        spec = common._spec(args.model, onnx_dir)
        backend = common._backend(args.backend, args.model, onnx_dir, args.threads)
        predictor = Predictor(common._metadata(args.model, spec), backend, onnx_dir)
        timed = _Timed(predictor)
        pre = predictor.preprocessor
        prepared = pre.normalise([pre.load(p).square for p in (images * BATCH)[:BATCH]])
        print(
            f"{args.model} / {args.backend}, {args.threads} thread(s), {spec.image_size} px, "
            f"{len(images)} real images ({images[0].suffix}), random weights (speed only)"
        )
        rates = {
            size: _best_rate(backend, prepared[:size], BATCH * 4, args.repeats)
            for size in (1, 2, 4, 8, 16)
        }
        print("bare img/s by batch size: " + "  ".join(f"{k}: {v:.1f}" for k, v in rates.items()))
        list(predictor.predict(paths[:BATCH], BATCH))  # warm-up: the decode thread and buffers
        runs: dict[str, list[dict]] = {name: [] for name in SCHEDULES}
        for _ in range(args.runs):
            for name in SCHEDULES:
                runs[name].append(_one_run(predictor, timed, paths, prepared, name))
        predictor.close()
    print(
        f"\n{args.e2e_images} images, batch {BATCH}, medians of {args.runs} alternate runs "
        f"(decode: ms per image, images per run)"
    )
    print(
        f"{'schedule':10} {'e2e img/s':>9} {'e2e/bare':>8} {'fill ms':>8} {'waits ms':>8} "
        f"{'infer ms':>8} {'bare ms':>8} {'batches':>7}  decode caller / thread"
    )
    for name, results in runs.items():

        def median(key: str, scale: float = 1.0, rows=results) -> float:
            """Over the runs that have ``key`` (a run where the caller decoded nothing has no
            caller ms); image counts count such a run as 0."""
            present = [r[key] for r in rows if key in r]
            if key.endswith(" n"):
                present += [0] * (len(rows) - len(present))
            return scale * float(np.median(present)) if present else float("nan")

        print(
            f"{name:10} {median('e2e'):9.1f} {median('ratio'):8.2f} {median('fill', 1e3):8.1f} "
            f"{median('waits', 1e3):8.1f} {median('inference', 1e3):8.1f} "
            f"{median('inference_bare', 1e3):8.1f} {median('batches'):7.0f}  "
            f"{median('caller ms'):.2f} x {median('caller n'):.0f} / "
            f"{median('thread ms'):.2f} x {median('thread n'):.0f}"
        )


if __name__ == "__main__":
    main()
