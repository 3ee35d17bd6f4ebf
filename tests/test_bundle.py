"""Bundles: round trip through the real metadata schema, safe replacement, damage refused."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from osteoscan.bundle import (
    Bundle,
    check_out_dir,
    load_bundle,
    publish_bundle,
    remove_stale_staging,
    save_weights,
    staging_dir_for,
    weights_header,
)
from osteoscan.data.labels import Task
from osteoscan.errors import BadBundleError, NotWritableError
from osteoscan.metadata import (
    METADATA_FILE,
    WEIGHTS_FILE,
    BundleMetadata,
    FitSummary,
    InputSpec,
    TrainingRecord,
)
from osteoscan.models import build_model

SHA = "ab" * 32


def write_bundle(out, threshold=0.5, net=None, image_size=48):
    """A real cnn3 bundle written the way the pipeline writes one."""
    net = net if net is not None else build_model("cnn3", "scratch", 2)[0].eval()
    staging = staging_dir_for(out)
    staging.mkdir(parents=True)
    task = Task()
    sha = save_weights(
        net, staging / WEIGHTS_FILE, weights_header("cnn3", "scratch", 48, task.class_names)
    )
    metadata = BundleMetadata(
        model="cnn3",
        mode="scratch",
        task=task,
        input=InputSpec(image_size, 1, (0.5,), (0.25,), contract_version=1),
        decision_threshold=threshold,
        seed=0,
        weights_sha256=sha,
        created="2026-12-01T00:00:00+00:00",
        versions={},
        training=TrainingRecord(SHA, "/data", 10, 4, 0, 0, 0),
        fit=FitSummary(1, 0.7, 2, "32-true"),
        config={},
        validation_metrics={},
    )
    return publish_bundle(net, metadata, staging, out)


def edit_metadata(out, change):
    data = json.loads((out / METADATA_FILE).read_text())
    change(data)
    (out / METADATA_FILE).write_text(json.dumps(data))


def test_round_trip_gives_identical_predictions(tmp_path):
    bundle = write_bundle(tmp_path / "b")
    pixels = np.random.default_rng(0).random((5, 48, 48)).astype(np.float32)
    loaded = load_bundle(tmp_path / "b")
    assert isinstance(loaded.metadata, BundleMetadata)
    np.testing.assert_allclose(
        loaded.predict_proba(pixels), bundle.predict_proba(pixels), atol=1e-6
    )
    assert loaded.class_names == ("normal", "osteoporosis") and loaded.image_size == 48
    assert loaded.threshold == 0.5 and loaded.task == Task()
    assert np.allclose(loaded.predict_proba(pixels).sum(1), 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_existing_bundle_is_replaced_whole_and_no_staging_left(tmp_path):
    out = tmp_path / "b"
    write_bundle(out)
    write_bundle(out, threshold=0.3)
    assert load_bundle(out).threshold == 0.3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_missing_or_foreign_bundles_give_clear_errors(tmp_path):
    with pytest.raises(BadBundleError, match="not a model bundle"):
        load_bundle(tmp_path)
    out = tmp_path / "b"
    write_bundle(out)
    edit_metadata(out, lambda d: d.update(bundle_format=99))
    with pytest.raises(BadBundleError, match="format 99"):
        load_bundle(out)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"",  # empty
        lambda b: os.urandom(len(b)),  # random bytes
        lambda b: b[:-4] + bytes(4),  # the last weights zeroed
    ],
    ids=["truncated", "empty", "random", "altered"],
)
def test_damaged_weights_name_the_file_and_what_to_do(tmp_path, damage):
    out = tmp_path / "b"
    write_bundle(out)
    weights = out / WEIGHTS_FILE
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(BadBundleError) as info:
        load_bundle(out)
    message = str(info.value)
    assert message.startswith(f"{weights}: damaged") and "re-train" in message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("class_names"), "'class_names' is missing"),
        (lambda d: d["input"].pop("image_size"), "'image_size' is missing"),
        (lambda d: d.pop("task"), "'task' is missing"),
        (lambda d: d["input"].update(image_size="48"), "must be int, not str"),
        (lambda d: d.update(decision_threshold=None), "must be a number"),
        (lambda d: d.update(decision_threshold=1.5), r"must lie in \[0, 1\]"),
        (lambda d: d.update(decision_threshold=-0.1), r"must lie in \[0, 1\]"),
        (lambda d: d["input"].update(image_size=64), "says image_size '64'.*saved with '48'"),
        (lambda d: d.update(model="resnet18"), "says model 'resnet18'"),
        (
            lambda d: d.update(
                task={"name": "three-class", "osteopenia": "exclude"},
                class_names=["normal", "osteopenia", "osteoporosis"],
                decision_threshold=None,
            ),
            "says class_names",
        ),
    ],
)
def test_damaged_or_edited_metadata_is_refused(tmp_path, change, message):
    out = tmp_path / "b"
    write_bundle(out)
    edit_metadata(out, change)
    with pytest.raises(BadBundleError, match=message) as info:
        load_bundle(out)
    assert str(info.value).startswith(str(out / METADATA_FILE))
    assert "re-train" in str(info.value)


def test_metadata_with_non_standard_json_is_refused(tmp_path):
    out = tmp_path / "b"
    write_bundle(out)
    text = (
        (out / METADATA_FILE)
        .read_text()
        .replace('"decision_threshold": 0.5', '"decision_threshold": NaN')
    )
    (out / METADATA_FILE).write_text(text)
    with pytest.raises(BadBundleError, match="unreadable metadata.*NaN"):
        load_bundle(out)


def test_bundle_metadata_is_strict_json(tmp_path):
    out = tmp_path / "b"
    write_bundle(out)
    text = (out / METADATA_FILE).read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in metadata.json"))


def test_out_may_be_new_empty_or_an_earlier_bundle_with_overwrite(tmp_path):
    assert check_out_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty")
    write_bundle(tmp_path / "old")
    with pytest.raises(NotWritableError, match="already holds a bundle; pass --overwrite"):
        check_out_dir(tmp_path / "old")
    check_out_dir(tmp_path / "old", overwrite=True)


def test_out_that_is_a_users_folder_or_file_is_refused_and_untouched(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    for target in (folder, afile):
        for overwrite in (False, True):
            with pytest.raises(NotWritableError, match="nothing was changed"):
                check_out_dir(target, overwrite=overwrite)
    assert (folder / "thesis.txt").read_text() == "years of work"
    assert afile.read_text() == "keep me"
    with pytest.raises(NotWritableError, match="is a file"):
        check_out_dir(afile / "bundle")


def test_out_overlapping_the_data_is_refused(tmp_path):
    data = tmp_path / "knees"
    (data / "normal").mkdir(parents=True)
    for out in (data, data / "bundle", data / "normal" / "b", tmp_path):
        with pytest.raises(NotWritableError, match="overlaps the training data"):
            check_out_dir(out, [data], overwrite=True)
    check_out_dir(tmp_path / "bundle", [data])


def test_stale_partials_of_dead_runs_are_removed_live_ones_kept(tmp_path):
    out = tmp_path / "b"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".b.partial-{dead.pid}"
    old = tmp_path / f".b.old-{dead.pid}"
    live = tmp_path / f".b.partial-{os.getppid()}"
    other = tmp_path / f".c.partial-{dead.pid}"
    for folder in (stale, old, live, other):
        (folder / "logs").mkdir(parents=True)
    assert sorted(remove_stale_staging(out)) == sorted([stale, old])
    assert live.is_dir() and other.is_dir() and not stale.exists() and not old.exists()


def test_bundle_with_nan_weights_predicts_nan_so_evaluate_refuses(tmp_path, synth_dir):
    from osteoscan import evaluate

    net = build_model("cnn3", "scratch", 2)[0].eval()
    with torch.no_grad():
        net.head.weight.fill_(float("nan"))
    write_bundle(tmp_path / "b", net=net)
    assert isinstance(load_bundle(tmp_path / "b"), Bundle)
    with pytest.raises(BadBundleError, match="non-finite probabilities for"):
        evaluate(tmp_path / "b", synth_dir, n_boot=10)
