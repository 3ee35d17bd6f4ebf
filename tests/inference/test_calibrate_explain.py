"""calibrate stores temperature + threshold in the bundle and predict uses them; explain and
predict --cam write heat-maps at each image's size."""

import numpy as np
import pytest
from PIL import Image

from osteoscan.explain.gradcam import explain
from osteoscan.inference import calibrate, predict, read_metadata


def test_calibration_is_stored_and_predict_uses_it(bundle_copy, synth_dir):
    calibration = calibrate(bundle_copy, synth_dir, target_sensitivity=0.8, n_boot=100)
    meta = read_metadata(bundle_copy)
    assert meta.calibration == calibration
    assert calibration.data_source == str(synth_dir.resolve()) and calibration.n_images > 10
    assert calibration.ece_after <= calibration.ece_before + 1e-9
    assert calibration.target_sensitivity == 0.8 and calibration.sensitivity >= 0.8
    rows = [r for r in predict(bundle_copy, [synth_dir / "osteoporosis"]) if r.error is None]
    assert {r.threshold for r in rows} == {calibration.threshold}
    found = np.mean([r.prediction == "osteoporosis" for r in rows])
    assert found == pytest.approx(calibration.sensitivity)  # the same images, the same rule


def test_explain_and_predict_cam_write_overlays(trained_bundle, synth_dir, tmp_path):
    image = sorted((synth_dir / "osteoporosis").glob("*.png"))[0]
    wide = tmp_path / "wide.png"
    Image.open(image).resize((150, 96)).save(wide)
    heat = explain(trained_bundle, wide, tmp_path / "heat.png")
    assert heat.cam.shape == (96, 150) and 0.0 <= heat.cam.min() <= heat.cam.max() <= 1.0
    assert Image.open(tmp_path / "heat.png").format == "PNG"
    rows = predict(trained_bundle, [wide], cam_dir=tmp_path / "cams")
    assert (tmp_path / "cams" / "wide.cam.png").is_file()
    assert heat.probability == pytest.approx(rows[0].probability, abs=1e-6)


@pytest.mark.realdata
def test_real_radiographs_run_through_predict_and_explain(
    exported_bundle, real_data, fullres_samples, tmp_path
):
    images = sorted((real_data / "osteoporosis").iterdir())[:4] + sorted(fullres_samples.iterdir())
    rows = predict(exported_bundle, images, backend="onnx", out=tmp_path / "real.csv")
    torch_rows = predict(exported_bundle, images, backend="torch")
    assert [r.error for r in rows] == [None] * len(images)
    for onnx_row, torch_row in zip(rows, torch_rows, strict=True):
        assert onnx_row.probability == pytest.approx(torch_row.probability, abs=1e-4)
    heat = explain(exported_bundle, images[-1], tmp_path / "real.png")
    with Image.open(images[-1]) as original:
        assert heat.cam.shape == (original.height, original.width)


def test_evaluate_reports_calibration_and_uses_the_calibrated_bundle(bundle_copy, synth_dir):
    from osteoscan.pipeline import evaluate

    before = evaluate(bundle_copy, synth_dir, n_boot=50)
    assert (
        before.calibration is not None and before.calibration.bins.counts.sum() == before.result.n
    )
    assert before.to_dict()["calibration"]["ece"] == pytest.approx(before.calibration.ece)
    calibration = calibrate(bundle_copy, synth_dir, target_sensitivity=0.8, n_boot=50)
    after = evaluate(bundle_copy, synth_dir, n_boot=50)
    # the temperature-scaled probabilities, scored at the calibrated operating threshold
    assert after.calibration.ece == pytest.approx(calibration.ece_after, abs=1e-6)
    assert after.result.threshold == calibration.threshold
    # evaluate scores the training cache's float16 pixels, calibrate float32 ones (probabilities
    # within ~1e-6): this 1-epoch model's scores lie that close together, so one osteoporosis
    # image may change sides; the trained threshold is further off than that
    positives = sum(after.result.confusion_matrix[1])
    sensitivity = after.result.to_dict()["sensitivity"]["value"]
    assert sensitivity == pytest.approx(calibration.sensitivity, abs=1 / positives + 1e-9)
    trained = before.result.to_dict()["sensitivity"]["value"]
    assert abs(trained - calibration.sensitivity) > 1 / positives + 1e-9


def test_evaluate_cli_writes_the_reliability_diagram(bundle_copy, synth_dir, tmp_path, capsys):
    from osteoscan.cli import main

    png = tmp_path / "reliability.png"
    assert (
        main(
            [
                "evaluate",
                str(bundle_copy),
                "--data",
                str(synth_dir),
                "--reliability",
                str(png),
                "--bootstrap",
                "20",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "calibration: ECE" in out and str(png) in out
    assert Image.open(png).format == "PNG"
