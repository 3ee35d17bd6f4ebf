"""Knee ROI end to end: train on crops, and every later step crops the same way unasked."""

import json
from dataclasses import replace

import numpy as np
import pytest

from osteoscan import evaluate, load_bundle
from osteoscan.data import pixels
from osteoscan.data.pixels import prepare
from osteoscan.data.records import load_dataset
from osteoscan.pipeline import prepare_grouped
from osteoscan.roi import RoiConfig


def test_bilateral_images_give_two_crops_that_share_a_split(
    mixed_views, roi_train_config, tmp_path
):
    data, views = mixed_views
    grouped = prepare_grouped(data, replace(roi_train_config, cache_dir=tmp_path))
    per_image: dict[str, list[str]] = {}
    for record, knee in zip(grouped.records, grouped.knees, strict=True):
        per_image.setdefault(record.path.relative_to(data).as_posix(), []).append(knee)
    views = {path: v for path, v in views.items() if not path.startswith("osteopenia/")}
    bilateral = [path for path, v in views.items() if v["view"] == "bilateral"]
    found = [path for path in bilateral if path in per_image]
    assert len(found) >= len(bilateral) - 1  # the localiser may miss one, never invent
    for path in found:
        assert sorted(per_image[path]) == ["left", "right"]
    for path, v in views.items():
        if v["view"] == "single" and path in per_image:
            assert per_image[path] == ["knee"]
    assert grouped.pixels.shape[1:] == (32, 32)
    # both crops of a radiograph are one leakage group, so no split can part them
    by_path: dict[str, set[int]] = {}
    for record, group in zip(grouped.records, grouped.group_ids, strict=True):
        by_path.setdefault(str(record.path), set()).add(int(group))
    assert all(len(groups) == 1 for groups in by_path.values())
    # the blank image is skipped with the reason, not cropped at random
    (blank,) = [p for p in grouped.problems if p.path.endswith("blank.png")]
    assert "no knee found" in blank.reason


def test_the_bundle_stores_the_roi_and_both_knees_stay_on_one_side(roi_bundle, roi_train_config):
    out, _ = roi_bundle
    meta = load_bundle(out).metadata
    assert meta.roi == roi_train_config.roi
    assert json.loads((out / "metadata.json").read_text())["roi"]["roi_scale"] == 1.8
    splits: dict[str, str] = {}
    for image in meta.training.images:
        assert splits.setdefault(image.path, image.split) == image.split
    assert len(splits) == len(meta.training.images)  # one entry per radiograph
    assert meta.training.n_train + meta.training.n_validation > len(splits)  # crops > images
    assert any("blank.png" in skipped for skipped in meta.training.skipped_files)
    # the validation metrics and threshold are per radiograph, as evaluate scores them
    validation = [i for i in meta.training.images if i.split == "validation"]
    assert meta.validation_metrics["n"] == len(validation) < meta.training.n_validation


def test_evaluate_crops_unasked_and_scores_each_radiograph_once(roi_bundle, mixed_views):
    out, _ = roi_bundle
    data, _ = mixed_views
    outcome = evaluate(out, data, n_boot=50)
    n_images = sum(1 for r in load_dataset(data).records if r.label != "osteopenia")
    no_knee = [p for p in outcome.skipped if "no knee found" in p.reason]
    assert any(p.path.endswith("blank.png") for p in no_knee)
    assert outcome.result.n == n_images - len(no_knee)  # every other image, once each
    assert outcome.n_knee_crops > outcome.result.n
    assert "knee" in outcome.scoring and outcome.to_dict()["n_knee_crops"] == outcome.n_knee_crops


def test_crops_are_cached_under_the_roi_settings(
    mixed_views, roi_train_config, tmp_path, monkeypatch
):
    data, _ = mixed_views
    roi = roi_train_config.roi
    monkeypatch.setattr(pixels, "_MEMORY", pixels._MemoryCache())  # this test's disk cache only
    paths = sorted((data / "normal").glob("synth_*.png"))[:4]
    first = prepare(paths, 32, cache_dir=tmp_path, workers=1, roi=roi)
    entries = sorted(p.name for p in tmp_path.rglob("*.npz"))
    assert len(entries) == len(paths)
    whole = prepare(paths, 32, cache_dir=tmp_path, workers=1)
    assert len(whole.indices) == len(paths) and not whole.knees
    other = prepare(paths, 32, cache_dir=tmp_path, workers=1, roi=RoiConfig(roi_scale=2.5))
    assert len(list(tmp_path.rglob("*.npz"))) == 2 * len(paths)  # new settings, new entries
    assert not np.array_equal(other.pixels, first.pixels)
    for entry in tmp_path.rglob("*.npz"):  # a rerun reads the crops back, it does not re-cut
        with np.load(entry) as saved:
            np.savez(entry, **{**saved, "pixels": np.ones_like(saved["pixels"])})
    monkeypatch.setattr(pixels, "_MEMORY", pixels._MemoryCache())
    again = prepare(paths, 32, cache_dir=tmp_path, workers=1, roi=roi)
    assert again.knees == first.knees and again.indices == first.indices
    assert (again.pixels == 1).all()
    np.testing.assert_allclose(again.boxes, first.boxes)


def test_the_train_command_takes_roi_flags_with_the_config_defaults():
    from osteoscan.cli import build_parser, train_config_from_args

    base = ["train", "--data", "d", "--out", "o"]
    assert train_config_from_args(build_parser().parse_args(base)).roi is None
    args = build_parser().parse_args([*base, "--roi", "knee", "--roi-mirror", "left"])
    assert train_config_from_args(args).roi == RoiConfig(mirror="left")
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--roi", "hip"])


def test_train_and_evaluate_commands_on_crops(mixed_views, tmp_path, capsys):
    from osteoscan.cli import main

    data, _ = mixed_views
    out = tmp_path / "bundle"
    fast = ["--model", "cnn3", "--mode", "scratch", "--image-size", "32", "--epochs", "1"]
    argv = ["train", "--data", str(data), "--out", str(out), *fast, "--no-progress"]
    assert main([*argv, "--roi", "knee", "--roi-scale", "2.0"]) == 0
    printed = capsys.readouterr()
    assert "knee crops (" in printed.out and "radiographs)" in printed.out
    assert "blank.png: no knee found" in printed.err
    assert load_bundle(out).metadata.roi == RoiConfig(roi_scale=2.0)
    assert main(["evaluate", str(out), "--data", str(data), "--bootstrap", "20"]) == 0
    assert "scored per image: knee crops" in capsys.readouterr().out
