"""The predict / explain / calibrate / export commands through the real entry point."""

import json


def test_predict_and_explain_commands(run_cli, exported_bundle, synth_dir, tmp_path):
    out = tmp_path / "rows.json"
    done = run_cli("predict", exported_bundle, synth_dir / "normal", "--out", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert rows and all(r["error"] is None and r["model"] == "cnn3" for r in rows)
    assert "predicted" in done.stderr and "0 failed" in done.stderr
    image = sorted((synth_dir / "normal").glob("*.png"))[0]
    done = run_cli("explain", exported_bundle, image, "--out", tmp_path / "cam.png")
    assert done.returncode == 0, done.stderr
    assert "P(osteoporosis)" in done.stdout and (tmp_path / "cam.png").is_file()


def test_calibrate_and_export_commands(run_cli, bundle_copy, synth_dir):
    done = run_cli("calibrate", bundle_copy, "--data", synth_dir, "--target-sensitivity", "0.85")
    assert done.returncode == 0, done.stderr
    assert "temperature" in done.stdout and "for sensitivity >= 0.85" in done.stdout
    done = run_cli("export", bundle_copy, "--images", synth_dir / "osteoporosis")
    assert done.returncode == 0, done.stderr
    assert "fp32: model.onnx agrees within" in done.stdout


def test_bad_bundle_is_one_line_and_exit_2(run_cli, tmp_path, synth_dir):
    done = run_cli("predict", tmp_path, synth_dir)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("osteoscan: error: ")
    assert "not a model bundle" in done.stderr and "Traceback" not in done.stderr
