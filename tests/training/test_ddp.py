"""DDP with two CPU processes (gloo) must give a valid bundle, written once."""

import json
import math

import pytest

from osteoscan.bundle import METADATA_FILE, load_bundle

pytestmark = pytest.mark.slow


def test_two_process_ddp_on_cpu_writes_one_valid_bundle(synth_dir, tmp_path, run_cli):
    out = tmp_path / "ddp"
    done = run_cli.quick_train(
        synth_dir, out, "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", verbose=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed_backend=gloo" in done.stderr and "MEMBER: 2/2" in done.stderr
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["config"]["strategy"] == "ddp" and meta["config"]["devices"] == 2
    auc = meta["validation_metrics"]["roc_auc"]["value"]
    assert isinstance(auc, float) and math.isfinite(auc)  # gathered over both ranks, not NaN
    bundle = load_bundle(out)
    assert bundle.class_names == ("normal", "osteoporosis")
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]
