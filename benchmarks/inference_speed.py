"""Inference speed: plain fp32 eager PyTorch against each osteoscan backend, on the same images.

Prints, in one run, per model (random weights: speed only, the probabilities mean nothing):
* single-image latency p50/p95 from the file through ``Predictor.predict`` (decode of the
  ~1,024-px JPEG, letterbox, normalise, inference; batch 1);
* batch throughput at 224 px, batch 16: the bare model on prepared tensors, and osteoscan end to
  end from the files through ``Predictor.predict`` (decode and letterbox of the next batch
  overlapped with inference of this one; its batches start at 2 images and grow to 16) over
  ``--e2e-images`` images, and their ratio (the bare model is timed on as many images, just
  before; ``predict_pipeline.py`` breaks the difference down);
* peak resident memory of the process that ran the backend (each backend has its own process);
* int8 agreement with fp32 on the same images (largest absolute probability difference),
  refused when above osteoscan.inference.export.INT8_TOLERANCE, naming the figure.
Backends: ``eager`` (plain fp32 torch, NCHW, no_grad), ``torch`` (osteoscan's tuned torch
backend: channels-last, inference mode), ``onnx`` (onnxruntime fp32), ``onnx-int8``
(onnxruntime, static QDQ per-channel, calibrated on --calibration-images).

The CPU here is shared with other work, so every backend's process is started first and then
measured in ``--rounds`` interleaved rounds (one backend busy at a time). In each round the bare and
the end-to-end run alternate until they have taken ``--min-seconds`` (at most MAX_PAIRS times), and
each throughput figure is the best over all rounds and repeats ("pairs": how many of each), as
``timeit`` reports its fastest run: a burst of other work only ever slows a run down, and a fast
backend's half-second runs are otherwise at its mercy. "e2e/bare" and "x eager" are ratios of
those best figures; the latency percentiles are over every single-image run.

    .venv/bin/python benchmarks/inference_speed.py [--models resnet50,efficientnet_lite0]
        [--images 32] [--e2e-images 96] [--rounds 3] [--min-seconds 3] [--threads 1]
        [--calibration-images DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from osteoscan.data.labels import Task
from osteoscan.data.pixels import CONTRACT_VERSION
from osteoscan.inference.backends import OnnxBackend, TorchBackend
from osteoscan.inference.export import INT8_TOLERANCE, export_net_onnx, quantize_int8
from osteoscan.inference.predict import Predictor, expand_paths
from osteoscan.inference.preprocess import Preprocessor
from osteoscan.metadata import BundleMetadata, FitSummary, InputSpec, TrainingRecord
from osteoscan.stats import softmax

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "knee-xray-372"
BACKENDS = ("eager", "torch", "onnx", "onnx-int8")
SIZE = 224
BATCH = 16
MAX_PAIRS = 5  # bare/end-to-end pairs per round at most
_NO_SHA = "0" * 64  # random weights: there is no weights file to hash


def _spec(model: str, onnx_dir: Path) -> InputSpec:
    """The model's input spec, written by the parent so ONNX workers never import torch."""
    file = onnx_dir / f"{model}.spec.json"
    if not file.is_file():
        from osteoscan.models import get_spec

        spec = get_spec(model)
        file.write_text(json.dumps([spec.in_chans, spec.mean, spec.std]))
    in_chans, mean, std = json.loads(file.read_text())
    return InputSpec(SIZE, in_chans, tuple(mean), tuple(std), CONTRACT_VERSION)


def _metadata(model: str, spec: InputSpec) -> BundleMetadata:
    """What ``Predictor`` reads from a bundle, for a model with random weights."""
    return BundleMetadata(
        model=model,
        mode="scratch",
        task=Task(),
        input=spec,
        decision_threshold=0.5,
        seed=0,
        weights_sha256=_NO_SHA,
        created="",
        versions={},
        training=TrainingRecord(_NO_SHA, "random weights", 0, 0, 0, 0, 0),
        fit=FitSummary(None, None, 0, "32"),
        config={},
        validation_metrics={},
    )


def _net(model: str):
    import torch

    from osteoscan.models import build_for_inference

    torch.manual_seed(0)
    return build_for_inference(model, "scratch", 2).eval()


class _Eager:
    """Plain fp32 eager PyTorch: what a user gets without osteoscan's tuning."""

    name = "eager"

    def __init__(self, net) -> None:
        import torch

        self.torch, self.net = torch, net

    def logits(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.net(self.torch.from_numpy(batch)).numpy()


def _backend(name: str, model: str, onnx_dir: Path, threads: int):
    if name in ("eager", "torch"):
        import torch

        torch.set_num_threads(threads)
        net = _net(model)
        return _Eager(net) if name == "eager" else TorchBackend(net, threads)
    file = onnx_dir / f"{model}.{'int8' if name == 'onnx-int8' else 'fp32'}.onnx"
    return OnnxBackend(file, threads)


def bare_rate(backend, batch: np.ndarray, calls: int) -> float:
    """img/s of ``calls`` back-to-back calls of the bare model on one prepared batch."""
    start = time.perf_counter()
    for _ in range(calls):
        backend.logits(batch)
    return calls * len(batch) / (time.perf_counter() - start)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(model: str, name: str, onnx_dir: Path, paths: list[Path], args) -> None:
    """One backend of one model, kept in its own process (for its own peak memory): answers
    each "round" line on stdin with one JSON line of timings, and "done" with its peak memory."""
    spec = _spec(model, onnx_dir)
    predictor = Predictor(
        _metadata(model, spec), _backend(name, model, onnx_dir, args.threads), onnx_dir
    )
    backend, pre = predictor.backend, predictor.preprocessor
    prepared = pre.normalise([pre.load(p).square for p in paths[:BATCH]])
    backend.logits(prepared[:1])  # warm-up: first-run allocations and kernel selection
    backend.logits(prepared)
    e2e_paths = (paths * (args.e2e_images // len(paths) + 1))[: args.e2e_images]
    print(json.dumps({"ready": True}), flush=True)
    for command in sys.stdin:
        if command.strip() != "round":
            break
        latencies = []
        for path in paths:
            start = time.perf_counter()
            ((row, _),) = predictor.predict([path], batch_size=1)
            latencies.append(time.perf_counter() - start)
        calls = max(1, len(e2e_paths) // BATCH)  # as many images as the end-to-end run
        backend.logits(prepared)  # untimed: the batch-1 runs above left other buffers warm
        bare = end_to_end = 0.0
        pairs, began = 0, time.perf_counter()
        while pairs < MAX_PAIRS and (pairs == 0 or time.perf_counter() - began < args.min_seconds):
            bare = max(bare, bare_rate(backend, prepared, calls))
            start = time.perf_counter()
            rows = [row for row, _ in predictor.predict(e2e_paths, BATCH)]
            end_to_end = max(end_to_end, len(rows) / (time.perf_counter() - start))
            pairs += 1
            if any(row.error for row in rows):
                sys.exit(
                    f"{model}/{name}: a real image failed: {next(r.error for r in rows if r.error)}"
                )
        answer = {"latencies": latencies, "bare": bare, "e2e": end_to_end, "pairs": pairs}
        print(json.dumps(answer), flush=True)
    print(json.dumps({"peak_rss_mb": _peak_rss_mb()}), flush=True)


def _prepare_onnx(model: str, onnx_dir: Path, paths, calibration) -> float:
    """Export fp32 and int8 files; returns the largest int8-vs-fp32 probability difference."""
    pre = Preprocessor(_spec(model, onnx_dir))
    fp32 = export_net_onnx(_net(model), pre.spec, onnx_dir / f"{model}.fp32.onnx")
    calib = pre.normalise([pre.load(p).square for p in calibration])
    int8 = quantize_int8(fp32, onnx_dir / f"{model}.int8.onnx", calib)
    pixels = pre.normalise([pre.load(p).square for p in paths])
    a, b = OnnxBackend(fp32).logits(pixels), OnnxBackend(int8).logits(pixels)
    return float(np.abs(softmax(a) - softmax(b)).max())


class _Worker:
    """The parent's handle on one backend's worker process."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.rounds: list[dict] = []
        self.answer()

    def answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"a benchmark worker died: {' '.join(self.process.args[3:6])}")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.answer()

    def finish(self) -> float:
        peak = self.ask("done")["peak_rss_mb"]
        self.process.wait(timeout=60)
        return peak


def _measure(model: str, names: list[str], onnx_dir: str, args) -> None:
    """Start every backend's worker, run the interleaved rounds, print one line per backend."""
    forwarded = ["--images", str(args.images), "--e2e-images", str(args.e2e_images)]
    forwarded += ["--data", str(args.data), "--threads", str(args.threads)]
    forwarded += ["--min-seconds", str(args.min_seconds)]
    workers = {
        name: _Worker([sys.executable, __file__, "--worker", model, name, onnx_dir, *forwarded])
        for name in names
    }
    for _ in range(args.rounds):
        for worker_ in workers.values():
            worker_.rounds.append(worker_.ask("round"))
    eager = workers["eager"].rounds
    for name, worker_ in workers.items():
        rounds = worker_.rounds
        latencies = 1000 * np.concatenate([r["latencies"] for r in rounds])
        bare = max(r["bare"] for r in rounds)
        e2e = max(r["e2e"] for r in rounds)
        e2e_ratio, speedup = e2e / bare, bare / max(r["bare"] for r in eager)
        print(
            f"{name:10} {np.percentile(latencies, 50):8.1f} {np.percentile(latencies, 95):8.1f} "
            f"{bare:11.2f} {e2e:10.2f} {e2e_ratio:9.2f} {speedup:8.2f} {worker_.finish():8.0f} "
            f"{sum(r['pairs'] for r in rounds):6d}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,efficientnet_lite0")
    parser.add_argument("--images", type=int, default=32, help="real images to time")
    parser.add_argument(
        "--e2e-images",
        type=int,
        default=96,
        help="images per end-to-end run (the --images, repeated; decoded every time)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per backend")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=3.0,
        help=f"per round, repeat the bare and end-to-end runs (best of each kept, at most "
        f"{MAX_PAIRS} times) until they took this long",
    )
    parser.add_argument("--data", type=Path, default=REAL, help="folder of real radiographs")
    parser.add_argument(
        "--calibration-images",
        type=Path,
        default=None,
        help="folder of images to calibrate int8 on (default: --data)",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per backend")
    parser.add_argument(
        "--worker", nargs=3, metavar=("MODEL", "BACKEND", "ONNX_DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no real images at {args.data}; pass --data FOLDER")
    jpegs = [p for p in expand_paths([args.data]) if p.suffix.lower() in (".jpg", ".jpeg")]
    paths = (jpegs or expand_paths([args.data]))[: args.images]
    if args.worker:
        model, name, onnx_dir = args.worker
        worker(model, name, Path(onnx_dir), paths, args)
        return
    calibration = expand_paths([args.calibration_images or args.data])[:32]
    models = [m for m in args.models.split(",") if m]
    from PIL import Image

    with Image.open(paths[0]) as first:
        side = max(first.size)
    print(
        f"{len(paths)} real images ({paths[0].suffix}, e.g. {side} px), {args.threads} "
        f"thread(s), {SIZE} px, batch {BATCH}, end to end over {args.e2e_images} images, "
        f"{args.rounds} interleaved rounds; random weights (speed only); shared CPU"
    )
    with tempfile.TemporaryDirectory() as onnx_dir:
        for model in models:
            diff = _prepare_onnx(model, Path(onnx_dir), paths, calibration)
            verdict = "kept" if diff <= INT8_TOLERANCE else f"REFUSED (> {INT8_TOLERANCE})"
            print(
                f"\n{model}: int8 vs fp32 max |dP| = {diff:.4f} on {len(paths)} images: {verdict}"
            )
            print(
                f"{'backend':10} {'p50 ms':>8} {'p95 ms':>8} {'bare img/s':>11} "
                f"{'e2e img/s':>10} {'e2e/bare':>9} {'x eager':>8} {'peak MB':>8} {'pairs':>6}"
            )
            names = [n for n in BACKENDS if n != "onnx-int8" or diff <= INT8_TOLERANCE]
            _measure(model, names, onnx_dir, args)


if __name__ == "__main__":
    main()
