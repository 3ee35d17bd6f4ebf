"""A small trained bundle (cnn3, 48 px, 1 epoch on synthetic phantoms), shared by the
inference tests, and per-test copies for the tests that change a bundle."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from osteoscan.pipeline import train
from osteoscan.training import TrainConfig

_DATA_CONFTEST = Path(__file__).resolve().parents[1] / "data" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_osteoscan_data_writers", _DATA_CONFTEST)
writers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(writers)
write_dicom = writers.write_dicom
write_image = writers.write_image


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, synth_dir) -> Path:
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
