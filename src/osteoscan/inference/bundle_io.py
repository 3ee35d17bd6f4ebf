"""Reading a bundle for inference, torch-free, and adding calibration or exports to it.

:func:`read_metadata` is the one door for the ONNX path: it never imports torch, and it checks
nothing it cannot (weights are checked by :func:`load_torch_net`, ONNX files by the ONNX
backend). :func:`update_metadata` rewrites ``metadata.json`` atomically.

Bundles written before the typed schema (``bundle_format`` 1, today's ``bundle.py``) are read
through :func:`_legacy_document`, the one place that knows the old layout; it goes once every
bundle is written by :class:`~osteoscan.metadata.BundleMetadata`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from osteoscan.errors import BadBundleError, BadConfigError
from osteoscan.files import atomic_write_json, sha256_file
from osteoscan.metadata import (
    BUNDLE_FORMAT,
    METADATA_FILE,
    WEIGHTS_FILE,
    BundleMetadata,
    Calibration,
    OnnxExport,
    json_ready,
)

_LEGACY_FORMAT = 1


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
    data = _read_document(bundle_dir)
    if data.get("bundle_format") == _LEGACY_FORMAT:
        data = _legacy_document(data, bundle_dir)
    return BundleMetadata.from_dict(data, bundle_dir / METADATA_FILE)


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
    data = _read_document(bundle_dir)
    if data.get("bundle_format") == _LEGACY_FORMAT:
        typed = updated.to_dict()
        data.update({key: typed[key] for key in changes})
    else:
        data = updated.to_dict()
    atomic_write_json(bundle_dir / METADATA_FILE, json_ready(data))
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
    """The bundle's network (eval mode) and metadata; the weights' sha256 is checked first."""
    try:
        from osteoscan.bundle import load_bundle
    except ImportError as exc:
        raise BadConfigError(
            f"the torch backend needs PyTorch ({exc.name} is not installed): "
            "pip install 'osteoscan[train]', or use an ONNX export with --backend onnx"
        ) from None

    bundle_dir = Path(bundle_dir)
    meta = read_metadata(bundle_dir)
    check_file(bundle_dir, WEIGHTS_FILE, meta.weights_sha256)
    return load_bundle(bundle_dir).net.eval(), meta


def _legacy_document(data: dict[str, Any], bundle_dir: Path) -> dict[str, Any]:
    """A ``bundle_format`` 1 document rewritten in the current layout (read-only adapter).

    Format 1 recorded no weights sha256, so the present file's is taken: such bundles are
    protected against tampering only once re-written in the current format.
    """
    leakage = data.get("leakage", {})
    source = data.get("weights_source")
    weights = bundle_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise BadBundleError(f"{bundle_dir}: not a model bundle (no {WEIGHTS_FILE})")
    document = {
        key: data.get(key)
        for key in (
            "model",
            "mode",
            "task",
            "class_names",
            "positive_class",
            "input",
            "decision_threshold",
            "seed",
            "created",
            "versions",
            "fit",
            "config",
            "validation_metrics",
            "disclaimer",
        )
    }
    document.update(
        bundle_format=BUNDLE_FORMAT,
        weights_sha256=sha256_file(weights),
        training={
            "manifest_sha256": data.get("training_manifest_sha256"),
            "source": data.get("training_source"),
            "n_train": data.get("n_train"),
            "n_validation": data.get("n_validation"),
            "duplicate_groups": leakage.get("duplicate_groups"),
            "conflicting_groups": leakage.get("conflicting_groups"),
            "images_dropped_for_conflicts": leakage.get("images_dropped_for_conflicts"),
            "skipped_files": data.get("skipped_files", []),
            "validation_images": data.get("validation_images", []),
        },
        pretrained=None if source is None else {**source, "origin": ""},
        calibration=data.get("calibration"),
        exports=data.get("exports", []),
    )
    return document
