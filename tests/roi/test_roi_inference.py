"""predict, explain, calibrate and export on a bundle trained on knee crops: each applies the
bundle's ROI by itself; a bilateral radiograph gives one row per knee and an image-level row."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from osteoscan.data.synth import Anatomy, render_view
from osteoscan.inference import open_predictor, predict


@pytest.fixture(scope="module")
def radiographs(tmp_path_factory):
    """A bilateral phantom (both knees found), a single-knee one and a blank image."""
    folder = tmp_path_factory.mktemp("new")
    rng = np.random.default_rng(5)
    bilateral, _ = render_view("bilateral", -3.0, rng, 192, Anatomy.sample(rng))
    rng = np.random.default_rng(3)
    single, _ = render_view("single", 0.0, rng, 160, Anatomy.sample(rng))
    Image.fromarray(bilateral).save(folder / "a_bilateral.png")
    Image.fromarray(single).save(folder / "b_single.png")
    Image.fromarray(np.zeros((120, 90), np.uint8)).save(folder / "c_blank.png")
    return folder


def test_a_bilateral_radiograph_gives_two_knee_rows_and_the_higher_as_summary(
    roi_bundle, radiographs, tmp_path
):
    bundle, _ = roi_bundle
    out = tmp_path / "rows.csv"
    rows = predict(bundle, [radiographs], out=out)
    by_image: dict[str, list] = {}
    for row in rows:
        by_image.setdefault(row.path.rsplit("/", 1)[-1], []).append(row)
    right, left, summary = by_image["a_bilateral.png"]
    assert (right.knee, left.knee, summary.knee) == ("right", "left", None)
    assert summary.probability == max(right.probability, left.probability)
    assert summary.error is None and [k.knee for k in summary.knees] == ["right", "left"]
    knee, single_summary = by_image["b_single.png"]
    assert knee.knee == "knee" and single_summary.probability == knee.probability
    (blank,) = by_image["c_blank.png"]
    assert blank.probability is None and "no knee found" in blank.error
    with open(out, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["knee"] for r in table] == ["right", "left", "", "knee", "", ""]
    assert "knees" not in table[0]
    predict(bundle, [radiographs], out=tmp_path / "r.json")
    written = json.loads((tmp_path / "r.json").read_text())
    assert [r["knee"] for r in written] == ["right", "left", None, "knee", None, None]


def test_the_server_api_yields_one_image_row_per_file_with_its_knees(roi_bundle, radiographs):
    bundle, _ = roi_bundle
    predictor = open_predictor(bundle, "torch")
    paths = sorted(radiographs.iterdir())
    results = list(predictor.predict(paths))
    assert [row.path for row, _ in results] == [str(p) for p in paths]
    (row, image), _, (blank, nothing) = results
    assert len(image.crops) == len(row.knees) == 2 and nothing is None and blank.error


def test_onnx_backend_crops_the_same_way(roi_bundle, radiographs, tmp_path):
    from osteoscan.inference.export import export_bundle

    bundle = shutil.copytree(roi_bundle[0], tmp_path / "bundle")
    (fp32,) = export_bundle(bundle, [radiographs])
    assert fp32.n_check_images == 3  # two knees and one knee; the blank image has none
    torch_rows = predict(bundle, [radiographs], backend="torch")
    onnx_rows = predict(bundle, [radiographs], backend="onnx")
    assert [(r.path, r.knee) for r in onnx_rows] == [(r.path, r.knee) for r in torch_rows]
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        assert (a.probability is None) == (b.probability is None)
        if a.probability is not None:
            assert b.probability == pytest.approx(a.probability, abs=1e-4)


def test_explain_pastes_each_knee_map_back_onto_the_radiograph(roi_bundle, radiographs, tmp_path):
    from osteoscan.explain.gradcam import explain

    bundle, _ = roi_bundle
    source = radiographs / "a_bilateral.png"
    heat = explain(bundle, source, tmp_path / "cam.png")
    original = np.asarray(Image.open(source))
    assert heat.cam.shape == original.shape and len(heat.crops) == 2
    assert heat.probability == max(heat.knee_probabilities)
    covered = np.zeros(original.shape, bool)
    for crop in heat.crops:
        x0, y0 = max(0, int(crop.left)), max(0, int(crop.top))
        covered[y0 : int(crop.top + crop.side) + 1, x0 : int(crop.left + crop.side) + 1] = True
    assert heat.cam[~covered].max(initial=0.0) == 0.0  # nothing outside the knee crops
    with Image.open(tmp_path / "cam.png") as png:
        assert png.width >= original.shape[1]


def test_calibrate_scores_each_radiograph_by_its_knees(roi_bundle, mixed_views, tmp_path):
    from osteoscan.inference.calibrate import calibrate

    bundle = shutil.copytree(roi_bundle[0], tmp_path / "bundle")
    data, views = mixed_views
    calibration = calibrate(bundle, data, n_boot=50)
    binary = [path for path in views if not path.startswith("osteopenia/")]
    assert calibration.n_images <= len(binary)  # once per radiograph, never per knee
    assert calibration.n_images >= len(binary) - 4
