"""The shared trained bundle (tests/conftest.py) with ONNX exports, and per-test copies for the
tests that change a bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def exported_bundle(tmp_path_factory, trained_bundle, synth_dir) -> Path:
    """The trained bundle with fp32 and int8 ONNX exports, checked on the synthetic images."""
    from osteoscan.inference.export import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("exported") / "bundle"
    shutil.copytree(trained_bundle, out)
    export_bundle(out, [synth_dir], ExportConfig(int8=True))
    return out


@pytest.fixture
def bundle_copy(tmp_path, trained_bundle) -> Path:
    """A private copy of the trained bundle that a test may change."""
    return Path(shutil.copytree(trained_bundle, tmp_path / "bundle"))


@pytest.fixture
def exported_copy(tmp_path, exported_bundle) -> Path:
    return Path(shutil.copytree(exported_bundle, tmp_path / "exported"))
