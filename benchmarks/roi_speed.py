"""Knee localiser speed: ``find_knees`` per image, on one core, on 1,024-px images.

Prints the median and 95th-percentile milliseconds per image of ``find_knees`` on decoded pixels
(decoding not timed), each image run ``--repeat`` times, on one thread. Images: the real
372-image set when ``../shared/data/knee-xray-372`` is present (long side <= 1,024 px), else
synthetic mixed views scaled to a 1,024-px long side. Target: <= 50 ms per image.

    .venv/bin/python benchmarks/roi_speed.py [--repeat 3] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "knee-xray-372"


def _images(data: Path | None) -> tuple[str, list[np.ndarray]]:
    from osteoscan.data.decode import read_image
    from osteoscan.roi.batch import image_paths

    folder = data or (REAL if REAL.is_dir() else None)
    if folder is not None:
        return str(folder), [read_image(path) for path in image_paths(folder)]
    from osteoscan.data.synth import DEFAULT_VIEW_MIX, make_synthetic_dataset

    out = Path(tempfile.mkdtemp(prefix="roi-speed-"))
    make_synthetic_dataset(out, n=60, seed=0, image_size=256, views=DEFAULT_VIEW_MIX)
    images = []
    for path in sorted(out.glob("*/*.png")):
        with Image.open(path) as image:
            scale = 1024 / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            resized = image.resize(size, Image.Resampling.BILINEAR)
            images.append(np.asarray(resized, dtype=np.float32) / 255.0)
    return "synthetic mixed views at 1,024 px", images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from osteoscan.roi.localise import find_knees

    source, images = _images(args.data)
    times = []
    with threadpool_limits(1):
        for pixels in images:
            find_knees(pixels)  # warm caches
            for _ in range(args.repeat):
                started = time.perf_counter()
                find_knees(pixels)
                times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    sides = [max(image.shape) for image in images]
    print(f"images: {len(images)} from {source} (long side {min(sides)}-{max(sides)} px)")
    print(
        f"find_knees: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
        f"max {ms.max():.1f} ms per image (1 thread; target <= 50 ms)"
    )


if __name__ == "__main__":
    main()
