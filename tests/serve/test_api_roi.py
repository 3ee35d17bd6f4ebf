"""The REST API over a bundle trained on knee crops: one result per knee, with its box in the
radiograph's pixels, and the image-level result of the most abnormal knee."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from osteoscan.errors import BadImageError
from osteoscan.inference.bundle_io import read_metadata
from osteoscan.inference.predict import predict
from osteoscan.inference.preprocess import Preprocessor
from osteoscan.roi import SUMMARY_RULE
from osteoscan.serve import create_app
from tests.data.conftest import write_dicom
from tests.serve.conftest import png_bytes


@pytest.fixture(scope="module")
def roi_client(roi_serve_bundle):
    with TestClient(create_app(roi_serve_bundle)) as test_client:
        yield test_client


def _post(client, name: str, data: bytes, explain: bool = False):
    files = [("files", (name, data, "application/octet-stream"))]
    return client.post(f"/api/v1/predict?explain={str(explain).lower()}", files=files)


def test_model_info_states_the_roi(roi_client):
    assert roi_client.get("/api/v1/model").json()["roi"]["roi_scale"] > 1


def test_a_bilateral_radiograph_gives_two_knee_rows_with_boxes(
    roi_client, roi_serve_bundle, bilateral_phantom
):
    path, joints = bilateral_phantom
    response = _post(roi_client, path.name, path.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary_rule"] == SUMMARY_RULE
    (result,) = body["results"]
    right, left = result["knees"]
    assert (right["knee"], left["knee"]) == ("right", "left")
    height, width = np.asarray(Image.open(path)).shape
    assert (result["width"], result["height"]) == (width, height)
    # the image-level result is the knee with the higher probability of osteoporosis
    higher = max(right, left, key=lambda knee: knee["probability"])
    assert result["probability"] == higher["probability"]
    assert result["prediction"] == higher["prediction"]
    assert result["summary_knee"] == higher["knee"]
    # each box is a square around its own knee's true joint centre, in source pixels
    for knee, truth in zip((right, left), joints, strict=True):
        box = knee["box"]
        assert box["left"] < truth.x + 0.5 < box["left"] + box["side"]
        assert box["top"] < truth.y + 0.5 < box["top"] + box["side"]
        assert truth.width < box["side"] < width
        assert knee["prediction"] in ("normal", "osteoporosis") and knee["mirrored"] is False
    assert right["box"]["left"] + right["box"]["side"] / 2 < width / 2 < left["box"]["left"]
    # the same numbers as the command line's rows
    rows = predict(roi_serve_bundle, [path], backend="torch")
    assert [r.knee for r in rows] == ["right", "left", None]
    expected = [r.probability for r in rows]
    got = [right["probability"], left["probability"], result["probability"]]
    assert got == pytest.approx(expected, abs=1e-6)


def test_explain_lays_the_knee_maps_on_the_whole_radiograph(roi_client, bilateral_phantom):
    path, _ = bilateral_phantom
    (result,) = _post(roi_client, path.name, path.read_bytes(), explain=True).json()["results"]
    image = Image.open(io.BytesIO(base64.b64decode(result["image_png"])))
    heat = Image.open(io.BytesIO(base64.b64decode(result["heatmap_png"])))
    assert image.size == heat.size == (result["width"], result["height"])
    assert len(result["knees"]) == 2


def test_an_image_without_a_knee_is_422_naming_it(roi_client):
    response = _post(roi_client, "blank.png", png_bytes(np.zeros((96, 120), np.uint8)))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "blank.png" in detail and "no knee found" in detail


def test_the_openapi_document_describes_the_knee_rows(roi_client):
    schemas = roi_client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schemas["KneeResult"]["required"]) >= {"knee", "probability", "prediction", "box"}
    assert set(schemas["KneeBox"]["properties"]) == {"left", "top", "side"}
    file_result = schemas["FileResult"]["properties"]
    assert file_result["knees"]["items"]["$ref"].endswith("/KneeResult")
    assert {"summary_knee", "width", "height"} <= set(file_result)
    assert "summary_rule" in schemas["PredictResponse"]["properties"]


def test_a_dicom_upload_is_cropped_with_its_pixel_spacing(
    roi_client, roi_serve_bundle, bilateral_phantom, tmp_path
):
    path, joints = bilateral_phantom
    pixels = np.asarray(Image.open(path))
    meta = read_metadata(roi_serve_bundle)
    library = Preprocessor(meta.input, roi=meta.roi)
    plausible = 85.0 / joints[0].width  # mm per pixel: an 85 mm joint
    dicom = write_dicom(tmp_path / "k.dcm", pixels, PixelSpacing=[plausible, plausible])
    (result,) = _post(roi_client, "k.dcm", dicom.read_bytes()).json()["results"]
    boxes = [v for c in library.load(dicom).crops for v in (c.left, c.top, c.side)]
    got = [k["box"][key] for k in result["knees"] for key in ("left", "top", "side")]
    assert len(got) == 6 and got == pytest.approx(boxes)
    # at 20 mm a pixel the joints would be metres wide: no knee, on the server as in the library
    implausible = write_dicom(tmp_path / "far.dcm", pixels, PixelSpacing=[20.0, 20.0])
    with pytest.raises(BadImageError, match="no knee found"):
        library.load(implausible)
    response = _post(roi_client, "far.dcm", implausible.read_bytes())
    assert response.status_code == 422 and "no knee found" in response.json()["detail"]
