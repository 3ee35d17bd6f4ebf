"""Reading a bundle for inference, torch-free, and adding calibration or exports to it.

:func:`read_metadata` is the one door for the ONNX path: it never imports torch, and it checks
nothing it cannot (weights are checked by :func:`load_torch_net`, ONNX files by the ONNX
backend). :func:`update_metadata` rewrites ``metadata.json`` atomically.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from osteoscan.errors import BadBundleError, BadConfigError
from osteoscan.files import atomic_write_json, sha256_file
from osteoscan.metadata import (
    METADATA_FILE,
    BundleMetadata,
    Calibration,
    OnnxExport,
)


def _read_document(bundle_dir: Path) -> dict[str, Any]:
    meta_file = bundle_dir / METADATA_FILE
    if not meta_file.is_file():
        raise BadBundleError(
            f"{bundle_dir}: not a model bundle (no {METADATA_FILE}); "
            "give the directory written by 'osteoscan train --out'"
        )
    try:
        data = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBundleError(
            f"{meta_file}: unreadable metadata ({exc}); restore the bundle"
        ) from exc
    if not isinstance(data, dict):
        raise BadBundleError(f"{meta_file}: metadata is not a JSON object; restore the bundle")
    return data


def read_metadata(bundle_dir: Path | str) -> BundleMetadata:
    """The bundle's validated metadata (no torch imported, weights not read)."""
    bundle_dir = Path(bundle_dir)
    return BundleMetadata.from_dict(_read_document(bundle_dir), bundle_dir / METADATA_FILE)


def update_metadata(
    bundle_dir: Path | str,
    calibration: Calibration | None = None,
    exports: tuple[OnnxExport, ...] | None = None,
) -> BundleMetadata:
    """Store ``calibration`` and/or ``exports`` (when given) in the bundle; returns the result."""
    bundle_dir = Path(bundle_dir)
    meta = read_metadata(bundle_dir)
    changes: dict[str, Any] = {}
    if calibration is not None:
        changes["calibration"] = calibration
    if exports is not None:
        changes["exports"] = exports
    updated = replace(meta, **changes)
    atomic_write_json(bundle_dir / METADATA_FILE, updated.to_dict())
    return updated


def check_file(bundle_dir: Path, name: str, sha256: str) -> Path:
    """``bundle_dir / name`` after checking that its sha256 is the recorded one."""
    path = bundle_dir / name
    if not path.is_file():
        raise BadBundleError(f"{path}: listed in {METADATA_FILE} but missing; re-run the export")
    if sha256_file(path) != sha256:
        raise BadBundleError(
            f"{path}: sha256 does not match {METADATA_FILE}; the file was changed or damaged: "
            "restore the bundle from a backup or re-run the export"
        )
    return path


def load_torch_net(bundle_dir: Path | str):
    """The bundle's network (eval mode) and metadata; ``load_bundle`` checks the weights' sha256."""
    try:
        from osteoscan.bundle import load_bundle
    except ImportError as exc:
        raise BadConfigError(
            f"the torch backend needs PyTorch ({exc.name} is not installed): "
            "pip install 'osteoscan[train]', or use an ONNX export with --backend onnx"
        ) from None

    bundle = load_bundle(Path(bundle_dir))
    return bundle.net.eval(), bundle.metadata
