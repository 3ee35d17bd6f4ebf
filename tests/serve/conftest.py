"""A small trained bundle (cnn3, 48 px, 1 epoch on synthetic phantoms) and its ONNX export,
the app over it, a live uvicorn server on loopback, and upload payloads."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
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


@pytest.fixture(scope="session")
def live_server(trained_bundle):
    """The service on a free loopback port, served by uvicorn in a thread; yields its URL."""
    import uvicorn

    from osteoscan.serve import ServeConfig, create_app

    port = free_port()
    app = create_app(trained_bundle, ServeConfig(port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
