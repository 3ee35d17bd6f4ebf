"""The bundle metadata schema: round trip, and a clear refusal of each kind of damage."""

import json

import pytest

from osteoscan.data.labels import Task
from osteoscan.errors import BadBundleError
from osteoscan.metadata import (
    BUNDLE_FORMAT,
    BundleMetadata,
    Calibration,
    FitSummary,
    InputSpec,
    OnnxExport,
    TrainingRecord,
)

SHA = "ab" * 32


def make_metadata(**changes) -> BundleMetadata:
    values = dict(
        model="cnn3",
        mode="scratch",
        task=Task(),
        input=InputSpec(48, 1, (0.5,), (0.25,), contract_version=1),
        decision_threshold=0.5,
        seed=0,
        weights_sha256=SHA,
        created="2026-12-01T00:00:00+00:00",
        versions={"osteoscan": "0.1.0"},
        training=TrainingRecord(SHA, "/data", 10, 4, 1, 0, 0),
        fit=FitSummary(best_epoch=2, best_val_auc=float("nan"), epochs_run=3, precision="32"),
        config={"epochs": 3},
        validation_metrics={"roc_auc": {"value": float("-inf")}},
    )
    values.update(changes)
    return BundleMetadata(**values)


def test_round_trip_through_strict_json():
    meta = make_metadata()
    text = json.dumps(meta.to_dict(), allow_nan=False)
    data = json.loads(text)
    assert data["class_names"] == ["normal", "osteoporosis"]
    assert data["fit"]["best_val_auc"] is None  # NaN is not JSON
    again = BundleMetadata.from_dict(data, "m.json")
    assert again.input == meta.input and again.task == meta.task
    assert again.class_names == ("normal", "osteoporosis")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("class_names"), "'class_names' is missing"),
        (lambda d: d["input"].pop("image_size"), "'image_size' is missing"),
        (lambda d: d.pop("task"), "'task' is missing"),
        (lambda d: d["input"].update(image_size="48"), "'image_size' must be int, not str"),
        (lambda d: d["input"].update(image_size=True), "'image_size' must be int, not bool"),
        (lambda d: d["input"].update(image_size=2), "must be at least 8"),
        (lambda d: d["input"].update(std=[0.0]), "must be positive"),
        (lambda d: d.update(decision_threshold=None), "must be a number for the binary task"),
        (lambda d: d.update(decision_threshold=1.5), r"must lie in \[0, 1\]"),
        (lambda d: d.update(class_names=["osteoporosis", "normal"]), "must be"),
        (lambda d: d.update(weights_sha256="xyz"), "64-digit"),
        (lambda d: d.update(surprise=1), "'surprise' is not part of bundle format"),
    ],
)
def test_each_kind_of_damage_is_named(edit, message):
    data = make_metadata().to_dict()
    edit(data)
    with pytest.raises(BadBundleError, match=message) as info:
        BundleMetadata.from_dict(data, "b/metadata.json")
    assert str(info.value).startswith("b/metadata.json: ")
    assert "re-train" in str(info.value)


def test_newer_and_older_formats_say_what_to_do():
    data = make_metadata().to_dict()
    data["bundle_format"] = BUNDLE_FORMAT + 1
    with pytest.raises(BadBundleError, match="newer osteoscan.*upgrade"):
        BundleMetadata.from_dict(data, "m.json")
    data["bundle_format"] = BUNDLE_FORMAT - 1
    with pytest.raises(BadBundleError, match="re-train it"):
        BundleMetadata.from_dict(data, "m.json")


def test_a_bundle_made_under_another_pixel_contract_is_refused():
    from osteoscan.data.pixels import CONTRACT_VERSION

    data = make_metadata().to_dict()
    assert data["input"]["contract_version"] == CONTRACT_VERSION
    data["input"]["contract_version"] = CONTRACT_VERSION + 1
    with pytest.raises(BadBundleError, match=r"m.json: input contract .*newer.*upgrade osteoscan"):
        BundleMetadata.from_dict(data, "m.json")
    data["input"]["contract_version"] = CONTRACT_VERSION - 1
    with pytest.raises(BadBundleError, match=r"older osteoscan.*re-train it"):
        BundleMetadata.from_dict(data, "m.json")


def test_seen_images_round_trip_and_bad_entries_are_named():
    from osteoscan.metadata import SeenImage

    images = (SeenImage("/d/a.png", "train", SHA), SeenImage("/d/b.png", "validation", None))
    meta = make_metadata(training=TrainingRecord(SHA, "/data", 1, 1, 0, 0, 0, images=images))
    again = BundleMetadata.from_dict(json.loads(json.dumps(meta.to_dict())), "m.json")
    assert again.training.images == images
    assert again.training.validation_images == ("/d/b.png",)
    for bad, message in (
        ({"path": "/d/a.png", "split": "test", "pixel_hash": None}, "must be one of"),
        ({"path": "/d/a.png", "split": "train", "pixel_hash": "zz"}, "64-digit"),
        ("a.png", "must hold objects"),
    ):
        data = meta.to_dict()
        data["training"]["images"] = [bad]
        with pytest.raises(BadBundleError, match=message):
            BundleMetadata.from_dict(data, "m.json")


CALIBRATION = Calibration(
    temperature=1.7,
    threshold=0.31,
    threshold_rule="target_sensitivity",
    target_sensitivity=0.9,
    sensitivity=0.92,
    sensitivity_ci=(0.8, 1.0),
    specificity=0.6,
    specificity_ci=(0.45, 0.75),
    threshold_ci=(0.2, 0.4),
    data_source="/held-out",
    data_manifest_sha256=SHA,
    n_images=40,
    ece_before=0.2,
    ece_after=0.05,
    brier_before=0.3,
    brier_after=0.2,
    created="2026-12-01T00:00:00+00:00",
)
FP32 = OnnxExport("model.onnx", SHA, "fp32", 18, 1e-6, 1e-4, 12)


def test_calibration_and_exports_round_trip_and_set_the_operating_point():
    meta = make_metadata(calibration=CALIBRATION, exports=(FP32,))
    again = BundleMetadata.from_dict(json.loads(json.dumps(meta.to_dict())), "m.json")
    assert again.calibration == CALIBRATION and again.exports == (FP32,)
    assert again.temperature == 1.7 and again.operating_threshold == 0.31
    assert again.export("fp32") == FP32 and again.export("int8") is None
    plain = make_metadata()
    assert plain.temperature == 1.0 and plain.operating_threshold == 0.5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["calibration"].update(temperature=0.0), "temperature' must be positive"),
        (lambda d: d["calibration"].update(threshold=2.0), r"calibration.threshold' must lie"),
        (lambda d: d["calibration"].update(sensitivity_ci=[0.9, 0.1]), "low <= high"),
        (lambda d: d["calibration"].pop("data_manifest_sha256"), "is missing"),
        (lambda d: d["exports"][0].update(file="../evil.onnx"), "file name inside the bundle"),
        (lambda d: d["exports"][0].update(precision="fp16"), "must be one of"),
        (lambda d: d["exports"].append(dict(d["exports"][0])), "one precision twice"),
    ],
)
def test_damaged_calibration_or_exports_are_named(edit, message):
    data = make_metadata(calibration=CALIBRATION, exports=(FP32,)).to_dict()
    edit(data)
    with pytest.raises(BadBundleError, match=message):
        BundleMetadata.from_dict(data, "b/metadata.json")


def test_a_newer_format_with_new_keys_gets_the_version_message():
    data = make_metadata().to_dict()
    data.update(bundle_format=BUNDLE_FORMAT + 1, field_of_the_future=1)
    with pytest.raises(BadBundleError, match="newer osteoscan"):
        BundleMetadata.from_dict(data, "m.json")


def test_roi_settings_round_trip_and_a_bundle_without_them_has_none():
    from osteoscan.roi import RoiConfig

    roi = RoiConfig(roi_scale=2.0, mirror="left", joint_width_mm=(40.0, 120.0))
    data = json.loads(json.dumps(make_metadata(roi=roi).to_dict(), allow_nan=False))
    assert data["roi"]["mirror"] == "left"
    assert BundleMetadata.from_dict(data, "m.json").roi == roi
    plain = make_metadata().to_dict()
    assert "roi" not in plain  # whole-image bundles are written as before
    assert BundleMetadata.from_dict(plain, "m.json").roi is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(roi_scale="1.6"), "'roi_scale' must be float, not str"),
        (lambda r: r.update(max_knees=True), "'max_knees' must be int, not bool"),
        (lambda r: r.update(roi_scale=9.0), "'roi' is invalid (ROI roi_scale=9.0"),
        (lambda r: r.update(mirror="up"), "'roi' is invalid (ROI mirror='up'"),
        (lambda r: r.update(joint_width_mm=[50]), "'roi.joint_width_mm' must hold 2 numbers"),
        (lambda r: r.update(zoom=2), "'roi.zoom' is not a knee-ROI setting"),
    ],
)
def test_damaged_roi_settings_are_named(edit, message):
    from osteoscan.roi import RoiConfig

    data = make_metadata(roi=RoiConfig()).to_dict()
    edit(data["roi"])
    with pytest.raises(BadBundleError, match="m.json") as caught:
        BundleMetadata.from_dict(data, "m.json")
    assert message in str(caught.value)


def test_roi_settings_must_be_an_object():
    data = make_metadata().to_dict() | {"roi": "knee"}
    with pytest.raises(BadBundleError, match="'roi' must be an object"):
        BundleMetadata.from_dict(data, "m.json")
