"""Which configurations need ImageNet weights, and whether those files are on this machine.

The one place the study asks this, before any training, so a missing file stops the study in
seconds with the file's name and where to put it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from osteoscan.models import get_spec
from osteoscan.models.weights import expected_cache_path


@dataclass(frozen=True)
class WeightsStatus:
    model: str
    weights: str | None  # the registry's weights name; None when the mode needs none
    path: str | None  # where the file is expected
    present: bool

    @property
    def needed(self) -> bool:
        return self.weights is not None


def weights_status(model: str, mode: str, weights_file: str | Path | None = None) -> WeightsStatus:
    """Does ``model`` in ``mode`` need pretrained weights, where are they expected, are they there?"""
    spec = get_spec(model)
    if mode == "scratch" or not spec.weights:
        return WeightsStatus(model, None, None, True)
    path = Path(weights_file) if weights_file else expected_cache_path(spec.weights)[0]
    return WeightsStatus(model, spec.weights, str(path), path.is_file())


def missing_weights_message(missing: list[tuple[str, WeightsStatus]]) -> str:
    lines = [f"  {name}: {status.weights} expected at {status.path}" for name, status in missing]
    return (
        "ImageNet weights are missing for:\n"
        + "\n".join(lines)
        + "\nput each file there (set TORCH_HOME to use another cache folder, or give "
        "weights_file: in the study config), or run those configurations from random "
        "initialisation with --no-pretrained (labelled so in the report)"
    )
