"""predict: one row per image, bad files reported in their row, DICOM equal to PNG, bundles
refused clearly when they are newer, tampered or lack the asked-for export."""

import csv
import json
import shutil

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from osteoscan.data.decode import read_image
from osteoscan.errors import BadBundleError, BadConfigError
from osteoscan.inference import predict, read_metadata
from osteoscan.metadata import METADATA_FILE, WEIGHTS_FILE
from tests.data.conftest import write_dicom, write_image


def _some_images(synth_dir, n=3):
    return sorted((synth_dir / "osteoporosis").glob("*.png"))[:n]


def test_rows_for_files_and_folders_with_a_bad_file_reported_in_its_row(
    trained_bundle, synth_dir, tmp_path
):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = _some_images(synth_dir)
    rows = predict(trained_bundle, [good[0], broken, synth_dir / "normal"], batch_size=4)
    n_normal = len(list((synth_dir / "normal").glob("*.png")))
    assert len(rows) == 2 + n_normal
    bad = rows[1]
    assert bad.path == str(broken) and bad.probability is None and bad.prediction is None
    assert "broken.png" in bad.error
    threshold = read_metadata(trained_bundle).operating_threshold
    for row in [rows[0], *rows[2:]]:
        assert row.error is None and 0.0 <= row.probability <= 1.0
        assert row.threshold == threshold and row.model == "cnn3"
        expected = "osteoporosis" if row.probability >= threshold else "normal"
        assert row.prediction == expected


def test_csv_and_json_outputs_by_suffix(trained_bundle, synth_dir, tmp_path):
    images = _some_images(synth_dir)
    rows = predict(trained_bundle, images, out=tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    columns = ["path", "probability", "prediction", "threshold", "model", "error", "knee"]
    assert list(table[0]) == columns  # knee: empty for a whole-image bundle
    assert {r["knee"] for r in table} == {""}
    assert [float(r["probability"]) for r in table] == pytest.approx([r.probability for r in rows])
    predict(trained_bundle, images, out=tmp_path / "out.json")
    data = json.loads((tmp_path / "out.json").read_text())
    assert [d["path"] for d in data] == [str(p) for p in images]
    with pytest.raises(BadConfigError, match=r"\.csv or \.json"):
        predict(trained_bundle, images, out=tmp_path / "out.txt")


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_16_bit_with_rescale_gives_the_png_prediction(
    trained_bundle, synth_dir, tmp_path, photometric
):
    """A 16-bit PNG and a DICOM holding the same picture (rescaled, windowed, maybe inverted)."""
    picture = np.round(read_image(_some_images(synth_dir)[0]) * 65535).astype(np.uint16)
    png = write_image(tmp_path / "knee.png", picture)
    slope, intercept = 2.0, -1000.0
    width = 65535 * slope + 1
    center = intercept + 0.5 + (width - 1) / 2
    stored = picture if photometric == "MONOCHROME2" else (65535 - picture).astype(np.uint16)
    dcm = write_dicom(
        tmp_path / "knee.dcm",
        stored,
        photometric=photometric,
        RescaleSlope=slope,
        RescaleIntercept=intercept,
        WindowCenter=center,
        WindowWidth=width,
    )
    from_png, from_dicom = predict(trained_bundle, [png, dcm])
    assert from_dicom.error is None
    assert from_dicom.probability == pytest.approx(from_png.probability, abs=1e-5)
    assert from_dicom.prediction == from_png.prediction


def test_dicom_without_pixel_data_and_compressed_without_decoder(trained_bundle, tmp_path):
    from pydicom import dcmread

    dcm = write_dicom(tmp_path / "empty.dcm", np.zeros((40, 40), np.uint16))
    ds = dcmread(dcm)
    del ds.PixelData
    ds.save_as(dcm)
    compressed = write_dicom(tmp_path / "j2k.dcm", np.zeros((40, 40), np.uint16))
    ds = dcmread(compressed)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless  # no JPEG 2000 decoder is installed here
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 60])
    ds.save_as(compressed)
    empty_row, compressed_row = predict(trained_bundle, [dcm, compressed])
    assert "empty.dcm" in empty_row.error and "no pixel data" in empty_row.error
    assert "j2k.dcm" in compressed_row.error
    assert "pylibjpeg" in compressed_row.error and "gdcm" in compressed_row.error.lower()


def test_bundle_by_a_newer_osteoscan_is_refused_with_a_version_message(bundle_copy, synth_dir):
    meta_file = bundle_copy / METADATA_FILE
    data = json.loads(meta_file.read_text())
    data["bundle_format"] = 99
    meta_file.write_text(json.dumps(data))
    for backend in ("torch", "onnx"):
        with pytest.raises(BadBundleError, match="newer osteoscan.*upgrade"):
            predict(bundle_copy, _some_images(synth_dir, 1), backend=backend)


def test_tampered_weights_are_refused(bundle_copy, synth_dir):
    if json.loads((bundle_copy / METADATA_FILE).read_text())["bundle_format"] == 1:
        pytest.skip("bundle.py still writes format 1 (no weights sha256); active after the merge")
    weights = bundle_copy / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(BadBundleError, match="sha256"):
        predict(bundle_copy, _some_images(synth_dir, 1), backend="torch")


def test_tampered_onnx_file_is_refused(exported_copy, synth_dir):
    onnx_file = exported_copy / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(BadBundleError, match=r"model.onnx: sha256 does not match"):
        predict(exported_copy, _some_images(synth_dir, 1), backend="onnx")


def test_missing_export_or_backend_says_what_to_do(trained_bundle, synth_dir, tmp_path):
    with pytest.raises(BadBundleError, match="osteoscan export .* --format onnx --int8"):
        predict(trained_bundle, _some_images(synth_dir, 1), backend="onnx-int8")
    with pytest.raises(BadConfigError, match="unknown backend"):
        predict(trained_bundle, _some_images(synth_dir, 1), backend="tensorrt")
    not_a_bundle = tmp_path / "nothing"
    not_a_bundle.mkdir()
    with pytest.raises(BadBundleError, match="not a model bundle"):
        predict(not_a_bundle, _some_images(synth_dir, 1))
    shutil.rmtree(not_a_bundle)
