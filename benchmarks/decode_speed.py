"""Decoding speed: what preparing one radiograph for the network costs, and what the
allocator setting of :mod:`osteoscan.inference.allocator` changes.

Prints, for glibc's default malloc and for ``keep_freed_memory()`` (each in a fresh process),
milliseconds and page faults per image on the real JPEGs, run where ``Predictor.predict`` runs
it: in a decode thread. Two paths to the same letterboxed pixels: ``Preprocessor.load`` (an
8-bit image is resized from the decoder's grey image through a lookup table, never making its
full-size float array) and "via array", ``letterbox(read_image(path))``, through the full-size
float32 array (the path of 16-bit PNGs and DICOM, and of 8-bit images before). Each figure is the
median over ``--rounds`` passes (after one warm-up pass) in each of ``--processes`` fresh
processes per setting, run alternately. Then the cost of normalising one batch
of 16 letterboxed images (``Preprocessor.normalise``, on the inference thread between batches)
against the plain broadcast ``(x - mean) / std`` it replaces (the same values), per setting.

    .venv/bin/python benchmarks/decode_speed.py [--data DIR] [--images 32] [--rounds 5]
        [--processes 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "knee-xray-372"
SIZE = 224
SETTINGS = ("glibc default", "keep_freed_memory")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def worker(setting: str, paths: list[Path], rounds: int) -> None:
    """One setting, one process: prints one JSON line of per-round (ms, faults) per image, for
    each path."""
    from osteoscan.data.decode import read_image
    from osteoscan.data.pixels import CONTRACT_VERSION, letterbox
    from osteoscan.inference.allocator import keep_freed_memory
    from osteoscan.inference.preprocess import Preprocessor
    from osteoscan.metadata import InputSpec

    applied = keep_freed_memory() if setting == SETTINGS[1] else False
    pre = Preprocessor(InputSpec(SIZE, 3, (0.5,) * 3, (0.25,) * 3, CONTRACT_VERSION))
    ways = {"load": pre.load, "array": lambda path: letterbox(read_image(path), SIZE)}
    results: dict[str, list] = {way: [] for way in ways}

    def passes() -> None:
        for round_ in range(rounds + 1):
            for way, prepare in ways.items():
                faults, start = _faults(), time.perf_counter()
                for path in paths:
                    prepare(path)
                if round_:  # the first pass warms up
                    elapsed = 1000 * (time.perf_counter() - start) / len(paths)
                    results[way].append((elapsed, (_faults() - faults) / len(paths)))

    thread = threading.Thread(target=passes, name="osteoscan-decode")
    thread.start()
    thread.join()
    normalise, broadcast = _normalise_times(rounds)
    print(json.dumps({"applied": applied, "rounds": results, "normalise": [normalise, broadcast]}))


def _normalise_times(rounds: int) -> tuple[float, float]:
    """Median ms per batch of 16 at SIZE px: Preprocessor.normalise, and the broadcast formula."""
    from osteoscan.data.pixels import CONTRACT_VERSION
    from osteoscan.inference.preprocess import Preprocessor
    from osteoscan.metadata import InputSpec

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pre = Preprocessor(InputSpec(SIZE, 3, mean, std, CONTRACT_VERSION))
    squares = list(np.random.default_rng(0).random((16, SIZE, SIZE), dtype=np.float32))
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)

    def broadcast():
        batch = np.asarray(squares, dtype=np.float32)[:, None]
        return np.ascontiguousarray((np.broadcast_to(batch, (16, 3, SIZE, SIZE)) - m) / s)

    times = {}
    for name, run in (("normalise", lambda: pre.normalise(squares)), ("broadcast", broadcast)):
        run()
        laps = []
        for _ in range(max(rounds, 1) * 10):
            start = time.perf_counter()
            run()
            laps.append(1000 * (time.perf_counter() - start))
        times[name] = float(np.median(laps))
    return times["normalise"], times["broadcast"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REAL, help="folder of real radiographs")
    parser.add_argument("--images", type=int, default=32, help="real JPEGs per pass")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes per setting")
    parser.add_argument(
        "--processes", type=int, default=3, help="fresh processes per setting, alternating"
    )
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no real images at {args.data}; pass --data FOLDER")
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    paths = paths[: args.images]
    if not paths:
        sys.exit(f"no JPEG images under {args.data}")
    if args.worker:
        worker(args.worker, paths, args.rounds)
        return
    from PIL import Image

    with Image.open(paths[0]) as first:
        size = "x".join(map(str, first.size))
    print(
        f"{len(paths)} real JPEGs (e.g. {size} px) -> {SIZE} px letterbox, in a decode "
        f"thread; median of {args.rounds} passes after a warm-up in each of {args.processes} "
        "fresh processes per setting, run alternately"
    )
    print(
        f"{'malloc':20} {'ms/image':>9} {'faults':>7} {'via array':>10} {'faults':>7} "
        f"{'normalise ms/batch':>19} {'broadcast ms/batch':>19}"
    )
    answers: dict[str, list[dict]] = {setting: [] for setting in SETTINGS}
    for _ in range(args.processes):  # alternating, so a change in the machine's load hits both
        for setting in SETTINGS:
            command = [sys.executable, __file__, "--worker", setting, "--data", str(args.data)]
            command += ["--images", str(args.images), "--rounds", str(args.rounds)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            answers[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for setting, runs in answers.items():
        figures = []
        for way in ("load", "array"):
            rounds = np.concatenate([np.asarray(run["rounds"][way]) for run in runs])
            figures.append(np.median(rounds, axis=0))
        (ms, faults), (array_ms, array_faults) = figures
        ours, broadcast = np.median([run["normalise"] for run in runs], axis=0)
        applied = all(run["applied"] for run in runs)
        label = setting if setting == SETTINGS[0] or applied else f"{setting} (n/a)"
        print(
            f"{label:20} {ms:9.2f} {faults:7.0f} {array_ms:10.2f} {array_faults:7.0f} "
            f"{ours:19.2f} {broadcast:19.2f}"
        )


if __name__ == "__main__":
    main()
