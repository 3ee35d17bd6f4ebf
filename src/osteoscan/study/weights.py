"""Which configurations need ImageNet weights, and whether those files are on this machine.

The one place the study asks this, before any training, so a missing file stops the study in
seconds with the file's name and where to put it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from osteoscan.models import get_spec


@dataclass(frozen=True)
class WeightsStatus:
    model: str
    weights: str | None  # where the weights come from (the registry's words); None: none needed
    path: str | None  # where the file is, or is expected
    present: bool

    @property
    def needed(self) -> bool:
        return self.weights is not None


def weights_status(model: str, mode: str, weights_file: str | Path | None = None) -> WeightsStatus:
    """Does ``model`` in ``mode`` need pretrained weights, where are they expected, are they there?"""
    spec = get_spec(model)
    if mode == "scratch" or not spec.weights:
        return WeightsStatus(model, None, None, True)
    if weights_file:
        path = Path(weights_file)
        return WeightsStatus(model, f"file {path}", str(path), path.is_file())
    found = spec.weights.locate()
    where = str(found) if found else spec.weights.expected_at()
    return WeightsStatus(model, spec.weights.describe(), where, found is not None)


def missing_weights_message(missing: list[tuple[str, WeightsStatus]]) -> str:
    lines = [f"  {name}: {status.weights} expected at {status.path}" for name, status in missing]
    return (
        "ImageNet weights are missing for:\n"
        + "\n".join(lines)
        + "\nput each file there (set TORCH_HOME to use another cache folder, or give "
        "weights_file: in the study config), or run those configurations from random "
        "initialisation with --no-pretrained (labelled so in the report)"
    )
