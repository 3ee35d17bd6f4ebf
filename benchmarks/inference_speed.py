"""Inference speed: plain fp32 eager PyTorch against each osteoscan backend, on the same images.

Prints, in one run, per model (random weights: speed only):
* single-image latency p50/p95 from the file (decode of the ~1,024-px JPEG, letterbox,
  normalise, inference; batch 1);
* batch throughput at 224 px, batch 16: the bare model on prepared tensors and osteoscan
  end to end from the files (decode included), and their ratio;
* peak resident memory of the process that ran the backend (each runs in a fresh process);
* int8 agreement with fp32 on the same images (largest absolute probability difference),
  refused when above osteoscan.inference.export.INT8_TOLERANCE, naming the figure.
Backends: ``eager`` (plain fp32 torch, NCHW, no_grad), ``torch`` (osteoscan's tuned torch
backend: channels-last, inference mode), ``onnx`` (onnxruntime fp32), ``onnx-int8``
(onnxruntime, static QDQ per-channel, calibrated on --calibration-images).

    .venv/bin/python benchmarks/inference_speed.py [--models resnet50,efficientnet_lite0]
        [--images 32] [--threads 1] [--calibration-images DIR]

The CPU here is shared with other work: numbers vary from run to run.
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

from osteoscan.data.pixels import CONTRACT_VERSION
from osteoscan.inference.backends import OnnxBackend, TorchBackend
from osteoscan.inference.export import INT8_TOLERANCE, export_net_onnx, quantize_int8
from osteoscan.inference.predict import expand_paths
from osteoscan.inference.preprocess import Preprocessor
from osteoscan.metadata import InputSpec
from osteoscan.stats import softmax

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "knee-xray-372"
BACKENDS = ("eager", "torch", "onnx", "onnx-int8")
SIZE = 224
BATCH = 16


def _spec(model: str, onnx_dir: Path) -> InputSpec:
    """The model's input spec, written by the parent so ONNX workers never import torch."""
    file = onnx_dir / f"{model}.spec.json"
    if not file.is_file():
        from osteoscan.models import get_spec

        spec = get_spec(model)
        file.write_text(json.dumps([spec.in_chans, spec.mean, spec.std]))
    in_chans, mean, std = json.loads(file.read_text())
    return InputSpec(SIZE, in_chans, tuple(mean), tuple(std), CONTRACT_VERSION)


def _net(model: str):
    import torch

    from osteoscan.models import build_for_inference

    torch.manual_seed(0)
    return build_for_inference(model, "scratch", 2).eval()


class _Eager:
    """Plain fp32 eager PyTorch: what a user gets without osteoscan's tuning."""

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


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(model: str, name: str, onnx_dir: Path, paths: list[Path], threads: int) -> dict:
    """Measure one backend of one model (run in its own process, for its own peak memory)."""
    pre = Preprocessor(_spec(model, onnx_dir))
    backend = _backend(name, model, onnx_dir, threads)
    prepared = pre.normalise([pre.load(p).square for p in paths[:BATCH]])
    backend.logits(prepared[:1])  # warm-up: first-run allocations and kernel selection
    backend.logits(prepared)
    latencies = []
    for path in paths:
        start = time.perf_counter()
        backend.logits(pre.normalise([pre.load(path).square]))
        latencies.append(time.perf_counter() - start)
    rounds = max(1, len(paths) // BATCH)
    start = time.perf_counter()
    for _ in range(rounds):
        backend.logits(prepared)
    bare = rounds * len(prepared) / (time.perf_counter() - start)
    chunks = [paths[i : i + BATCH] for i in range(0, len(paths), BATCH)][:rounds]
    start = time.perf_counter()
    for chunk in chunks:
        backend.logits(pre.normalise([pre.load(p).square for p in chunk]))
    end_to_end = sum(map(len, chunks)) / (time.perf_counter() - start)
    return {
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "bare_img_s": bare,
        "e2e_img_s": end_to_end,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _prepare_onnx(model: str, onnx_dir: Path, paths, calibration) -> float:
    """Export fp32 and int8 files; returns the largest int8-vs-fp32 probability difference."""
    pre = Preprocessor(_spec(model, onnx_dir))
    fp32 = export_net_onnx(_net(model), pre.spec, onnx_dir / f"{model}.fp32.onnx")
    calib = pre.normalise([pre.load(p).square for p in calibration])
    int8 = quantize_int8(fp32, onnx_dir / f"{model}.int8.onnx", calib)
    pixels = pre.normalise([pre.load(p).square for p in paths])
    a, b = OnnxBackend(fp32).logits(pixels), OnnxBackend(int8).logits(pixels)
    return float(np.abs(softmax(a) - softmax(b)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,efficientnet_lite0")
    parser.add_argument("--images", type=int, default=32, help="real images to time")
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
        print(json.dumps(worker(model, name, Path(onnx_dir), paths, args.threads)))
        return
    from osteoscan.models import MODELS

    calibration = expand_paths([args.calibration_images or args.data])[:32]
    models = [m for m in args.models.split(",") if m]
    if "efficientnet_lite0" in models and "efficientnet_lite0" not in MODELS:
        print("efficientnet_lite0 is not registered here: using efficientnet_b0 instead")
        models = ["efficientnet_b0" if m == "efficientnet_lite0" else m for m in models]
    from PIL import Image

    with Image.open(paths[0]) as first:
        side = max(first.size)
    print(
        f"{len(paths)} real images ({paths[0].suffix}, e.g. {side} px), {args.threads} "
        f"thread(s), {SIZE} px, batch {BATCH}; random weights (speed only); shared CPU"
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
                f"{'e2e img/s':>10} {'e2e/bare':>9} {'x eager':>8} {'peak MB':>8}"
            )
            results = {}
            for name in BACKENDS:
                if name == "onnx-int8" and diff > INT8_TOLERANCE:
                    continue
                command = [
                    sys.executable,
                    __file__,
                    "--worker",
                    model,
                    name,
                    onnx_dir,
                    "--images",
                    str(args.images),
                    "--data",
                    str(args.data),
                    "--threads",
                    str(args.threads),
                ]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                r = results[name] = json.loads(done.stdout.strip().splitlines()[-1])
                speedup = r["bare_img_s"] / results["eager"]["bare_img_s"]
                print(
                    f"{name:10} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['bare_img_s']:11.2f} "
                    f"{r['e2e_img_s']:10.2f} {r['e2e_img_s'] / r['bare_img_s']:9.2f} "
                    f"{speedup:8.2f} {r['peak_rss_mb']:8.0f}"
                )


if __name__ == "__main__":
    main()
