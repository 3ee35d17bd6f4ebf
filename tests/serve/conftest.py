"""A small trained bundle (cnn3, 48 px, 1 epoch on synthetic phantoms) and its ONNX export, a
bundle trained on knee crops (cnn3, 32 px) and a bilateral phantom, live uvicorn servers on
loopback, and upload payloads."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.data.conftest import write_dicom

TOKEN = "a-test-token-of-enough-length"


@pytest.fixture(scope="session")
def serve_exported(tmp_path_factory, trained_bundle, synth_dir) -> Path:
    from osteoscan.inference.export import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("serve-exported") / "bundle"
    shutil.copytree(trained_bundle, out)
    export_bundle(out, [synth_dir], ExportConfig())
    return out


@pytest.fixture(scope="session")
def phantom(synth_dir) -> Path:
    """One synthetic radiograph (PNG) from the training set."""
    return sorted(synth_dir.rglob("*.png"))[0]


def png_bytes(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def jpeg_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def dicom_bytes(tmp_path_factory) -> bytes:
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 4096, (64, 80), dtype=np.uint16)
    path = write_dicom(tmp_path_factory.mktemp("dicom") / "knee.dcm", stored, bits_stored=12)
    return path.read_bytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(bundle: Path, **config) -> Iterator[str]:
    """The service for ``bundle`` (ServeConfig ``config``) on a free loopback port, served by
    uvicorn in a thread; yields its URL."""
    import uvicorn

    from osteoscan.serve import ServeConfig, create_app

    port = free_port()
    app = create_app(bundle, ServeConfig(port=port, **config))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def live_server(trained_bundle):
    """The service over :func:`trained_bundle` on loopback; yields its URL."""
    with serving(trained_bundle) as url:
        yield url


@pytest.fixture(scope="session")
def roi_serve_bundle(tmp_path_factory) -> Path:
    """A bundle trained on knee crops (cnn3, 32 px, 1 epoch) of single and bilateral phantoms."""
    from osteoscan import TrainConfig, train
    from osteoscan.data.synth import make_synthetic_dataset
    from osteoscan.roi import RoiConfig

    data = tmp_path_factory.mktemp("roi-views")
    make_synthetic_dataset(data, n=24, seed=4, image_size=128, views={"single": 1, "bilateral": 1})
    out = tmp_path_factory.mktemp("roi-serve") / "bundle"
    config = TrainConfig(
        model="cnn3",
        mode="scratch",
        image_size=32,
        epochs=1,
        batch_size=16,
        roi=RoiConfig(),
        progress=False,
        accelerator="cpu",
        cache_dir=tmp_path_factory.getbasetemp() / "pixel-cache",
    )
    train(data, out, config)
    return out


@pytest.fixture(scope="session")
def bilateral_phantom(tmp_path_factory) -> tuple[Path, tuple]:
    """A bilateral phantom (PNG, both knees side by side, found by the localiser) and the true
    joint of each knee, image left to right."""
    from osteoscan.data.synth import Anatomy, render_view

    rng = np.random.default_rng(5)
    pixels, joints = render_view("bilateral", -3.0, rng, 192, Anatomy.sample(rng))
    assert len(joints) == 2
    path = tmp_path_factory.mktemp("bilateral") / "bilateral.png"
    Image.fromarray(pixels).save(path)
    return path, joints
