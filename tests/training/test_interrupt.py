"""A signal during training ends it with InterruptedRun (exit 128 + signal), never as success,
and leaves no bundle and no hidden staging folder behind."""

import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import interruptible

pytestmark = pytest.mark.slow

SCRIPT = """
import logging, sys
from pathlib import Path
from osteoscan import TrainConfig, train
from osteoscan.errors import InterruptedRun

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    config = TrainConfig(model="cnn3", mode="scratch", image_size=32, epochs=10000,
                         patience=10000, progress=False, cache_dir=Path(sys.argv[3]))
    try:
        train(sys.argv[1], sys.argv[2], config)
    except InterruptedRun as exc:
        print(f"INTERRUPTED {exc.signal_number}: {exc}", flush=True)
        sys.exit(exc.exit_code)
    print("FINISHED", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_training_raises_interrupted_run_and_leaves_nothing(
    synth_dir, tmp_path, signum
):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    out = work / "bundle"
    process = subprocess.Popen(
        [sys.executable, str(script), str(synth_dir), str(out), str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    staging_logs = work / f".bundle.partial-{process.pid}" / "logs"
    deadline = time.monotonic() + 600
    while not staging_logs.is_dir():  # Lightning has started fitting
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    time.sleep(2.0)  # inside the epoch loop
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert f"INTERRUPTED {int(signum)}: training stopped by" in stdout
    assert "FINISHED" not in stdout
    assert list(work.iterdir()) == []
