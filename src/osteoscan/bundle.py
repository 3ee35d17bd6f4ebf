"""A trained model bundle: ``model.safetensors`` + ``metadata.json`` in one directory.

Everything downstream (evaluate, predict, export, serve) reads preprocessing from the metadata:
image size, mean/std, class names, task and decision threshold are never re-typed elsewhere.
Bundles are assembled in a hidden sibling directory and renamed into place, so a crash never
leaves a half-written bundle. Weights are safetensors: loading them executes no code.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from osteoscan.data.labels import Task
from osteoscan.data.transforms import Normalise
from osteoscan.errors import BadBundleError
from osteoscan.models.build import ClassifierNet, build_for_inference

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
BUNDLE_FORMAT = 1
DISCLAIMER = (
    "osteoscan is a research screening tool. Its output is not a diagnosis; osteoporosis is "
    "diagnosed by bone densitometry (DXA) and clinical assessment."
)
INTENSITY_CONTRACT = (
    "single channel float in [0,1], bone bright (DICOM MONOCHROME1 inverted, rescale and VOI "
    "window applied), EXIF orientation applied, letterboxed (aspect kept, black padding) to "
    "image_size x image_size, antialiased bilinear resize"
)


@dataclass
class Bundle:
    """A loaded model: ``net`` maps letterboxed [0, 1] pixels (N, 1, S, S) to class logits."""

    net: ClassifierNet
    metadata: dict
    path: Path | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["class_names"])

    @property
    def image_size(self) -> int:
        return int(self.metadata["input"]["image_size"])

    @property
    def threshold(self) -> float | None:
        return self.metadata.get("decision_threshold")

    @property
    def task(self) -> Task:
        return Task(**self.metadata["task"])

    def normaliser(self) -> Normalise:
        return Normalise(self.metadata["input"]["mean"], self.metadata["input"]["std"])

    @torch.inference_mode()
    def predict_proba(self, pixels: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Class probabilities for prepared pixels (N, S, S) in [0, 1]."""
        model = nn.Sequential(self.normaliser(), self.net).eval()
        out = []
        for start in range(0, len(pixels), batch_size):
            batch = torch.from_numpy(np.asarray(pixels[start : start + batch_size], np.float32))
            out.append(model(batch.unsqueeze(1)).float().softmax(dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)))


def save_bundle(bundle: Bundle, out_dir: Path, staging_dir: Path) -> Path:
    """Write weights + metadata into ``staging_dir`` (which may hold logs), then rename it to
    ``out_dir``. An existing bundle at ``out_dir`` is replaced only after the new one is complete."""
    out_dir, staging_dir = Path(out_dir), Path(staging_dir)
    staging_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in bundle.net.state_dict().items()}
    save_file(state, str(staging_dir / WEIGHTS_FILE), metadata={"format": str(BUNDLE_FORMAT)})
    metadata_tmp = staging_dir / (METADATA_FILE + ".tmp")
    metadata_tmp.write_text(json.dumps(bundle.metadata, indent=2, default=str))
    os.replace(metadata_tmp, staging_dir / METADATA_FILE)
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(staging_dir, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    bundle.path = out_dir
    return out_dir


def staging_dir_for(out_dir: Path) -> Path:
    """Where a bundle is assembled before it is renamed to ``out_dir`` (same filesystem)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")


def load_bundle(path: Path) -> Bundle:
    path = Path(path)
    meta_file, weights_file = path / METADATA_FILE, path / WEIGHTS_FILE
    if not meta_file.is_file() or not weights_file.is_file():
        raise BadBundleError(
            f"{path}: not a model bundle (needs {METADATA_FILE} and {WEIGHTS_FILE}); "
            "give the directory written by 'osteoscan train --out'"
        )
    try:
        metadata = json.loads(meta_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadBundleError(f"{meta_file}: unreadable metadata ({exc})") from exc
    if metadata.get("bundle_format") != BUNDLE_FORMAT:
        raise BadBundleError(
            f"{path}: bundle format {metadata.get('bundle_format')} is not {BUNDLE_FORMAT}; "
            "retrain with this osteoscan version"
        )
    net = build_for_inference(metadata["model"], metadata["mode"], len(metadata["class_names"]))
    try:
        net.load_state_dict(load_file(str(weights_file)), strict=True)
    except (RuntimeError, OSError) as exc:
        raise BadBundleError(
            f"{weights_file}: weights do not fit {metadata['model']} ({exc})"
        ) from exc
    return Bundle(net.eval(), metadata, path)
