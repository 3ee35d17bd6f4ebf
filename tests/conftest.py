"""Shared fixtures: an isolated cache and torch hub, offline weights, and small synthetic data."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from osteoscan.data.synth import make_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "knee-xray-372"
FULLRES = REPO.parent / "shared" / "data" / "fullres-samples"


def interruptible() -> None:
    """``preexec_fn`` for a child that a test will Ctrl-C: SIGINT back to its default action.

    A shell that runs ``make test &`` (no job control) starts it with SIGINT ignored, children
    inherit that, and Python then installs no Ctrl-C handler: the signal would be lost.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The public 372-image knee set; tests using it skip when ../shared/data is absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real knee X-rays not found at {REAL_DATA} (../shared/data beside the repo)")
    return REAL_DATA


@pytest.fixture(scope="session")
def fullres_samples() -> Path:
    if not FULLRES.is_dir():
        pytest.skip(f"full-resolution samples not found at {FULLRES} (../shared/data)")
    return FULLRES


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """No test downloads weights or writes to the user's caches."""
    monkeypatch.setenv("OSTEOSCAN_OFFLINE", "1")
    monkeypatch.setenv("OSTEOSCAN_CACHE", str(tmp_path_factory.getbasetemp() / "osteoscan-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch-home"))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic dataset (class folders + manifest.csv), shared read-only by tests."""
    out = tmp_path_factory.mktemp("synth")
    make_synthetic_dataset(out, n=60, seed=0, image_size=96)
    return out


QUICK_TRAIN = ("--model", "cnn3", "--mode", "scratch", "--image-size", "48", "--epochs", "2")


@pytest.fixture
def run_cli():
    """Run the real ``osteoscan`` entry point in a fresh interpreter; returns the finished process.

    ``run_cli.quick_train(data, out, *extra, verbose=False)`` runs the cheap cnn3 training through it;
    ``run_cli.argv(*args)`` is the command line, for tests that start the process themselves.
    """

    def argv(*args: str) -> list[str]:
        return [sys.executable, "-m", "osteoscan.cli", *map(str, args)]

    def run(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return subprocess.run(argv(*args), capture_output=True, text=True, timeout=timeout)

    def quick_train(data, out, *extra: str, verbose: bool = False) -> subprocess.CompletedProcess:
        flags = ("--verbose",) if verbose else ()
        return run(
            *flags, "train", "--data", data, "--out", out, *QUICK_TRAIN, *extra, "--no-progress"
        )

    run.quick_train = quick_train
    run.argv = argv
    return run


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, synth_dir) -> Path:
    """A small trained bundle (cnn3, 48 px, 1 epoch on synthetic phantoms), shared by the
    inference and serve tests."""
    from osteoscan.pipeline import train
    from osteoscan.training import TrainConfig

    out = tmp_path_factory.mktemp("bundle") / "bundle"
    config = TrainConfig(
        model="cnn3",
        mode="scratch",
        image_size=48,
        epochs=1,
        progress=False,
        accelerator="cpu",
        cache_dir=tmp_path_factory.getbasetemp() / "pixel-cache",
    )
    train(synth_dir, out, config)
    return out
