"""Audit speed: a whole ``run_audit`` on large synthetic radiographs, and the near-duplicate index.

Prints, in one run:
1. wall time and images/s of ``run_audit`` (2 workers by default, no fingerprint cache) on
   ``--images`` synthetic grayscale phantoms whose long side is drawn from 1,200-2,700 px, half
   PNG and half JPEG, with a few exact and near duplicates planted (and how many were found);
   the target is 2,000 images in at most 60 s on 2 cores;
2. time of the near-duplicate candidate search on 5,000 / 10,000 / 20,000 synthetic embeddings,
   with the number of candidate pairs against the n^2/2 pairs a full comparison would score.

The images are generated once into ``--data`` (not timed) and reused by later runs.

    .venv/bin/python benchmarks/audit_speed.py [--images 2000] [--workers 2] [--data DIR]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np

PLANTED_FRACTION = 0.02  # of the images, planted as exact copies and again as near copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "osteoscan-audit-bench"
    )
    parser.add_argument("--index-sizes", type=int, nargs="*", default=[5000, 10000, 20000])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from osteoscan.audit import run_audit

    folder = args.data / f"n{args.images}-v3"
    planted = make_dataset(folder, args.images, args.workers)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    result = run_audit(folder, workers=args.workers)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    n = len(result.paths)
    print(
        f"\nrun_audit: {n} images (long side 1,200-2,700 px) in {seconds:.1f} s "
        f"= {n / seconds:.1f} images/s with {args.workers} workers (target <= 60 s for 2,000)"
    )
    print(
        f"  CPU time of all processes: {cpu:.1f} s, so at least {cpu / args.workers:.1f} s on "
        f"{args.workers} cores; a wall time far above that means other programs shared them"
    )
    family = [_family(Path(p), args.images, planted) for p in result.paths]
    exact_ok = sum(len({family[i] for i in g.members}) == 1 for g in result.exact_duplicates)
    near_found = {family[g.members[0]] for g in result.near_duplicates}
    near_wrong = sum(len({family[i] for i in g.members}) > 1 for g in result.near_duplicates)
    print(
        f"  planted {planted} exact and near copies: {exact_ok} of "
        f"{len(result.exact_duplicates)} exact groups are planted ones; near copies found for "
        f"{len(near_found)} of {planted} originals; near groups joining different "
        f"originals: {near_wrong}"
    )
    index_timing(args.index_sizes)


def _cpu_seconds() -> float:
    """User + system time of this process and of its finished children (the worker pools)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _family(path: Path, n: int, n_planted: int) -> int:
    """The original an image was drawn from (see _write_one)."""
    index = int(path.stem.split("_")[1])
    n_plain = n - 2 * n_planted
    return index if index < n_plain else 2 * ((index - n_plain) % n_planted)


def index_timing(sizes: list[int]) -> None:
    from osteoscan.audit.candidates import candidate_pairs

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(24, 144))
    print("\nnear-duplicate candidate search (KD-tree + re-ranking, 2 views):")
    for n in sizes:
        embeddings = rng.normal(size=(n, 2, 24)) @ basis + 0.3 * rng.normal(size=(n, 2, 144))
        start = time.perf_counter()
        pairs = candidate_pairs(embeddings.astype(np.float32))
        seconds = time.perf_counter() - start
        print(
            f"  n={n:>6}: {seconds:6.2f} s, {len(pairs):>7} candidate pairs "
            f"(all pairs: {n * (n - 1) // 2:,})"
        )


def make_dataset(folder: Path, n: int, workers: int) -> int:
    """Write n phantoms into normal/ and osteoporosis/ (once); returns how many originals got
    an exact and a near copy."""
    n_planted = max(1, int(n * PLANTED_FRACTION))
    done = folder / ".complete"
    if not done.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        jobs = [(folder, i, n, n_planted) for i in range(n)]
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_one, jobs, chunksize=8):
                pass
        done.write_text("ok\n")
    return n_planted


def _write_one(job: tuple[Path, int, int, int]) -> None:
    """Image i, drawn from seed i; the last 2*n_planted images are copies of PNG originals:
    first exact copies (same seed, same pixels), then near copies."""
    from PIL import Image

    from osteoscan.data.synth import render_phantom

    folder, i, n, n_planted = job
    n_plain = n - 2 * n_planted
    source = i if i < n_plain else 2 * ((i - n_plain) % n_planted)  # copies are of PNG originals
    rng = np.random.default_rng(source)
    t_score = float(rng.normal(-1.5, 1.5))
    square = render_phantom(t_score, rng, 512)
    width = int(512 * rng.uniform(0.45, 1.0))  # a centred crop: a narrower view, not a squeeze
    base = Image.fromarray(square[:, (512 - width) // 2 : (512 - width) // 2 + width])
    long_side = int(rng.integers(1200, 2701))
    image = base.resize((round(width * long_side / 512), long_side), Image.Resampling.BICUBIC)
    # Real radiographs carry their own grain at every scale; a drawing upscaled 2-5 times has
    # none, and two of them differ only in shape. Add grain at about one thumbnail pixel.
    grain = rng.normal(0.0, 4.0, (long_side // 16 + 1, image.width // 16 + 1)).astype(np.float32)
    grain = np.asarray(Image.fromarray(grain).resize(image.size, Image.Resampling.BICUBIC))
    noise = rng.normal(0.0, 2.0, (long_side, image.width))
    pixels = np.asarray(image, dtype=np.float32) + grain + noise
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    label = "osteoporosis" if t_score <= -2.5 else "normal"
    fmt = "PNG" if source % 2 == 0 else "JPEG"
    if i >= n - n_planted:  # near copy: 5% crop, resized, re-encoded as JPEG
        w, h = image.size
        image = image.crop((w // 20, h // 20, w, h)).resize((w * 3 // 4, h * 3 // 4))
        fmt = "JPEG"
    elif i >= n_plain:  # exact copy: the same pixels as PNG under another name
        fmt = "PNG"
    suffix = ".png" if fmt == "PNG" else ".jpg"
    (folder / label).mkdir(exist_ok=True)
    image.save(folder / label / f"img_{i:05d}{suffix}", format=fmt, quality=92)


if __name__ == "__main__":
    main()
