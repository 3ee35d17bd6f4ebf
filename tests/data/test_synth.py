"""The synthetic phantom dataset: what `make demo` and the test suite train on."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osteoscan.data.labels import ALL_CLASSES, NORMAL, OSTEOPENIA, OSTEOPOROSIS, who_class
from osteoscan.data.synth import Anatomy, make_synthetic_dataset, render_phantom
from osteoscan.errors import BadConfigError

SIZE = 96


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("small"), n=24, seed=3, image_size=SIZE)


@pytest.fixture(scope="module")
def large_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    out_dir = tmp_path_factory.mktemp("large")
    return _rows(make_synthetic_dataset(out_dir, n=200, seed=1, image_size=48))


def test_layout_and_manifest_columns(small_manifest: Path) -> None:
    out_dir = small_manifest.parent
    assert small_manifest == out_dir / "manifest.csv"
    with small_manifest.open(newline="") as handle:
        assert next(csv.reader(handle)) == ["path", "patient_id", "t_score", "label"]
    rows = _rows(small_manifest)
    assert len(rows) == 24
    expected_names = [f"synth_{index:04d}.png" for index in range(1, 25)]
    assert [Path(row["path"]).name for row in rows] == expected_names
    for row in rows:
        assert re.fullmatch(r"P\d{4}", row["patient_id"])
        assert re.fullmatch(r"-?\d\.\d\d", row["t_score"])
    on_disk = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()}
    assert on_disk == {row["path"] for row in rows} | {"manifest.csv", "README.txt"}


def test_every_image_is_an_8bit_grayscale_png_of_the_requested_size(small_manifest: Path) -> None:
    for row in _rows(small_manifest):
        with Image.open(small_manifest.parent / row["path"]) as image:
            assert image.format == "PNG"
            assert image.mode == "L"
            assert image.size == (SIZE, SIZE)
            pixels = np.asarray(image)
        assert int(pixels.max()) - int(pixels.min()) > 80, f"{row['path']} has no contrast"


def test_labels_follow_who_class_and_the_folder(small_manifest: Path) -> None:
    for row in _rows(small_manifest):
        assert row["label"] == who_class(float(row["t_score"]))
        assert Path(row["path"]).parent.name == row["label"]
        assert row["label"] in ALL_CLASSES


def test_some_patients_have_both_knees_in_the_same_class(large_rows: list[dict[str, str]]) -> None:
    by_patient: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in large_rows:
        by_patient[row["patient_id"]].append(row)
    sizes = Counter(len(images) for images in by_patient.values())
    assert set(sizes) == {1, 2}
    assert 0.07 < sizes[2] / len(by_patient) < 0.25
    for images in by_patient.values():
        assert len({image["label"] for image in images}) == 1


def test_class_balance_is_about_40_20_40(large_rows: list[dict[str, str]]) -> None:
    counts = Counter(row["label"] for row in large_rows)
    assert sum(counts.values()) == 200
    assert 0.28 < counts[NORMAL] / 200 < 0.52
    assert 0.10 < counts[OSTEOPENIA] / 200 < 0.30
    assert 0.28 < counts[OSTEOPOROSIS] / 200 < 0.52


def test_same_seed_gives_identical_bytes_and_another_seed_differs(
    small_manifest: Path, tmp_path: Path
) -> None:
    again = make_synthetic_dataset(tmp_path / "again", n=24, seed=3, image_size=SIZE)
    other = make_synthetic_dataset(tmp_path / "other", n=24, seed=4, image_size=SIZE)
    for row in _rows(small_manifest):
        first = (small_manifest.parent / row["path"]).read_bytes()
        assert (again.parent / row["path"]).read_bytes() == first
    assert again.read_bytes() == small_manifest.read_bytes()
    assert other.read_bytes() != small_manifest.read_bytes()


def test_readme_says_the_images_are_synthetic(small_manifest: Path) -> None:
    text = (small_manifest.parent / "README.txt").read_text()
    assert "SYNTHETIC" in text
    assert "NOT MEDICAL IMAGES" in text


def test_rewriting_with_fewer_images_leaves_no_stale_files(tmp_path: Path) -> None:
    make_synthetic_dataset(tmp_path, n=12, seed=0, image_size=48)
    manifest = make_synthetic_dataset(tmp_path, n=5, seed=0, image_size=48)
    pngs = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")}
    assert pngs == {row["path"] for row in _rows(manifest)}
    assert not list(tmp_path.rglob("*.tmp"))


def test_phantom_is_bright_bone_on_a_dark_background() -> None:
    image = render_phantom(0.0, np.random.default_rng(0), image_size=SIZE, anatomy=Anatomy())
    assert image.dtype == np.uint8
    assert image.shape == (SIZE, SIZE)
    centre = image[:, SIZE // 3 : 2 * SIZE // 3].mean()
    edges = np.concatenate([image[:, : SIZE // 16], image[:, -SIZE // 16 :]], axis=1).mean()
    assert centre > edges + 40


def test_lower_t_score_gives_less_dense_bone_all_else_equal() -> None:
    healthy = render_phantom(1.0, np.random.default_rng(7), image_size=SIZE, anatomy=Anatomy())
    porous = render_phantom(-4.0, np.random.default_rng(7), image_size=SIZE, anatomy=Anatomy())
    assert porous.astype(float).mean() < healthy.astype(float).mean() - 1.0


@pytest.mark.parametrize(("n", "image_size"), [(0, 96), (10, 8)])
def test_impossible_sizes_are_refused(tmp_path: Path, n: int, image_size: int) -> None:
    with pytest.raises(BadConfigError):
        make_synthetic_dataset(tmp_path, n=n, image_size=image_size)


def test_a_leftover_temporary_name_does_not_break_writing(tmp_path: Path) -> None:
    """An interrupted earlier run (or another writer) may leave ``.manifest.csv.tmp`` behind;
    every write uses a fresh temporary name, so the set is still written in full."""
    (tmp_path / ".manifest.csv.tmp").mkdir()
    manifest = make_synthetic_dataset(tmp_path, n=3, seed=0, image_size=48)
    assert len(_rows(manifest)) == 3
    assert [p.name for p in tmp_path.glob(".*")] == [".manifest.csv.tmp"]


def test_single_view_is_the_plain_phantom_and_its_truth_is_in_the_image() -> None:
    from osteoscan.data.synth import render_view

    plain = render_phantom(-1.0, np.random.default_rng(2), image_size=SIZE)
    image, (truth,) = render_view("single", -1.0, np.random.default_rng(2), SIZE)
    np.testing.assert_array_equal(image, plain)
    assert 0.3 * SIZE < truth.x < 0.7 * SIZE and 0.3 * SIZE < truth.y < 0.7 * SIZE
    assert 0.25 * SIZE < truth.width < 0.6 * SIZE  # the condyles span ~0.42 of the view


def test_bilateral_and_long_leg_views_have_their_shapes_and_joints() -> None:
    from osteoscan.data.synth import render_view

    rng = np.random.default_rng(0)
    both, truths = render_view("bilateral", 0.0, rng, SIZE)
    assert both.shape == (SIZE, round(1.75 * SIZE))
    assert [t.side for t in truths] == ["right", "left"]
    assert truths[0].x < both.shape[1] / 2 < truths[1].x
    tall, (joint,) = render_view("long-leg", 0.0, rng, SIZE)
    assert tall.shape == (round(2.5 * SIZE), SIZE)
    assert 0.2 * tall.shape[0] < joint.y < 0.8 * tall.shape[0]
    assert joint.width < 0.3 * SIZE  # zoomed out: a narrower knee than a close-up


def test_view_mix_writes_joint_truth_for_every_image(tmp_path: Path) -> None:
    import json

    from osteoscan.data.synth import DEFAULT_VIEW_MIX, JOINTS_FILE

    manifest = make_synthetic_dataset(tmp_path, n=30, seed=2, image_size=48, views=DEFAULT_VIEW_MIX)
    images = json.loads((tmp_path / JOINTS_FILE).read_text())["images"]
    assert set(images) == {row["path"] for row in _rows(manifest)}
    views = Counter(entry["view"] for entry in images.values())
    assert set(views) == {"single", "bilateral", "long-leg"}
    for path, entry in images.items():
        assert len(entry["joints"]) == (2 if entry["view"] == "bilateral" else 1)
        with Image.open(tmp_path / path) as image:
            width, height = image.size
        for joint in entry["joints"]:
            assert 0 < joint["x"] < width and 0 < joint["y"] < height


def test_view_mix_keeps_the_patients_and_plain_rewrite_drops_the_sidecar(tmp_path: Path) -> None:
    plain = _rows(make_synthetic_dataset(tmp_path / "a", n=20, seed=1, image_size=48))
    mixed = _rows(
        make_synthetic_dataset(tmp_path / "b", n=20, seed=1, image_size=48, views={"bilateral": 1})
    )
    assert [(r["patient_id"], r["t_score"]) for r in plain] == [
        (r["patient_id"], r["t_score"]) for r in mixed
    ]
    make_synthetic_dataset(tmp_path / "b", n=20, seed=1, image_size=48)
    assert not (tmp_path / "b" / "joints.json").exists()


def test_view_mix_parsing_and_refusals(tmp_path: Path) -> None:
    from osteoscan.data.synth import DEFAULT_VIEW_MIX, parse_view_mix, render_view

    assert parse_view_mix("mixed") == DEFAULT_VIEW_MIX
    assert parse_view_mix("single=1,bilateral=3") == {"single": 0.25, "bilateral": 0.75}
    for text in ("sideways", "single=x", "single=0"):
        with pytest.raises(BadConfigError):
            parse_view_mix(text)
    with pytest.raises(BadConfigError):
        render_view("lateral", 0.0, np.random.default_rng(0))
    with pytest.raises(BadConfigError):
        make_synthetic_dataset(tmp_path, n=4, image_size=48, views={"oblique": 1.0})
