"""Grad-CAM against a hand-computed case: sign-correct per class, hooks removed, train/eval
state restored, and the map at the original resolution peaking on a planted feature."""

import numpy as np
import pytest
import torch
from torch import nn

from osteoscan.data.labels import Task
from osteoscan.explain import Explainer, grad_cam
from osteoscan.metadata import BundleMetadata, FitSummary, InputSpec, TrainingRecord

SHA = "ab" * 32


class Tiny(nn.Module):
    """conv -> ReLU (the Grad-CAM layer) -> global mean -> linear: Grad-CAM is computable by hand."""

    def __init__(self, conv: nn.Conv2d, fc_weight) -> None:
        super().__init__()
        self.conv, self.act = conv, nn.ReLU()
        self.fc = nn.Linear(conv.out_channels, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor(fc_weight, dtype=torch.float32))

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


def _two_channel_net() -> Tiny:
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    return Tiny(conv, [[0.5, 1.0], [1.5, 0.0]])


def test_matches_the_hand_computed_map_for_each_class():
    net = _two_channel_net()
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 1, 4, 4)).astype(np.float32))
    activations = torch.relu(torch.cat([x, -x], dim=1))[0].numpy()  # (2, 4, 4)
    weights = net.fc.weight.detach().numpy()
    for target, other in ((1, 0), (0, 1)):
        # d(z_target - z_other)/dA_k(i, j) = (W_target,k - W_other,k) / 16; alpha_k is its mean
        alpha = (weights[target] - weights[other]) / 16.0
        expected = np.maximum((alpha[:, None, None] * activations).sum(axis=0), 0.0)
        got = grad_cam(net, x, net.act, target)[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    osteoporosis, normal = grad_cam(net, x, net.act, 1)[0], grad_cam(net, x, net.act, 0)[0]
    assert osteoporosis.max() > 0 and normal.max() > 0
    assert not np.any((osteoporosis > 0) & (normal > 0))  # opposite evidence, never both


def test_hooks_are_removed_and_train_state_restored_even_on_error():
    net = _two_channel_net()
    net.train()
    net.fc.eval()  # a mixed state, as a frozen backbone has
    before = {name: m.training for name, m in net.named_modules()}
    x = torch.rand(1, 1, 4, 4)
    grad_cam(net, x, net.act, 1)
    with pytest.raises(IndexError):
        grad_cam(net, x, net.act, 5)
    assert {name: m.training for name, m in net.named_modules()} == before
    for module in net.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks
    assert all(p.grad is None for p in net.parameters())


def _metadata(size: int) -> BundleMetadata:
    return BundleMetadata(
        model="cnn3",
        mode="scratch",
        task=Task(),
        input=InputSpec(size, 1, (0.0,), (1.0,), contract_version=1),
        decision_threshold=0.5,
        seed=0,
        weights_sha256=SHA,
        created="2026-12-01T00:00:00+00:00",
        versions={},
        training=TrainingRecord(SHA, "/data", 1, 1, 0, 0, 0),
        fit=FitSummary(None, None, 1, "32"),
        config={},
        validation_metrics={},
    )


def test_heat_map_has_the_image_size_and_peaks_on_a_planted_feature():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(1.0 / 9.0)
        conv.bias.fill_(-0.5)  # fires only where the image is bright
    net = Tiny(conv, [[-1.0], [1.0]])
    image = np.zeros((90, 50), np.float32)
    image[60:72, 30:42] = 1.0
    explainer = Explainer(net, _metadata(32), "act")
    heat = explainer.explain_prepared(explainer.preprocessor.from_pixels(image), "planted.png")
    assert heat.cam.shape == image.shape
    assert heat.cam.max() == pytest.approx(1.0)
    row, col = np.unravel_index(np.argmax(heat.cam), heat.cam.shape)
    assert 60 <= row < 72 and 30 <= col < 42
    assert heat.cam[:40].max() < 0.05  # nothing where the image is empty
    assert heat.probability > 0.5 and heat.prediction == "osteoporosis"
    normal = explainer.explain_prepared(
        explainer.preprocessor.from_pixels(image), "planted.png", "normal"
    )
    assert normal.cam.max() == 0.0  # the feature is evidence against 'normal' only
