"""The study's ``roi: knee`` key: a configuration and its knee-ROI twin on identical folds over the
radiographs, the ROI one trained and tested on knee crops and scored once per radiograph."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from osteoscan.data.synth import make_synthetic_dataset
from osteoscan.errors import BadConfigError
from osteoscan.roi import RoiConfig
from osteoscan.study.config import load_study_config, parse_study_config
from osteoscan.study.runner import RunOptions, resolve_configurations, run_study
from osteoscan.training import TrainConfig

ROI_STUDY = Path(__file__).resolve().parents[2] / "src/osteoscan/study/roi_study.yaml"
CNN3 = {"name": "cnn3", "model": "cnn3", "mode": "scratch"}
CNN3_ROI = CNN3 | {"name": "cnn3-roi", "roi": "knee"}


def _document(*configurations) -> dict:
    return {
        "reference": "cnn3",
        "folds": 2,
        "training": {"image_size": 32, "epochs": 1, "batch_size": 16, "patience": 2},
        "configurations": list(configurations),
    }


def _options(tmp_path: Path, *configurations, externals: tuple[Path, ...] = ()) -> RunOptions:
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(_document(*configurations)))
    return RunOptions(
        config=load_study_config(config),
        train=TrainConfig(progress=False, cache_dir=tmp_path / "cache"),
        probe=False,
        bootstrap=50,
        externals=externals,
    )


def test_roi_study_pairs_every_configuration_with_its_knee_roi_twin():
    study = load_study_config(ROI_STUDY)
    names = {c.name: c for c in study.configurations}
    plain = [c for c in study.configurations if c.roi == "none"]
    assert len(plain) == 6 and len(names) == 12
    for c in plain:
        twin = names[f"{c.name}-roi"]
        assert (twin.model, twin.mode, twin.roi) == (c.model, c.mode, "knee")
        assert twin.roi_config == RoiConfig() and c.roi_config is None


def test_a_bad_roi_value_is_named():
    with pytest.raises(BadConfigError, match=r"'cnn3-roi': roi 'hip' is not one of none, knee"):
        parse_study_config(_document(CNN3, CNN3_ROI | {"roi": "hip"}), "s.yaml")


def test_the_runner_passes_roi_into_train_config():
    options = RunOptions(config=parse_study_config(_document(CNN3, CNN3_ROI), "s.yaml"))
    resolved = {c.name: c.train.roi for c in resolve_configurations(options)}
    assert resolved == {"cnn3": None, "cnn3-roi": RoiConfig()}


@pytest.fixture(scope="module")
def roi_study(mixed_views, tmp_path_factory):
    """cnn3 alone first, then cnn3 with its ROI twin added, into the same study folder."""
    data, views = mixed_views
    root = tmp_path_factory.mktemp("roi-study")
    out = root / "out"
    external = root / "external"  # other phantoms, plus a noise image where no knee is found
    make_synthetic_dataset(external, n=10, seed=11, image_size=128, views={"single": 1})
    noise = np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8)
    Image.fromarray(noise).save(external / "normal" / "noise.png")
    with open(external / "manifest.csv", "a") as manifest:
        manifest.write("normal/noise.png,ext-noise,0.50,normal\n")
    first = run_study(data, out, _options(root, CNN3, externals=(external,)))
    second = run_study(data, out, _options(root, CNN3, CNN3_ROI, externals=(external,)))
    units = {p.name: json.loads(p.read_text()) for p in (out / "units").glob("*.json")}
    study = json.loads((out / "study.json").read_text())
    results = json.loads((out / "results.json").read_text())
    return dict(
        data=data, views=views, first=first, second=second, units=units, study=study,
        results=results, out=out,
    )  # fmt: skip


def test_adding_the_roi_twin_reuses_the_whole_image_units(roi_study):
    assert sorted(roi_study["first"].ran) == ["cnn3-r1-f1", "cnn3-r1-f2"]
    assert sorted(roi_study["second"].ran) == ["cnn3-roi-r1-f1", "cnn3-roi-r1-f2"]
    plan = roi_study["second"].plan.text()
    assert (
        "cnn3-roi: cnn3 scratch, 32 px, knee ROI," in plan and "cnn3: cnn3 scratch, 32 px," in plan
    )


def test_the_twins_test_the_same_radiographs_once_each(roi_study):
    units, study = roi_study["units"], roi_study["study"]
    fold_of = {im["path"]: im["folds"][0] for im in study["images"]}
    blank = next(p for p in fold_of if p.endswith("blank.png"))
    for fold in (1, 2):
        whole = units[f"cnn3-r1-f{fold}.json"]
        roi = units[f"cnn3-roi-r1-f{fold}.json"]
        expected = {p for p, f in fold_of.items() if f == fold}
        assert set(whole["test_paths"]) == expected
        # one row per radiograph, bilateral or not; the blank image has no knee and no row
        assert len(roi["test_paths"]) == len(set(roi["test_paths"]))
        assert set(roi["test_paths"]) <= expected - {blank}
        unscored = len(expected) - len(roi["test_paths"])
        assert roi["n_test_images_without_knee"] == unscored >= (blank in expected)
        assert whole["n_test_images_without_knee"] == 0
        assert roi["threshold"] is not None
        assert all(0 <= p <= 1 for p in roi["test_probabilities"])


def test_bilateral_radiographs_train_as_two_crops(roi_study):
    bilateral = sum(v["view"] == "bilateral" for v in roi_study["views"].values())
    assert bilateral > 0
    roi_units = [u for n, u in roi_study["units"].items() if n.startswith("cnn3-roi")]
    whole_units = [u for n, u in roi_study["units"].items() if not n.startswith("cnn3-roi")]
    crops = sum(u["n_fit"] + u["n_validation"] for u in roi_units)
    images = sum(u["n_fit"] + u["n_validation"] for u in whole_units)
    assert crops > images  # the bilateral phantoms add a second crop each, minus the blank


def test_the_report_pairs_each_roi_configuration_with_its_twin(roi_study):
    results = roi_study["results"]
    (comparison,) = results["roi_comparisons"]
    assert (comparison["roi"], comparison["whole"]) == ("cnn3-roi", "cnn3")
    roi_units = [u for n, u in roi_study["units"].items() if n.startswith("cnn3-roi")]
    unscored = sum(u["n_test_images_without_knee"] for u in roi_units)
    assert comparison["n_paired"] == len(roi_study["study"]["images"]) - unscored
    for key in ("roc_auc_roi", "roc_auc_whole", "delong_p", "mcnemar_p"):
        assert comparison[key] is not None
    counts = {r["name"]: (r["units_done"], r["units_expected"]) for r in results["configurations"]}
    assert counts == {"cnn3": (2, 2), "cnn3-roi": (2, 2)}  # "cnn3-roi-r1-f1" is not cnn3's
    row = next(r for r in results["configurations"] if r["name"] == "cnn3-roi")
    assert row["images_without_knee"] == unscored >= 1
    assert row["n_pooled"] == comparison["n_paired"]
    md = (roi_study["out"] / "report.md").read_text()
    assert "## Knee ROI vs whole image" in md
    assert f"no knee was found on {unscored} test image(s)" in md
    config = next(c for c in roi_study["study"]["configurations"] if c["name"] == "cnn3-roi")
    assert config["roi"] == RoiConfig().to_dict()


def test_an_external_image_without_a_knee_is_not_scored_by_the_roi_models(roi_study):
    (external,) = roi_study["results"]["externals"].values()
    rows = {r["name"]: r for r in external["configurations"]}
    assert rows["cnn3"]["n_scored"] == external["n"]
    assert rows["cnn3"]["fold_models"] == rows["cnn3-roi"]["fold_models"] == 2
    assert 0 < rows["cnn3-roi"]["n_scored"] < external["n"]  # at least the noise image is left out
    assert rows["cnn3-roi"]["metrics"]["roc_auc"]["value"] is not None
    md = (roi_study["out"] / "report.md").read_text()
    assert "Not scored because no knee was found: " in md
