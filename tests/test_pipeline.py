"""Train and evaluate end to end on small synthetic data (slow: real training loops)."""

import json
import shutil

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from osteoscan import Task, TrainConfig, evaluate, load_bundle, train
from osteoscan.bundle import METADATA_FILE
from osteoscan.data.records import load_dataset

pytestmark = pytest.mark.slow

FAST = dict(image_size=48, epochs=2, batch_size=16, patience=5, progress=False)


def test_cnn3_trains_to_a_complete_bundle_and_evaluates(synth_dir, tmp_path):
    outcome = train(
        synth_dir, tmp_path / "bundle", TrainConfig(model="cnn3", mode="scratch", **FAST)
    )
    meta = json.loads((tmp_path / "bundle" / METADATA_FILE).read_text())
    for key in (
        "model",
        "mode",
        "task",
        "class_names",
        "decision_threshold",
        "input",
        "seed",
        "versions",
        "training_manifest_sha256",
        "validation_metrics",
        "disclaimer",
    ):
        assert key in meta
    assert meta["input"]["image_size"] == 48 and meta["input"]["mean"] == [0.5]
    assert set(meta["versions"]) >= {"osteoscan", "torch", "torchvision"}
    assert meta["training_manifest_sha256"] == load_dataset(synth_dir).manifest_hash()
    assert (tmp_path / "bundle" / "logs").is_dir()
    assert meta["n_train"] + meta["n_validation"] == sum(
        1 for r in load_dataset(synth_dir).records if r.label != "osteopenia"
    )
    result = evaluate(tmp_path / "bundle", synth_dir, n_boot=100).result
    assert result.n == meta["n_train"] + meta["n_validation"]
    assert 0.0 <= result.metrics["roc_auc"].value <= 1.0
    assert np.array(result.confusion_matrix).sum() == result.n
    assert outcome.validation.n == meta["n_validation"]


def test_same_seed_gives_the_same_model(synth_dir, tmp_path):
    config = TrainConfig(model="cnn3", mode="scratch", seed=7, **FAST)
    train(synth_dir, tmp_path / "a", config)
    train(synth_dir, tmp_path / "b", config)
    a, b = load_bundle(tmp_path / "a"), load_bundle(tmp_path / "b")
    for (name, x), (_, y) in zip(
        a.net.state_dict().items(), b.net.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name
    assert a.metadata["validation_images"] == b.metadata["validation_images"]


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
    assert bundle.metadata["weights_source"]["path"] == str(weights)


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
    val = set(outcome.metadata["validation_images"])
    by_name = {p.rsplit("/", 1)[-1]: p for p in val}
    for i, line in enumerate(planted, start=1):
        original = str((data / line.split(",")[0]).resolve())
        copy = f"copy_{i}.png"
        assert (original in val) == (copy in by_name), f"duplicate pair {i} split across train/val"
    assert outcome.metadata["leakage"]["duplicate_groups"] >= 11


def test_conflicting_duplicates_are_dropped_by_default(synth_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    source = next((data / "normal").glob("*.png"))
    shutil.copy(source, data / "osteoporosis" / "conflict.png")
    (data / "manifest.csv").unlink()  # read the folders: the copy now carries the other label
    dropped = train(data, tmp_path / "b", TrainConfig(model="cnn3", mode="scratch", **FAST))
    n_dropped = dropped.metadata["leakage"]["images_dropped_for_conflicts"]
    assert n_dropped >= 2 and dropped.metadata["leakage"]["conflicting_groups"] >= 1
    kept = train(
        data, tmp_path / "c", TrainConfig(model="cnn3", mode="scratch", keep_conflicts=True, **FAST)
    )
    assert kept.metadata["leakage"]["images_dropped_for_conflicts"] == 0
    assert kept.metadata["n_train"] + kept.metadata["n_validation"] == (
        dropped.metadata["n_train"] + dropped.metadata["n_validation"] + n_dropped
    )


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


def test_resnet18_from_scratch_clearly_beats_chance_on_held_out_phantoms(tmp_path):
    """The phantoms' label signal is learnable: a small from-scratch CNN trained on a few hundred
    of them separates the classes on phantoms it never saw (different seed, different patients)."""
    from osteoscan.data.synth import make_synthetic_dataset

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
