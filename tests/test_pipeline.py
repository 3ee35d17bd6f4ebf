"""Train and evaluate end to end on small synthetic data (slow ones run real training loops)."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from osteoscan import Task, TrainConfig, evaluate, load_bundle, train
from osteoscan.data.records import load_dataset
from osteoscan.data.synth import make_synthetic_dataset
from osteoscan.errors import BadConfigError, BadManifestError, NotWritableError
from osteoscan.files import sha256_file
from osteoscan.metadata import METADATA_FILE, WEIGHTS_FILE, BundleMetadata
from osteoscan.pipeline import (
    choose_threshold,
    fit_split,
    prepare_grouped,
    write_bundle,
)

FAST = dict(image_size=48, epochs=2, batch_size=16, patience=5, progress=False)
CNN3 = TrainConfig(model="cnn3", mode="scratch", **FAST)


def tree(folder):
    """Every file under ``folder`` with its sha256: what a user would miss if it changed."""
    return {str(p): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_cnn3_trains_to_a_complete_bundle_and_evaluates(synth_dir, tmp_path):
    out = tmp_path / "bundle"
    outcome = train(synth_dir, out, CNN3)
    meta = json.loads((out / METADATA_FILE).read_text(), parse_constant=pytest.fail)
    again = BundleMetadata.from_dict(meta, "m.json")
    assert again == outcome.metadata
    assert meta["input"]["image_size"] == 48 and meta["input"]["mean"] == [0.5]
    assert set(meta["versions"]) >= {"osteoscan", "torch", "torchvision"}
    assert meta["training"]["manifest_sha256"] == load_dataset(synth_dir).manifest_hash()
    assert meta["weights_sha256"] == sha256_file(out / WEIGHTS_FILE)
    assert (out / "logs").is_dir()
    training = outcome.metadata.training
    assert training.n_train + training.n_validation == sum(
        1 for r in load_dataset(synth_dir).records if r.label != "osteopenia"
    )
    assert len(training.images) == training.n_train + training.n_validation
    assert all(image.pixel_hash for image in training.images)
    evaluation = evaluate(out, synth_dir, n_boot=100)
    result = evaluation.result
    assert result.n == training.n_train + training.n_validation
    assert math.isfinite(result.metrics["roc_auc"].value)  # both classes present, no NaN
    matrix = np.array(result.confusion_matrix)
    assert matrix.sum() == result.n
    assert result.metrics["accuracy"].value == pytest.approx(np.trace(matrix) / result.n)
    assert outcome.validation.n == training.n_validation
    # evaluating on the training folder itself is flagged, with how many
    (warning,) = evaluation.warnings
    assert warning.startswith(f"{result.n} of the {result.n} evaluation images")
    assert f"({training.n_train} training, {training.n_validation} validation" in warning

    # an earlier bundle is replaced only when asked
    before = tree(out)
    with pytest.raises(NotWritableError, match="already holds a bundle; pass --overwrite"):
        train(synth_dir, out, CNN3)
    assert tree(out) == before
    train(synth_dir, out, TrainConfig(model="cnn3", mode="scratch", seed=3, **FAST), overwrite=True)
    assert load_bundle(out).metadata.seed == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


@pytest.mark.slow
def test_renamed_copies_of_training_images_are_counted_in_evaluation(synth_dir, tmp_path):
    train(synth_dir, tmp_path / "b", CNN3)
    fresh = tmp_path / "fresh"
    make_synthetic_dataset(fresh, n=30, seed=5, image_size=96)
    (fresh / "manifest.csv").unlink()  # read the class folders
    assert evaluate(tmp_path / "b", fresh, n_boot=10).warnings == []
    seen = sorted((synth_dir / "normal").glob("*.png"))
    for i, source in enumerate(seen[:3]):
        shutil.copy(source, fresh / "normal" / f"renamed_{i}.png")
    edited = np.asarray(Image.open(seen[3])).astype(np.float32) * 0.9 + 10  # re-exposed copy
    Image.fromarray(edited.astype(np.uint8)).save(fresh / "normal" / "edited.png")
    (warning,) = evaluate(tmp_path / "b", fresh, n_boot=10).warnings
    assert warning.startswith("4 of the ")
    assert "identical in content: 3, near duplicates: 1" in warning


def test_steps_compose_and_threshold_rules(synth_dir, tmp_path):
    grouped = prepare_grouped(synth_dir, CNN3)
    n = len(grouped.records)
    assert len(grouped.targets) == len(grouped.pixels) == len(grouped.group_ids) == n
    assert grouped.pixels.shape[1:] == (48, 48) and len(grouped.pixel_hashes) == n
    targets = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    assert choose_threshold(targets, probs, 0.25) == 0.25
    assert 0.4 < choose_threshold(targets, probs, "youden") <= 0.7
    assert choose_threshold(targets, np.full((4, 3), 1 / 3), 0.5) is None
    for bad in (1.5, -0.1, float("nan"), "median", None):
        with pytest.raises(BadConfigError, match="must be a number in"):
            choose_threshold(targets, probs, bad)


@pytest.mark.slow
def test_steps_write_a_bundle_from_one_split(synth_dir, tmp_path):
    config = TrainConfig(model="cnn3", mode="scratch", **{**FAST, "epochs": 1})
    grouped = prepare_grouped(synth_dir, config)
    index = np.arange(len(grouped.records))
    train_index, val_index = index[index % 3 != 0], index[index % 3 == 0]
    fitted = fit_split(grouped, train_index, val_index, config)
    outcome = write_bundle(fitted, grouped, val_index, config, tmp_path / "b", overwrite=False)
    assert outcome.metadata.training.n_validation == len(val_index)
    assert set(outcome.metadata.training.validation_images) == {
        str(grouped.records[i].path) for i in val_index
    }
    assert load_bundle(tmp_path / "b").image_size == 48


@pytest.mark.parametrize("where", ["data", "inside", "user folder", "file"])
def test_train_refuses_an_out_that_is_not_a_bundle_and_touches_nothing(synth_dir, tmp_path, where):
    data = tmp_path / "knees"
    shutil.copytree(synth_dir, data)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (tmp_path / "notes.txt").write_text("keep me")
    out = {
        "data": data,
        "inside": data / "normal",
        "user folder": mine,
        "file": tmp_path / "notes.txt",
    }[where]
    before = tree(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(NotWritableError, match="--out"):
            train(data, out, CNN3, overwrite=overwrite)
    assert tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["knees", "mine", "notes.txt"]


def test_train_checks_cache_dir_and_cleans_stale_partials_before_work(synth_dir, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".b.partial-{dead.pid}"
    (stale / "logs").mkdir(parents=True)
    (tmp_path / "cache-file").write_text("")
    with pytest.raises(NotWritableError, match="--cache-dir .*is a file"):
        train(synth_dir, tmp_path / "b", TrainConfig(cache_dir=tmp_path / "cache-file", **FAST))
    assert stale.is_dir()  # nothing happens before every check has passed
    three = TrainConfig(model="cnn3", mode="scratch", task=Task("three-class"), **FAST)
    one_class = tmp_path / "one"
    shutil.copytree(synth_dir / "normal", one_class / "normal")
    with pytest.raises(BadManifestError):
        train(one_class, tmp_path / "b", three)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache-file", "one"]


@pytest.mark.slow
def test_a_diverging_run_stops_with_a_message_and_no_bundle(synth_dir, tmp_path):
    config = TrainConfig(model="cnn3", mode="scratch", lr=1e12, **FAST)
    with pytest.raises(BadConfigError, match="training diverged.*lower the learning rate"):
        train(synth_dir, tmp_path / "b", config)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_same_seed_gives_the_same_model(synth_dir, tmp_path):
    config = TrainConfig(model="cnn3", mode="scratch", seed=7, **FAST)
    train(synth_dir, tmp_path / "a", config)
    train(synth_dir, tmp_path / "b", config)
    a, b = load_bundle(tmp_path / "a"), load_bundle(tmp_path / "b")
    for (name, x), (_, y) in zip(
        a.net.state_dict().items(), b.net.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name
    assert a.metadata.training.images == b.metadata.training.images


@pytest.mark.slow
def test_frozen_resnet18_three_class_with_weights_file(synth_dir, tmp_path):
    weights = tmp_path / "r18.pth"
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, weights)
    config = TrainConfig(
        model="resnet18", mode="frozen", task=Task("three-class"), weights_file=weights, **FAST
    )
    outcome = train(synth_dir, tmp_path / "b", config)
    bundle = load_bundle(tmp_path / "b")
    assert bundle.class_names == ("normal", "osteopenia", "osteoporosis")
    assert torch.equal(bundle.net.backbone.conv1.weight, state["conv1.weight"])
    assert "macro_roc_auc" in outcome.validation.metrics
    assert bundle.metadata.pretrained.path == str(weights)


@pytest.mark.slow
def test_duplicates_and_patients_never_straddle_the_split(synth_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    manifest = (data / "manifest.csv").read_text().splitlines()
    extra = []
    planted = [line for line in manifest[1:] if not line.endswith(",osteopenia")][:11]
    for i, line in enumerate(planted, start=1):
        path, pid, t_score, label = line.split(",")
        copy = f"{label}/copy_{i}.png"
        shutil.copy(data / path, data / copy)  # an exact duplicate under another name and patient
        extra.append(f"{copy},X{i},{t_score},{label}")
    (data / "manifest.csv").write_text("\n".join(manifest + extra) + "\n")
    outcome = train(data, tmp_path / "b", TrainConfig(model="cnn3", mode="scratch", **FAST))
    val = set(outcome.metadata.training.validation_images)
    by_name = {p.rsplit("/", 1)[-1]: p for p in val}
    for i, line in enumerate(planted, start=1):
        original = str((data / line.split(",")[0]).resolve())
        copy = f"copy_{i}.png"
        assert (original in val) == (copy in by_name), f"duplicate pair {i} split across train/val"
    assert outcome.metadata.training.duplicate_groups >= 11


@pytest.mark.slow
def test_conflicting_duplicates_are_dropped_by_default(synth_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    source = next((data / "normal").glob("*.png"))
    shutil.copy(source, data / "osteoporosis" / "conflict.png")
    (data / "manifest.csv").unlink()  # read the folders: the copy now carries the other label
    dropped = train(data, tmp_path / "b", TrainConfig(model="cnn3", mode="scratch", **FAST))
    n_dropped = dropped.metadata.training.images_dropped_for_conflicts
    assert n_dropped >= 2 and dropped.metadata.training.conflicting_groups >= 1
    kept = train(
        data, tmp_path / "c", TrainConfig(model="cnn3", mode="scratch", keep_conflicts=True, **FAST)
    )
    assert kept.metadata.training.images_dropped_for_conflicts == 0
    assert len(kept.metadata.training.images) == len(dropped.metadata.training.images) + n_dropped


@pytest.mark.slow
def test_bad_files_are_skipped_and_listed(synth_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    (data / "manifest.csv").unlink()
    (data / "normal" / "empty.png").write_bytes(b"")
    (data / "normal" / "notes.txt").write_text("hello")
    Image.new("L", (8, 8)).save(data / "osteoporosis" / "tiny.png")
    outcome = train(data, tmp_path / "b", TrainConfig(model="cnn3", mode="scratch", **FAST))
    skipped = "\n".join(map(str, outcome.skipped))
    for name in ("empty.png", "notes.txt", "tiny.png"):
        assert name in skipped
    assert (tmp_path / "b" / METADATA_FILE).is_file()


@pytest.mark.slow
def test_resnet18_from_scratch_clearly_beats_chance_on_held_out_phantoms(tmp_path):
    """The phantoms' label signal is learnable: a small from-scratch CNN trained on a few hundred
    of them separates the classes on phantoms it never saw (different seed, different patients)."""
    make_synthetic_dataset(tmp_path / "train", n=240, seed=0, image_size=96)
    make_synthetic_dataset(tmp_path / "test", n=120, seed=1, image_size=96)
    config = TrainConfig(
        model="resnet18", mode="scratch", image_size=64, epochs=10, batch_size=32, progress=False
    )
    train(tmp_path / "train", tmp_path / "bundle", config)
    result = evaluate(tmp_path / "bundle", tmp_path / "test", n_boot=500).result
    auc = result.metrics["roc_auc"]
    assert result.n > 80
    assert auc.ci95[0] > 0.7, f"held-out AUC {auc.value:.3f} {auc.ci95}: not clearly above chance"
