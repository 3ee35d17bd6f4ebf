"""DDP with two CPU processes (gloo) must give a valid bundle, written once."""

import json
import subprocess
import sys

import pytest

from osteoscan.bundle import METADATA_FILE, load_bundle

pytestmark = pytest.mark.slow


def test_two_process_ddp_on_cpu_writes_one_valid_bundle(synth_dir, tmp_path):
    out = tmp_path / "ddp"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "osteoscan.cli",
            "--verbose",
            "train",
            "--data",
            str(synth_dir),
            "--out",
            str(out),
            "--model",
            "cnn3",
            "--mode",
            "scratch",
            "--image-size",
            "48",
            "--epochs",
            "2",
            "--accelerator",
            "cpu",
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed_backend=gloo" in done.stderr and "MEMBER: 2/2" in done.stderr
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["config"]["strategy"] == "ddp" and meta["config"]["devices"] == 2
    assert 0.0 <= meta["validation_metrics"]["roc_auc"]["value"] <= 1.0
    bundle = load_bundle(out)
    assert bundle.class_names == ("normal", "osteoporosis")
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]
