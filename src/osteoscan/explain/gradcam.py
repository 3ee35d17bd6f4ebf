"""Grad-CAM (Selvaraju et al. 2017) through captum's ``LayerGradCam``.

The explained score is the margin ``z_c - logsumexp(z_j, j != c)`` of the class asked for (in
the binary task exactly ``z_c - z_other``): its sign is that of the evidence for ``c`` against
the rest, so the map explains the requested class whatever the prediction, and it does not
vanish when the softmax saturates. The network is put in eval mode for the pass and every
module's train/eval state is restored afterwards; captum removes its hooks itself, also on error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from captum.attr import LayerGradCam
from torch import nn
from torch.nn import functional as F

from osteoscan.data.labels import OSTEOPOROSIS
from osteoscan.errors import BadConfigError
from osteoscan.inference.bundle_io import load_torch_net
from osteoscan.inference.predict import decide
from osteoscan.inference.preprocess import PreparedImage, Preprocessor
from osteoscan.metadata import BundleMetadata
from osteoscan.roi.crop import Crop
from osteoscan.roi.summary import most_abnormal
from osteoscan.stats import softmax

log = logging.getLogger(__name__)


def target_layer_path(model: str, override: str | None = None) -> str:
    """Dotted path, inside a bundle's ClassifierNet, of the layer Grad-CAM reads.

    ``override`` (a path inside the architecture) wins over the registry entry's
    ``gradcam_layer``.
    """
    from osteoscan.models import get_spec

    return f"backbone.{override or get_spec(model).gradcam_layer}"


def _margin(logits: torch.Tensor, class_index: int) -> torch.Tensor:
    others = torch.cat([logits[:, :class_index], logits[:, class_index + 1 :]], dim=1)
    return logits[:, class_index] - torch.logsumexp(others, dim=1)


def grad_cam(net: nn.Module, batch: torch.Tensor, layer: nn.Module, class_index: int) -> np.ndarray:
    """Grad-CAM maps (N, S, S) of ``class_index`` for normalised ``batch`` (N, C, S, S): ReLU of the
    gradient-weighted sum of ``layer``'s channels, bilinearly upsampled to the input size."""
    states = {module: module.training for module in net.modules()}
    net.eval()
    try:
        cam = LayerGradCam(lambda x: _margin(net(x), class_index), layer)
        with torch.enable_grad():
            inputs = batch.detach().clone().requires_grad_(True)
            maps = cam.attribute(inputs, relu_attributions=True)
        maps = F.interpolate(maps.detach().float(), size=batch.shape[-2:], mode="bilinear")
    finally:
        for module, training in states.items():
            module.training = training
    return maps[:, 0].numpy()


@dataclass(frozen=True)
class HeatMap:
    """A Grad-CAM map at the original image's resolution, scaled to [0, 1] (1 = strongest).

    For a knee-ROI bundle the map of each knee crop is laid back onto the radiograph at the
    crop's place (0 outside every crop); ``crops`` and ``knee_probabilities`` say where each knee
    was and what the model gave it, and ``probability`` is the image-level (higher) one.
    """

    cam: np.ndarray
    image: np.ndarray
    class_name: str
    probability: float
    prediction: str
    threshold: float | None
    model: str
    source: str
    crops: tuple[Crop, ...] = ()
    knee_probabilities: tuple[float, ...] = ()

    def save(self, out: Path | str) -> Path:
        """The overlay as PNG: image, heat-map, colour bar, probability in the caption."""
        from osteoscan.explain.overlay import render_overlay

        return render_overlay(self, Path(out))


class Explainer:
    """A bundle's torch network opened for Grad-CAM."""

    def __init__(self, net: nn.Module, metadata: BundleMetadata, layer_path: str) -> None:
        self.net, self.metadata = net, metadata
        self.preprocessor = Preprocessor(metadata.input, roi=metadata.roi)
        try:
            self.layer = net.get_submodule(layer_path)
        except AttributeError:
            raise BadConfigError(
                f"model {metadata.model!r} has no module {layer_path!r}; "
                "pass a dotted module path that exists (see print(net))"
            ) from None

    @classmethod
    def from_bundle(cls, bundle_dir: Path | str, target_layer: str | None = None) -> Explainer:
        net, meta = load_torch_net(bundle_dir)
        return cls(net, meta, target_layer_path(meta.model, target_layer))

    def explain(self, path: Path | str, class_name: str = OSTEOPOROSIS) -> HeatMap:
        return self.explain_prepared(self.preprocessor.load(path), str(path), class_name)

    def explain_prepared(
        self, image: PreparedImage, source: str, class_name: str = OSTEOPOROSIS
    ) -> HeatMap:
        """Grad-CAM of ``class_name`` for an already decoded image, at its original size (for a
        knee-ROI bundle, each crop's map pasted back; the caption's probability is the knee with
        the higher probability of osteoporosis, as predict reports it)."""
        names = self.metadata.class_names
        if class_name not in names:
            raise BadConfigError(f"unknown class {class_name!r}; use one of {', '.join(names)}")
        batch = torch.from_numpy(self.preprocessor.normalise(image.inputs))
        with torch.inference_mode():
            logits = self.net(batch).float().numpy()
        probs = softmax(logits, self.metadata.temperature)
        chosen = most_abnormal(probs) if image.crops else 0
        class_index = names.index(class_name)
        squares = grad_cam(self.net, batch, self.layer, class_index)
        if image.crops:
            shape = image.original.shape
            laid = [c.paste_back(m, shape) for c, m in zip(image.crops, squares, strict=True)]
            cam = np.nan_to_num(np.fmax.reduce(np.stack(laid), axis=0), nan=0.0)
        else:
            cam = image.geometry.to_original(squares[0])
        cam = np.clip(cam, 0.0, None)
        peak = float(cam.max())
        cam = cam / peak if peak > 0 else cam
        return HeatMap(
            cam.astype(np.float32),
            image.original,
            class_name,
            float(probs[chosen, class_index]),
            decide(self.metadata, probs[chosen]),
            self.metadata.operating_threshold,
            self.metadata.model,
            source,
            image.crops,
            tuple(float(p[class_index]) for p in probs) if image.crops else (),
        )


def explain(
    bundle_dir: Path | str,
    image: Path | str,
    out: Path | str | None = None,
    class_name: str = OSTEOPOROSIS,
    target_layer: str | None = None,
) -> HeatMap:
    """Grad-CAM of ``class_name`` for ``image``; writes the overlay PNG to ``out`` when given."""
    heat = Explainer.from_bundle(bundle_dir, target_layer).explain(image, class_name)
    if out is not None:
        heat.save(out)
    return heat
