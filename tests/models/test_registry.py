import pytest
import torch

from osteoscan.errors import BadConfigError
from osteoscan.models import MODELS, build_model, get_spec


@pytest.mark.parametrize("name", ["cnn3", "resnet18", "resnet50", "vgg16"])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_study_models_build_from_scratch_with_a_fresh_head(name, num_classes):
    net, source = build_model(name, "scratch", num_classes)
    spec = get_spec(name)
    x = torch.rand(2, spec.in_chans, 64, 64)
    assert net.eval()(x).shape == (2, num_classes)
    assert source is None


def test_every_registered_model_declares_a_linear_head_and_valid_modes():
    for spec in MODELS.values():
        net, _ = build_model(spec.name, "scratch", 2)
        assert isinstance(net.head, torch.nn.Linear)
        assert set(spec.modes) <= {"finetune", "frozen", "scratch"}
        assert len(spec.mean) == len(spec.std) == spec.in_chans


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(BadConfigError, match="unknown model 'resnet51'.*resnet50"):
        build_model("resnet51", "scratch", 2)


def test_cnn3_has_no_pretrained_modes():
    with pytest.raises(BadConfigError, match="no pretrained weights.*--mode scratch"):
        build_model("cnn3", "finetune", 2)
