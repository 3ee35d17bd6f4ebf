"""Shared fixtures: an isolated cache and torch hub, offline weights, and small synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest

from osteoscan.data.synth import make_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "knee-xray-372"
FULLRES = REPO.parent / "shared" / "data" / "fullres-samples"

needs_real_data = pytest.mark.skipif(
    not REAL_DATA.is_dir(),
    reason=f"real knee X-rays not found at {REAL_DATA} (they live in ../shared/data beside the repo)",
)


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
