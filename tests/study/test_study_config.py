"""The study YAML: the packaged default is the published six; mistakes are named."""

import pytest

from osteoscan.errors import BadConfigError
from osteoscan.study.config import default_config_path, load_study_config, parse_study_config

MINIMAL = {"configurations": [{"name": "a", "model": "cnn3", "mode": "scratch"}]}


def test_the_packaged_default_is_the_published_comparison():
    study = load_study_config()
    assert default_config_path().name == "default_study.yaml"
    published = {(c.model, c.mode): c.published_accuracy for c in study.configurations}
    assert published == {
        ("resnet50", "finetune"): 0.90,
        ("resnet50", "frozen"): 0.83,
        ("vgg16", "finetune"): 0.88,
        ("vgg16", "frozen"): 0.80,
        ("resnet18", "finetune"): 0.79,
        ("cnn3", "scratch"): 0.66,
    }
    assert study.get(study.reference).model == "resnet50"
    assert study.get(study.reference).mode == "finetune"
    assert (study.folds, study.repeats, study.threshold) == (5, 1, "youden")


def test_quick_block_overrides_every_configuration_only_with_quick():
    study = load_study_config()
    vgg = study.get("vgg16-finetune")
    assert study.settings_for(vgg, quick=False).image_size == 224
    quick = study.settings_for(vgg, quick=True)
    assert quick.image_size < 224 and quick.epochs < study.training.epochs


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({**MINIMAL, "fodls": 5}, "fodls"),
        (
            {"configurations": [{"name": "a", "model": "cnn3", "mode": "scratch", "epoch": 3}]},
            "epoch",
        ),
        ({**MINIMAL, "training": {"img_size": 64}}, "img_size"),
    ],
)
def test_unknown_keys_are_an_error_that_names_them(document, named):
    with pytest.raises(BadConfigError, match=rf"study.yaml: .*unknown key\(s\) {named}"):
        parse_study_config(document, "study.yaml")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**MINIMAL, "reference": "b"}, "reference 'b' is not a configuration"),
        ({"configurations": [{"name": "a", "model": "cnn3", "mode": "tuned"}]}, "mode 'tuned'"),
        ({"configurations": [{"name": "a", "mode": "scratch"}]}, "needs 'model:'"),
        ({**MINIMAL, "training": {"epochs": "ten"}}, "epochs 'ten' must be int"),
        ({**MINIMAL, "folds": 1}, "folds 1 must be at least 2"),
        ({"configurations": []}, "non-empty 'configurations:'"),
    ],
)
def test_bad_values_are_named(document, message):
    with pytest.raises(BadConfigError, match=message):
        parse_study_config(document, "study.yaml")


def test_a_missing_file_names_it(tmp_path):
    with pytest.raises(BadConfigError, match="nope.yaml: cannot read"):
        load_study_config(tmp_path / "nope.yaml")


def test_the_packaged_transfer_study_is_picked_by_name():
    study = load_study_config("transfer")
    arms = [(c.model, c.mode, c.roi) for c in study.configurations]
    assert len(arms) == len(set(arms)) == 8
    assert {(m, mode) for m, mode, roi in arms if roi == "knee"} == {
        (m, mode) for m, mode, roi in arms if roi == "none"
    }
    assert {(m, mode) for m, mode, _ in arms} == {
        ("efficientnet_lite0", "finetune"),
        ("efficientnet_lite0", "frozen"),
        ("efficientnet_lite0", "scratch"),
        ("resnet18", "scratch"),
    }
    assert study.get(study.reference).mode == "finetune"
    assert study.training.image_size == 224
    quick = study.settings_for(study.get(study.reference), quick=True)
    assert quick.image_size == 224 and quick.epochs < study.training.epochs
    with pytest.raises(BadConfigError, match="transfer"):
        load_study_config("no-such-study.yaml")
