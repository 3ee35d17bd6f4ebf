"""The REST API through FastAPI's TestClient: every success and every refusal a user can cause."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from osteoscan.errors import BadConfigError
from osteoscan.inference.bundle_io import read_metadata
from osteoscan.inference.predict import predict
from osteoscan.serve import ServeConfig, create_app, read_token
from tests.serve.conftest import TOKEN, jpeg_bytes, png_bytes

RNG = np.random.default_rng(0)
KNEE = (RNG.random((96, 120)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def client(trained_bundle):
    with TestClient(create_app(trained_bundle)) as test_client:
        yield test_client


def upload(*parts: tuple[str, bytes], field: str = "files"):
    return [(field, (name, data, "application/octet-stream")) for name, data in parts]


def test_health_and_model_info(client, trained_bundle):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/api/v1/model").json()
    meta = read_metadata(trained_bundle)
    assert info["model"] == "cnn3"
    assert info["operating_threshold"] == pytest.approx(meta.operating_threshold)
    assert info["version"] == meta.weights_sha256[:12]
    assert info["explain"] is True
    assert info["roi"] is None  # this bundle reads the whole image
    assert "not a diagnosis" in info["notice"]
    assert info["metadata"]["weights_sha256"] == meta.weights_sha256


def test_predict_matches_the_library(client, trained_bundle, phantom):
    response = client.post("/api/v1/predict", files=upload((phantom.name, phantom.read_bytes())))
    assert response.status_code == 200, response.text
    body = response.json()
    (result,) = body["results"]
    (expected,) = predict(trained_bundle, [phantom], backend="torch")
    assert result["filename"] == phantom.name
    assert result["probability"] == pytest.approx(expected.probability, abs=1e-6)
    assert result["prediction"] == expected.prediction
    assert result["threshold"] == pytest.approx(expected.threshold)
    assert result["heatmap_png"] is None and result["image_png"] is None
    assert result["knees"] == [] and result["summary_knee"] is None and body["summary_rule"] is None
    assert (result["width"], result["height"]) == Image.open(phantom).size
    assert body["model"] == "cnn3" and "screening aid" in body["notice"]


def test_png_jpeg_and_dicom_in_one_request_keep_their_order(client, dicom_bytes):
    files = upload(("a.png", png_bytes(KNEE)), ("b.jpg", jpeg_bytes(KNEE)), ("c", dicom_bytes))
    results = client.post("/api/v1/predict", files=files).json()["results"]
    assert [r["filename"] for r in results] == ["a.png", "b.jpg", "c"]
    assert all(0.0 <= r["probability"] <= 1.0 for r in results)
    # the same pixels as PNG and JPEG give nearly the same probability
    assert results[0]["probability"] == pytest.approx(results[1]["probability"], abs=0.05)


def test_type_comes_from_content_not_name(client):
    response = client.post("/api/v1/predict", files=upload(("scan.dcm", png_bytes(KNEE))))
    assert response.status_code == 200
    response = client.post("/api/v1/predict", files=upload(("knee.png", b"GIF89a" + bytes(200))))
    assert response.status_code == 415
    assert "knee.png" in response.json()["detail"]


def test_explain_returns_image_and_heatmap_of_the_same_size(client):
    response = client.post("/api/v1/predict?explain=true", files=upload(("k.png", png_bytes(KNEE))))
    (result,) = response.json()["results"]
    image = Image.open(io.BytesIO(base64.b64decode(result["image_png"])))
    heat = Image.open(io.BytesIO(base64.b64decode(result["heatmap_png"])))
    assert image.mode == "L" and heat.mode == "RGBA"
    assert image.size == heat.size == (120, 96)
    assert np.asarray(image).std() > 0  # the radiograph itself, not a blank
    assert len(np.unique(np.asarray(heat)[..., :3].reshape(-1, 3), axis=0)) > 1


def _truncated_png() -> bytes:
    data = png_bytes(KNEE)
    return data[: len(data) // 2]


def _bomb_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (9500, 9500)).save(buffer, format="PNG")  # 90 M px in ~15 kB
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "status", "says"),
    [
        ("empty.png", b"", 422, "empty"),
        ("half.png", _truncated_png(), 422, "truncated"),
        ("notes.png", b"these are not pixels" * 20, 415, "not a supported image"),
        ("bomb.png", _bomb_png(), 422, "decompression bomb"),
        ("tiny.png", png_bytes(KNEE[:8, :8]), 422, "at least 32 px"),
    ],
)
def test_bad_files_get_a_4xx_naming_the_file(client, name, data, status, says):
    response = client.post("/api/v1/predict", files=upload((name, data)))
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert name in detail and says in detail


def test_one_bad_file_refuses_the_request_and_names_it(client):
    files = upload(("good.png", png_bytes(KNEE)), ("bad.png", b""))
    response = client.post("/api/v1/predict", files=files)
    assert response.status_code == 422
    assert "bad.png" in response.json()["detail"]


def test_wrong_field_no_file_and_not_multipart(client):
    response = client.post(
        "/api/v1/predict", files=upload(("k.png", png_bytes(KNEE)), field="file")
    )
    assert response.status_code == 400
    assert "'files'" in response.json()["detail"] and "'file'" in response.json()["detail"]
    response = client.post("/api/v1/predict", files={"note": (None, b"hello")})
    assert response.status_code == 400 and "got field(s) 'note'" in response.json()["detail"]
    response = client.post(
        "/api/v1/predict",
        content=b"--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 400 and "no file" in response.json()["detail"]
    response = client.post("/api/v1/predict", json={"files": "k.png"})
    assert response.status_code == 415 and "multipart/form-data" in response.json()["detail"]
    assert client.post("/api/v1/predict").status_code == 415


def test_oversized_upload_is_413_and_too_many_files_400(trained_bundle):
    config = ServeConfig(max_upload_bytes=20_000, max_files=2)
    with TestClient(create_app(trained_bundle, config)) as small:
        big = png_bytes((RNG.random((300, 300)) * 255).astype(np.uint8))
        assert len(big) > 20_000
        response = small.post("/api/v1/predict", files=upload(("big.png", big)))
        assert response.status_code == 413 and "limit" in response.json()["detail"]
        three = upload(*[(f"{i}.png", png_bytes(KNEE)) for i in range(3)])
        response = small.post("/api/v1/predict", files=three)
        assert response.status_code == 400 and "Too many files" in response.json()["detail"]


def test_uploads_never_touch_the_disk(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    noise = png_bytes((RNG.random((1200, 1200)) * 255).astype(np.uint8))
    assert len(noise) > 1024 * 1024  # above Starlette's usual in-memory limit for a part
    response = client.post("/api/v1/predict", files=upload(("noise.png", noise)))
    assert response.status_code == 200


def test_beyond_capacity_is_503_with_retry_after(trained_bundle):
    config = ServeConfig(max_pending=1, retry_after_s=7)
    with TestClient(create_app(trained_bundle, config)) as busy:
        admission = busy.app.state.service.admission
        with admission:  # one request in progress
            response = busy.post("/api/v1/predict", files=upload(("k.png", png_bytes(KNEE))))
            assert response.status_code == 503
            assert response.headers["retry-after"] == "7"
            assert "busy" in response.json()["detail"]
        assert busy.post("/api/v1/predict", files=upload(("k.png", png_bytes(KNEE)))).is_success


def test_concurrent_requests_share_model_batches(trained_bundle):
    config = ServeConfig(batch_window_ms=300, max_batch=16)
    with TestClient(create_app(trained_bundle, config)) as shared:
        batcher = shared.app.state.service.batcher
        with ThreadPoolExecutor(8) as pool:
            responses = list(
                pool.map(
                    lambda i: shared.post(
                        "/api/v1/predict", files=upload((f"{i}.png", png_bytes(KNEE)))
                    ),
                    range(8),
                )
            )
        assert all(r.status_code == 200 for r in responses)
        stats = batcher.stats
        assert stats.images == 8 and stats.batches < 8 and stats.largest > 1
        probabilities = [r.json()["results"][0]["probability"] for r in responses]
        # batching changes a result by float rounding at most: CPU kernels (oneDNN on AVX-512,
        # for one) may sum in another order for another batch size
        assert max(probabilities) - min(probabilities) < 1e-6


def test_onnx_backend_agrees_with_torch(serve_exported, client):
    with TestClient(create_app(serve_exported, ServeConfig(backend="onnx"))) as onnx:
        assert onnx.get("/api/v1/model").json()["backend"] == "onnx"
        files = upload(("k.png", png_bytes(KNEE)))
        got = onnx.post("/api/v1/predict", files=files).json()["results"][0]["probability"]
    want = client.post("/api/v1/predict", files=files).json()["results"][0]["probability"]
    assert got == pytest.approx(want, abs=1e-4)


def test_token_protects_everything_but_health_and_page(trained_bundle):
    with TestClient(create_app(trained_bundle, ServeConfig(token=TOKEN))) as guarded:
        assert guarded.get("/healthz").status_code == 200
        assert guarded.get("/").status_code == 200
        for path in ("/api/v1/model", "/openapi.json", "/docs"):
            response = guarded.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
        wrong = guarded.get("/api/v1/model", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert guarded.get("/api/v1/model", headers=right).status_code == 200
        files = upload(("k.png", png_bytes(KNEE)))
        assert guarded.post("/api/v1/predict", files=files).status_code == 401
        assert guarded.post("/api/v1/predict", files=files, headers=right).status_code == 200


def test_beyond_loopback_needs_a_token(tmp_path, monkeypatch):
    with pytest.raises(BadConfigError, match="token is required"):
        ServeConfig(host="0.0.0.0")
    assert ServeConfig(host="0.0.0.0", token=TOKEN).host == "0.0.0.0"
    assert ServeConfig(host="::1").token is None
    with pytest.raises(BadConfigError, match="at least 16"):
        ServeConfig(token="short")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert read_token(token_file) == TOKEN
    monkeypatch.setenv("OSTEOSCAN_TOKEN", "from-the-environment-0123")
    assert read_token() == "from-the-environment-0123"
    with pytest.raises(BadConfigError, match="cannot read"):
        read_token(tmp_path / "missing")


def test_cli_refuses_to_listen_beyond_loopback_without_token(trained_bundle, monkeypatch):
    monkeypatch.delenv("OSTEOSCAN_TOKEN", raising=False)
    done = subprocess.run(
        [sys.executable, "-m", "osteoscan.cli", "serve", str(trained_bundle), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "token is required" in done.stderr and "Traceback" not in done.stderr


def test_page_has_the_notice_and_no_external_resource(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    assert "Screening aid, not a diagnosis" in html and "bone densitometry" in html
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text and "@import" not in text
    assert "http://" not in html and "https://" not in html
