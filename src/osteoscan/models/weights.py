"""Find, verify and load ImageNet weights without ever unpickling arbitrary objects.

Where weights come from, in order:

1. ``--weights FILE`` (checked against ``--weights-sha256`` when given, and against the hash
   prefix in torchvision's file name when the file carries that name);
2. torchvision's cache, ``$TORCH_HOME/hub/checkpoints/<file>`` (default ``~/.cache/torch``);
3. a download from torchvision's URL into that cache, unless ``OSTEOSCAN_OFFLINE=1``.

If none works the error names the exact file torchvision expects and where to put it.
Falling back to random initialisation is never done silently: use ``--mode scratch`` for that.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.models as tvm

from osteoscan.errors import BadWeightsError

log = logging.getLogger(__name__)

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")


@dataclass(frozen=True)
class WeightsSource:
    """The file that was loaded and its sha256: recorded in the bundle for provenance."""

    path: str
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_cache_path(weights_name: str) -> tuple[Path, str]:
    """(path in torchvision's cache, download URL) for a weights enum name."""
    url = tvm.get_weight(weights_name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url), url


def resolve_weights(
    weights_name: str, file: Path | None = None, sha256: str | None = None
) -> tuple[dict[str, torch.Tensor], WeightsSource]:
    """Load the state dict for ``weights_name`` (e.g. ``ResNet50_Weights.IMAGENET1K_V1``)."""
    cache_path, url = expected_cache_path(weights_name)
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise BadWeightsError(f"{path}: weights file not found")
        if path.name == cache_path.name:
            _check_hash_prefix(path, cache_path.name)
    else:
        path = cache_path
        if not path.is_file():
            _download(url, path, weights_name)
    digest = sha256_of(path)
    if sha256 is not None and digest != sha256.lower():
        raise BadWeightsError(
            f"{path}: sha256 is {digest}, expected {sha256}; the file is corrupt or not the "
            "weights you meant"
        )
    return _load_state_dict(path), WeightsSource(str(path), digest)


def _check_hash_prefix(path: Path, canonical_name: str) -> None:
    match = _HASH_IN_NAME.search(canonical_name)
    if match and not sha256_of(path).startswith(match.group(1)):
        raise BadWeightsError(
            f"{path}: its sha256 does not start with {match.group(1)} as torchvision's file "
            f"name promises; the file is corrupt or partial, download it again"
        )


def _download(url: str, path: Path, weights_name: str) -> None:
    how = (
        f"download {url} on a machine with internet access and either copy it to {path} "
        f"(set TORCH_HOME to use another cache folder) or pass it with --weights FILE; "
        f"or train from random initialisation with --mode scratch"
    )
    if os.environ.get("OSTEOSCAN_OFFLINE") == "1":
        raise BadWeightsError(f"ImageNet weights {weights_name} are not in {path} (offline): {how}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=None, progress=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise BadWeightsError(
            f"ImageNet weights {weights_name} are not in {path} and could not be downloaded "
            f"({exc}): {how}"
        ) from exc
    _check_hash_prefix(path, path.name)


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for bad files
        raise BadWeightsError(
            f"{path}: not a loadable weights file ({type(exc).__name__}); it must be a state dict "
            "of tensors saved with torch.save(model.state_dict(), path). Files holding other "
            "Python objects are refused, since unpickling them could run arbitrary code"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadWeightsError(f"{path}: does not contain a state dict of tensors")
    return state
