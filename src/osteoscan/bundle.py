"""A trained model bundle: ``model.safetensors`` + ``metadata.json`` in one directory.

Everything downstream (evaluate, predict, export, serve) reads preprocessing from the metadata
(:class:`~osteoscan.metadata.BundleMetadata`): image size, mean/std, class names, task and
decision threshold are never re-typed elsewhere. Bundles are assembled in a hidden sibling
directory and renamed into place, so a crash never leaves a half-written bundle, and a bundle
replaces only an earlier bundle, never a user's folder or file. Weights are safetensors (loading
them executes no code); their sha256 is recorded in the metadata and the model, input size and
class names in the weights' own header, so a damaged or edited bundle is refused on load.
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
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from osteoscan.data.labels import Task
from osteoscan.data.transforms import Normalise
from osteoscan.errors import BadBundleError, BadConfigError, NotWritableError
from osteoscan.files import atomic_path, atomic_write_json, check_writable_dir, sha256_file
from osteoscan.metadata import BUNDLE_FORMAT, METADATA_FILE, WEIGHTS_FILE, BundleMetadata
from osteoscan.models.build import ClassifierNet, build_for_inference
from osteoscan.stats import softmax

log = logging.getLogger(__name__)

RESTORE = "restore the bundle from a backup or re-train it"


@dataclass
class Bundle:
    """A loaded model: ``net`` maps letterboxed [0, 1] pixels (N, 1, S, S) to class logits."""

    net: ClassifierNet
    metadata: BundleMetadata
    path: Path | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.metadata.class_names

    @property
    def image_size(self) -> int:
        return self.metadata.input.image_size

    @property
    def threshold(self) -> float | None:
        """The operating threshold: the calibrated one once ``calibrate`` ran, else training's."""
        return self.metadata.operating_threshold

    @property
    def task(self) -> Task:
        return self.metadata.task

    def normaliser(self) -> Normalise:
        return Normalise(self.metadata.input.mean, self.metadata.input.std)

    def predict_proba(self, pixels: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Class probabilities for prepared pixels (N, S, S) in [0, 1], temperature-scaled once the
        bundle is calibrated (the same probabilities ``predict`` reports)."""
        return predict_proba(
            self.net, self.normaliser(), pixels, batch_size, self.metadata.temperature
        )


@torch.inference_mode()
def predict_proba(
    net: nn.Module,
    normaliser: Normalise,
    pixels: np.ndarray,
    batch_size: int = 32,
    temperature: float = 1.0,
) -> np.ndarray:
    """Softmax probabilities of ``net``'s logits / ``temperature`` for prepared pixels (N, S, S)."""
    model = nn.Sequential(normaliser, net).eval()
    out = []
    for start in range(0, len(pixels), batch_size):
        batch = torch.from_numpy(np.asarray(pixels[start : start + batch_size], np.float32))
        out.append(softmax(model(batch.unsqueeze(1)).float().numpy(), temperature))
    if not out:
        return np.zeros((0, net.head.out_features), dtype=np.float32)
    return np.concatenate(out)


def weights_header(model: str, mode: str, image_size: int, class_names: tuple[str, ...]) -> dict:
    """What ``model.safetensors`` records about itself, compared with the metadata on load."""
    return {
        "bundle_format": str(BUNDLE_FORMAT),
        "model": model,
        "mode": mode,
        "image_size": str(image_size),
        "class_names": json.dumps(list(class_names)),
    }


def save_weights(net: ClassifierNet, target: Path, header: dict[str, str]) -> str:
    """Write ``net``'s weights as safetensors (atomically) with ``header``; returns their sha256."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(target) as tmp:
        save_file(state, str(tmp), metadata=header)
    return sha256_file(target)


def publish_bundle(
    net: ClassifierNet, metadata: BundleMetadata, staging_dir: Path, out_dir: Path
) -> Bundle:
    """Add ``metadata.json`` to ``staging_dir`` (which holds the weights, maybe logs) and rename
    it to ``out_dir``. An earlier bundle at ``out_dir`` is replaced only once the new one is
    complete; the caller has checked with :func:`check_out_dir` that it may be replaced."""
    staging_dir, out_dir = Path(staging_dir), Path(out_dir)
    document = metadata.to_dict()
    BundleMetadata.from_dict(document, staging_dir / METADATA_FILE)  # never write what won't load
    atomic_write_json(staging_dir / METADATA_FILE, document)
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(staging_dir, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return Bundle(net, metadata, out_dir)


def staging_dir_for(out_dir: Path) -> Path:
    """Where a bundle is assembled before it is renamed to ``out_dir`` (same filesystem)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")


def remove_stale_staging(out_dir: Path) -> list[Path]:
    """Delete the hidden ``.NAME.partial-PID`` / ``.NAME.old-PID`` folders that runs for
    ``out_dir`` left behind when they were killed: those whose process is gone (or is this one)."""
    out_dir = Path(out_dir)
    removed = []
    if not out_dir.parent.is_dir():
        return removed
    for kind in ("partial", "old"):
        for leftover in out_dir.parent.glob(f".{out_dir.name}.{kind}-*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if pid.isdigit() and leftover.is_dir() and not _other_live_process(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)
                removed.append(leftover)
    if removed:
        log.info(
            "removed %d leftover folder(s) of interrupted runs beside %s", len(removed), out_dir
        )
    return removed


def _other_live_process(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def is_bundle(path: Path) -> bool:
    """Whether ``path`` is a folder osteoscan wrote as a bundle (any format), by its metadata."""
    meta_file = Path(path) / METADATA_FILE
    try:
        data = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("bundle_format"), int) and "model" in data


def check_out_dir(
    out_dir: Path, inputs: list[Path] | tuple[Path, ...] = (), overwrite: bool = False
) -> Path:
    """Refuse an ``--out`` that would destroy anything but an earlier bundle, before any work.

    ``out_dir`` may be new, an empty folder, or (with ``overwrite``) an earlier osteoscan bundle.
    It may neither equal, contain nor lie inside any of ``inputs`` (the data folder or manifest,
    the image files). Its parent must be writable. Raises :class:`NotWritableError`.
    """
    out_dir = Path(out_dir)
    target = out_dir.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if target == source or target in source.parents or source in target.parents:
            raise NotWritableError(
                f"--out {out_dir}: overlaps the training data {source} (a bundle would replace "
                "it); write the bundle to a folder outside the data"
            )
    if target.is_dir() and is_bundle(target):
        if not overwrite:
            raise NotWritableError(
                f"--out {out_dir}: already holds a bundle; pass --overwrite to replace it, "
                "or name a new folder"
            )
    elif target.is_dir():
        if any(target.iterdir()):
            raise NotWritableError(
                f"--out {out_dir}: is a folder with files that is not an osteoscan bundle; "
                "nothing was changed: name a new or empty folder"
            )
    elif target.exists() or target.is_symlink():
        raise NotWritableError(
            f"--out {out_dir}: is an existing file, not a bundle folder; nothing was changed: "
            "name a new folder"
        )
    check_writable_dir(target.parent, "--out")
    return out_dir


def load_bundle(path: Path | str) -> Bundle:
    """Read and check a bundle: metadata against the schema, weights against their recorded
    sha256 and their header against the metadata. Raises :class:`BadBundleError` naming the file."""
    path = Path(path)
    meta_file, weights_file = path / METADATA_FILE, path / WEIGHTS_FILE
    if not meta_file.is_file() or not weights_file.is_file():
        raise BadBundleError(
            f"{path}: not a model bundle (needs {METADATA_FILE} and {WEIGHTS_FILE}); "
            "give the directory written by 'osteoscan train --out'"
        )
    try:
        data = json.loads(meta_file.read_text(), parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadBundleError(f"{meta_file}: unreadable metadata ({exc}); {RESTORE}") from None
    metadata = BundleMetadata.from_dict(data, meta_file)
    if sha256_file(weights_file) != metadata.weights_sha256:
        raise BadBundleError(
            f"{weights_file}: damaged (its sha256 differs from the one recorded in "
            f"{METADATA_FILE} when it was saved: truncated, replaced or corrupted); {RESTORE}"
        )
    _check_header(weights_file, metadata)
    try:
        net = build_for_inference(metadata.model, metadata.mode, len(metadata.class_names))
    except BadConfigError as exc:
        raise BadBundleError(f"{meta_file}: {exc}; {RESTORE}") from None
    try:
        net.load_state_dict(load_file(str(weights_file)), strict=True)
    except (RuntimeError, OSError, SafetensorError) as exc:
        raise BadBundleError(
            f"{weights_file}: weights do not fit {metadata.model} ({str(exc).splitlines()[0]}); "
            f"{RESTORE}"
        ) from None
    return Bundle(net.eval(), metadata, path)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _check_header(weights_file: Path, metadata: BundleMetadata) -> None:
    try:
        with safe_open(str(weights_file), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise BadBundleError(f"{weights_file}: not readable weights ({exc}); {RESTORE}") from None
    expected = weights_header(
        metadata.model, metadata.mode, metadata.input.image_size, metadata.class_names
    )
    for key, value in expected.items():
        if header.get(key) != value:
            raise BadBundleError(
                f"{weights_file.parent / METADATA_FILE}: says {key} {value!r} but the weights "
                f"were saved with {header.get(key)!r} (the metadata was edited); {RESTORE}"
            )
