"""load_dataset: class folders and CSV manifests become records; unusable rows become problems."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osteoscan.data.labels import ALL_CLASSES, NORMAL, OSTEOPENIA, OSTEOPOROSIS, Task
from osteoscan.data.records import MAX_LISTED, Dataset, ImageRecord, load_dataset
from osteoscan.errors import BadManifestError


def png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32), value, np.uint8)).save(path)
    return path


def manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def labels_by_name(dataset: Dataset) -> dict[str, str | None]:
    return {r.path.name: r.label for r in dataset.records}


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    root = tmp_path / "knees"
    png(root / "Normal" / "n1.png")
    png(root / "Normal" / "n2.jpg")
    png(root / "OSTEOPOROSIS" / "p1.png")
    png(root / "osteopenia" / "m1.png")
    return root


# --- class folders --------------------------------------------------------------------------


def test_class_folder_names_are_case_insensitive(class_folders: Path) -> None:
    dataset = load_dataset(class_folders)
    assert labels_by_name(dataset) == {
        "n1.png": NORMAL,
        "n2.jpg": NORMAL,
        "p1.png": OSTEOPOROSIS,
        "m1.png": OSTEOPENIA,
    }
    assert dataset.class_counts() == {NORMAL: 2, OSTEOPENIA: 1, OSTEOPOROSIS: 1}
    assert dataset.problems == []


def test_hidden_files_and_folders_are_ignored(class_folders: Path) -> None:
    (class_folders / "Normal" / ".DS_Store").write_bytes(b"\0\1")
    png(class_folders / "Normal" / "._n1.png")  # macOS resource fork
    png(class_folders / "Normal" / ".thumbnails" / "n1.png")
    png(class_folders / ".cache" / "whatever.png")
    dataset = load_dataset(class_folders)
    assert sorted(labels_by_name(dataset)) == ["m1.png", "n1.png", "n2.jpg", "p1.png"]
    assert all(".thumbnails" not in r.path.parts for r in dataset.records)
    assert dataset.problems == []


def test_images_in_subfolders_keep_their_class(class_folders: Path) -> None:
    png(class_folders / "OSTEOPOROSIS" / "site_b" / "p2.png")
    assert labels_by_name(load_dataset(class_folders))["p2.png"] == OSTEOPOROSIS


def test_unsupported_file_is_a_problem_not_a_record(class_folders: Path) -> None:
    notes = class_folders / "Normal" / "notes.txt"
    notes.write_text("left knee")
    dataset = load_dataset(class_folders)
    assert "notes.txt" not in labels_by_name(dataset)
    assert len(dataset.problems) == 1
    problem = dataset.problems[0]
    assert problem.path == str(notes)
    assert "'.txt'" in problem.reason and ".png" in problem.reason
    assert str(notes) in str(problem)


def test_broken_and_looping_links_and_folder_links_are_listed(class_folders: Path) -> None:
    normal = class_folders / "Normal"
    (normal / "gone.png").symlink_to(normal / "deleted.png")
    (normal / "loop.png").symlink_to(normal / "loop.png")
    (normal / "linked.png").symlink_to(normal / "n1.png")  # a working link is an image
    (normal / "more").symlink_to(class_folders / "osteopenia")
    dataset = load_dataset(class_folders)
    reasons = {Path(p.path).name: p.reason for p in dataset.problems}
    assert sorted(reasons) == ["gone.png", "loop.png", "more"]
    assert "broken symbolic link" in reasons["gone.png"] and "deleted.png" in reasons["gone.png"]
    assert "symbolic link loop" in reasons["loop.png"]
    assert "not followed" in reasons["more"]
    assert all("remove the link" in reasons[n] for n in ("gone.png", "loop.png"))
    assert "linked.png" in labels_by_name(dataset)


def test_images_outside_the_class_folders_are_listed(class_folders: Path) -> None:
    stray = png(class_folders / "stray.png")
    (class_folders / "README.txt").write_text("not an image: not a problem")
    (class_folders / "lost.png").symlink_to(class_folders / "nowhere.png")
    dataset = load_dataset(class_folders)
    reasons = {Path(p.path).name: p.reason for p in dataset.problems}
    assert sorted(reasons) == ["lost.png", "stray.png"]
    assert reasons["stray.png"].startswith("image lies outside the class folders")
    assert "normal/" in reasons["stray.png"] and str(stray) not in reasons["stray.png"]
    assert "broken symbolic link" in reasons["lost.png"]


def test_only_loose_images_says_where_to_put_them(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    png(tmp_path / "b.png")
    with pytest.raises(BadManifestError, match="2 image.s. lie directly in it: move them into"):
        load_dataset(tmp_path)


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch):
    """``unreadable(folder)`` makes listing ``folder`` fail as a chmod 000 folder does for a
    normal user (root reads such folders anyway, so the refusal is simulated)."""
    real_scandir = os.scandir

    def make(folder: Path) -> None:
        def scandir(path=".", *args):
            if Path(path) == folder:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path, *args)

        monkeypatch.setattr(os, "scandir", scandir)

    return make


def test_unreadable_class_folder_says_permission_denied(class_folders: Path, unreadable) -> None:
    unreadable(class_folders / "Normal")
    dataset = load_dataset(class_folders)
    (problem,) = dataset.problems
    assert problem.path == str(class_folders / "Normal")
    assert "permission denied" in problem.reason and "chmod" in problem.reason
    with pytest.raises(BadManifestError) as caught:
        dataset.for_task(Task("binary"))
    message = str(caught.value)
    assert "no images of class normal" in message.splitlines()[0]
    assert f"{class_folders / 'Normal'}: cannot read this folder: permission denied" in message


def test_unreadable_root_is_a_clear_error(class_folders: Path, unreadable) -> None:
    unreadable(class_folders)
    with pytest.raises(BadManifestError, match="cannot read this folder: permission denied"):
        load_dataset(class_folders)


def test_no_usable_image_lists_the_reasons_in_the_error(tmp_path: Path) -> None:
    for k in range(MAX_LISTED + 3):
        (tmp_path / "normal" / f"scan{k:02d}.gif").parent.mkdir(exist_ok=True)
        (tmp_path / "normal" / f"scan{k:02d}.gif").write_bytes(b"GIF89a")
    png(tmp_path / "osteoporosis" / "p.png")
    with pytest.raises(BadManifestError) as caught:
        load_dataset(tmp_path).for_task(Task("binary"))
    lines = str(caught.value).splitlines()
    assert "no images of class normal" in lines[0] and "13 file(s)" in lines[0]
    assert lines[1].strip().startswith(str(tmp_path / "normal" / "scan00.gif"))
    assert "unsupported file type '.gif'" in lines[1]
    assert len(lines) == 1 + MAX_LISTED + 1 and lines[-1].strip() == "... and 3 more"


def test_unknown_class_folder_lists_accepted_names(class_folders: Path) -> None:
    png(class_folders / "healthy" / "h1.png")
    with pytest.raises(BadManifestError) as caught:
        load_dataset(class_folders)
    message = str(caught.value)
    assert "healthy" in message
    assert all(name in message for name in ALL_CLASSES)


def test_empty_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BadManifestError, match="no class folders"):
        load_dataset(tmp_path)


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BadManifestError, match="no such folder"):
        load_dataset(tmp_path / "nowhere")


# --- CSV manifests --------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "study" / "images"
    for name in ("a.png", "b.png", "c.png", "d.png"):
        png(folder / name)
    return folder.resolve()


def test_manifest_with_labels_only(images: Path) -> None:
    csv_path = manifest(
        images.parent / "labels.csv",
        "path,label,patient_id\nimages/a.png,Normal,P1\nimages/b.png,osteoporosis,\n",
    )
    dataset = load_dataset(csv_path)
    assert dataset.records == [
        ImageRecord(images / "a.png", NORMAL, None, "P1"),
        ImageRecord(images / "b.png", OSTEOPOROSIS, None, None),
    ]
    assert dataset.problems == []


@pytest.mark.parametrize(
    ("t_score", "label"),
    [
        ("0.5", NORMAL),
        ("-1.0", NORMAL),
        ("-1.01", OSTEOPENIA),
        ("-1.8", OSTEOPENIA),
        ("-2.49", OSTEOPENIA),
        ("-2.5", OSTEOPOROSIS),
        ("-3.7", OSTEOPOROSIS),
    ],
)
def test_manifest_with_t_score_only_uses_who_classes(images: Path, t_score: str, label: str):
    csv_path = manifest(images.parent / "t.csv", f"path,t_score\nimages/a.png,{t_score}\n")
    (record,) = load_dataset(csv_path).records
    assert record.label == label
    assert record.t_score == float(t_score)
    assert record.who_label == label


def test_manifest_with_label_and_t_score_keeps_the_given_label(images: Path) -> None:
    csv_path = manifest(
        images.parent / "both.csv", "path,label,t_score\nimages/a.png,osteoporosis,-1.8\n"
    )
    (record,) = load_dataset(csv_path).records
    assert record.label == OSTEOPOROSIS
    assert record.who_label == OSTEOPENIA
    assert record.t_score == -1.8


def test_manifest_paths_are_relative_to_the_csv(images: Path, tmp_path: Path, monkeypatch):
    csv_path = manifest(
        images.parent / "lists" / "train.csv", "path,label\n../images/a.png,normal\n"
    )
    monkeypatch.chdir(tmp_path)  # not the CSV's folder
    (record,) = load_dataset(csv_path).records
    assert record.path == images / "a.png"
    assert record.path.is_absolute()


def test_manifest_header_is_case_and_space_insensitive(images: Path) -> None:
    csv_path = manifest(images.parent / "m.csv", " Path , LABEL \nimages/a.png, normal \n")
    assert load_dataset(csv_path).records[0].label == NORMAL


def test_bad_manifest_rows_become_problems_naming_the_line(images: Path) -> None:
    csv_path = manifest(
        images.parent / "rows.csv",
        "path,label,t_score\n"
        "images/a.png,normal,\n"  # line 2: fine
        "images/missing.png,normal,\n"  # line 3
        "images/b.png,,low\n"  # line 4
        "images/c.png,healthy,\n"  # line 5
        "images/d.png,,-14\n"  # line 6
        "images/d.png,,\n"  # line 7
        "images/d.png,normal,,surplus\n",  # line 8
    )
    dataset = load_dataset(csv_path)
    assert [r.path.name for r in dataset.records] == ["a.png"]
    problems = {p.path: p.reason for p in dataset.problems}
    assert sorted(problems) == [f"{csv_path}:{line}" for line in range(3, 9)]
    assert "missing.png" in problems[f"{csv_path}:3"]
    assert "'low' is not a number" in problems[f"{csv_path}:4"]
    assert "'healthy'" in problems[f"{csv_path}:5"]
    assert all(name in problems[f"{csv_path}:5"] for name in ALL_CLASSES)
    assert "outside" in problems[f"{csv_path}:6"]
    assert "neither a label nor a t_score" in problems[f"{csv_path}:7"]
    assert "more fields" in problems[f"{csv_path}:8"]


@pytest.mark.parametrize("text", ["label,t_score\n", "path,patient_id\nimages/a.png,P1\n", ""])
def test_manifest_without_required_columns_is_an_error(images: Path, text: str) -> None:
    csv_path = manifest(images.parent / "cols.csv", text)
    with pytest.raises(BadManifestError) as caught:
        load_dataset(csv_path)
    message = str(caught.value)
    assert str(csv_path) in message and "'path'" in message and "'t_score'" in message


def test_manifest_with_header_only_is_empty_not_misreported(images: Path) -> None:
    csv_path = manifest(images.parent / "header.csv", "path,label\n")
    dataset = load_dataset(csv_path)
    assert dataset.records == [] and dataset.problems == []


def test_folder_with_manifest_is_read_through_it(class_folders: Path) -> None:
    manifest(
        class_folders / "manifest.csv",
        "path,t_score,patient_id\nNormal/n1.png,-2.7,P9\nOSTEOPOROSIS/p1.png,0.3,P9\n",
    )
    dataset = load_dataset(class_folders)
    assert dataset.source.name == "manifest.csv"
    assert labels_by_name(dataset) == {"n1.png": OSTEOPOROSIS, "p1.png": NORMAL}
    assert {r.patient_id for r in dataset.records} == {"P9"}


def test_images_a_manifest_does_not_list_are_counted_and_logged(class_folders, caplog) -> None:
    manifest(
        class_folders / "manifest.csv",
        "path,label\nNormal/n1.png,normal\nOSTEOPOROSIS/p1.png,osteoporosis\nNormal/gone.png,normal\n",
    )
    (class_folders / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="osteoscan.data.records"):
        dataset = load_dataset(class_folders)
    assert sorted(labels_by_name(dataset)) == ["n1.png", "p1.png"]  # the manifest decides
    assert [p.name for p in dataset.unlisted] == ["n2.jpg", "m1.png"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "2 image file(s)" in warning and "not listed" in warning
    assert "osteoscan audit" in warning


def test_manifest_listing_every_image_has_nothing_unlisted(class_folders: Path, caplog) -> None:
    rows = "".join(f"{p.relative_to(class_folders)},normal\n" for p in class_folders.rglob("*.*"))
    manifest(class_folders / "manifest.csv", "path,label\n" + rows)
    with caplog.at_level(logging.WARNING):
        assert load_dataset(class_folders).unlisted == []
    assert not caplog.records


def test_manifest_row_naming_a_link_loop_is_a_problem(images: Path) -> None:
    (images / "loop.png").symlink_to(images / "loop.png")
    csv_path = manifest(images.parent / "m.csv", "path,label\nimages/loop.png,normal\n")
    (problem,) = load_dataset(csv_path).problems
    assert problem.path == f"{csv_path}:2"
    assert "loop.png" in problem.reason and "remove the row" in problem.reason


# --- tasks and hashes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (Task("binary", "exclude"), {"n1.png": 0, "n2.jpg": 0, "p1.png": 1}),
        (Task("binary", NORMAL), {"n1.png": 0, "n2.jpg": 0, "p1.png": 1, "m1.png": 0}),
        (Task("binary", OSTEOPOROSIS), {"n1.png": 0, "n2.jpg": 0, "p1.png": 1, "m1.png": 1}),
        (Task("three-class"), {"n1.png": 0, "n2.jpg": 0, "p1.png": 2, "m1.png": 1}),
    ],
    ids=["exclude", "as-normal", "as-osteoporosis", "three-class"],
)
def test_for_task_maps_osteopenia_by_policy(class_folders: Path, task: Task, expected) -> None:
    records, targets = load_dataset(class_folders).for_task(task)
    assert {r.path.name: t for r, t in zip(records, targets, strict=True)} == expected


def test_for_task_with_an_empty_class_is_an_error(class_folders: Path) -> None:
    shutil.rmtree(class_folders / "osteopenia")
    dataset = load_dataset(class_folders)
    assert len(dataset.for_task(Task("binary"))[0]) == 3
    with pytest.raises(BadManifestError, match="no images of class osteopenia"):
        dataset.for_task(Task("three-class"))


def test_manifest_hash_follows_labels_not_location(class_folders: Path, tmp_path: Path) -> None:
    original = load_dataset(class_folders).manifest_hash()
    moved = shutil.copytree(class_folders, tmp_path / "elsewhere" / "knees-copy")
    assert load_dataset(moved).manifest_hash() == original
    (moved / "osteopenia" / "m1.png").rename(moved / "OSTEOPOROSIS" / "m1.png")
    assert load_dataset(moved).manifest_hash() != original


def test_manifest_hash_of_csv_follows_labels_not_location(images: Path, tmp_path, monkeypatch):
    text = "path,t_score,patient_id\nimages/a.png,-1.2,P1\nimages/b.png,-3.0,P2\n"
    csv_path = manifest(images.parent / "manifest.csv", text)
    original = load_dataset(csv_path).manifest_hash()
    moved = shutil.copytree(images.parent, tmp_path / "archive" / "study-2024")
    assert load_dataset(moved / "manifest.csv").manifest_hash() == original
    monkeypatch.chdir(moved.parent)
    assert load_dataset(Path(moved.name)).manifest_hash() == original  # relative path
    manifest(moved / "manifest.csv", text.replace("-1.2", "-2.6"))  # osteopenia -> osteoporosis
    assert load_dataset(moved / "manifest.csv").manifest_hash() != original
    relabelled = "path,label,patient_id\nimages/a.png,normal,P1\nimages/b.png,normal,P2\n"
    labelled = manifest(
        moved / "manifest.csv", relabelled.replace("b.png,normal", "b.png,osteoporosis")
    )
    before = load_dataset(labelled).manifest_hash()
    manifest(labelled, relabelled)
    assert load_dataset(labelled).manifest_hash() != before
