"""Synthetic datasets with planted duplicates, conflicts and broken files, built once per session."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osteoscan.data.synth import render_phantom


def phantom(seed: int, t_score: float) -> np.ndarray:
    """A distinct phantom radiograph, 160-300 px on its long side, portrait or square."""
    rng = np.random.default_rng(seed)
    square = render_phantom(t_score, rng, 320)
    width = int(320 * rng.uniform(0.6, 1.0))
    left = (320 - width) // 2
    long_side = int(rng.integers(160, 301))
    image = Image.fromarray(square[:, left : left + width])
    return np.asarray(image.resize((round(width * long_side / 320), long_side), Image.LANCZOS))


def save(path: Path, pixels: np.ndarray, mode: str = "L", **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path, **options)
    return path


@dataclass(frozen=True)
class Planted:
    """A class-folder dataset and what was planted in it (file names relative to ``root``)."""

    root: Path
    families: dict[str, str]  # every readable file -> the original it was made from
    exact: list[set[str]]  # groups of files with identical pixels
    near: list[tuple[str, str]]  # (original, edited copy)
    broken: list[str]


@pytest.fixture(scope="session")
def planted(tmp_path_factory) -> Planted:
    """10 distinct phantoms per class, plus exact copies (TIFF, RGB, BMP in the other class),
    near copies (resized + JPEG, 5% crop, 4 degree rotation, contrast), a corrupt and an empty file.
    """
    root = tmp_path_factory.mktemp("planted")
    families: dict[str, str] = {}
    originals: dict[str, np.ndarray] = {}
    for k in range(10):
        for cls, t_score, seed in (("normal", 0.0, k), ("osteoporosis", -3.2, 100 + k)):
            name = f"{cls}/{cls[0]}{k:02d}.png"
            originals[name] = phantom(seed, t_score)
            save(root / name, originals[name])
            families[name] = name

    def copy(original: str, name: str, pixels: np.ndarray, mode: str = "L", **options) -> None:
        save(root / name, pixels, mode, **options)
        families[name] = original

    n00, n01, n02 = (originals[f"normal/n{k:02d}.png"] for k in range(3))
    copy("normal/n00.png", "normal/n00_copy.tiff", n00)
    copy("normal/n01.png", "normal/n01_rgb.png", n01, mode="RGB")
    copy("normal/n02.png", "osteoporosis/n02_again.bmp", n02)

    n03 = Image.fromarray(originals["normal/n03.png"])
    small = n03.resize((n03.width * 7 // 10, n03.height * 7 // 10), Image.LANCZOS)
    copy("normal/n03.png", "normal/n03_small.jpg", np.asarray(small), quality=85)
    n04 = originals["normal/n04.png"]
    dy, dx = n04.shape[0] // 20, n04.shape[1] // 20
    copy("normal/n04.png", "normal/n04_crop.png", n04[dy:, dx:])
    n05 = Image.fromarray(originals["normal/n05.png"]).rotate(4, Image.BILINEAR)
    copy("normal/n05.png", "normal/n05_rot.png", np.asarray(n05))
    n06 = originals["normal/n06.png"].astype(np.float32)
    copy(
        "normal/n06.png",
        "normal/n06_contrast.png",
        np.clip(n06 * 1.25 - 20, 0, 255).astype(np.uint8),
    )

    (root / "normal/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (root / "osteoporosis/empty.jpg").write_bytes(b"")
    return Planted(
        root=root,
        families=families,
        exact=[
            {"normal/n00.png", "normal/n00_copy.tiff"},
            {"normal/n01.png", "normal/n01_rgb.png"},
            {"normal/n02.png", "osteoporosis/n02_again.bmp"},
        ],
        near=[
            ("normal/n03.png", "normal/n03_small.jpg"),
            ("normal/n04.png", "normal/n04_crop.png"),
            ("normal/n05.png", "normal/n05_rot.png"),
            ("normal/n06.png", "normal/n06_contrast.png"),
        ],
        broken=["normal/broken.png", "osteoporosis/empty.jpg"],
    )


@pytest.fixture(scope="session")
def manifest(tmp_path_factory) -> Path:
    """A CSV manifest: b.png's T-score says osteoporosis but it is labelled normal, and patient
    P1 has one image in each class."""
    root = tmp_path_factory.mktemp("manifest")
    rows = [
        ("a.png", "normal", "-0.5", "P1"),
        ("b.png", "normal", "-3.0", "P2"),
        ("c.png", "osteoporosis", "-3.1", "P1"),
        ("d.png", "osteoporosis", "-2.8", "P3"),
        ("e.png", "normal", "0.2", "P4"),
    ]
    for k, (name, *_) in enumerate(rows):
        save(root / "images" / name, phantom(500 + k, -1.0))
    path = root / "labels.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("path", "label", "t_score", "patient_id"))
        writer.writerows((f"images/{name}", *rest) for name, *rest in rows)
    return path
