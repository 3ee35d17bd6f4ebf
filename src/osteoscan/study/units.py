"""A unit is one configuration trained and tested on one fold of one repeat.

Each finished unit is one JSON file, ``DIR/units/<id>.json``, written atomically: its out-of-fold
predictions, decision threshold, learning curve, time, weights and the predictions of every
external set. A unit whose file exists with the same ``key`` (configuration, data and fold
identity) is finished and never recomputed; an interrupted run loses only the unit in progress.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from osteoscan.files import atomic_write_json, to_json

log = logging.getLogger(__name__)

UNITS_DIR = "units"
STUDY_FILE = "study.json"


@dataclass(frozen=True, order=True)
class Unit:
    configuration: str
    repeat: int
    fold: int

    @property
    def id(self) -> str:
        return f"{self.configuration}-r{self.repeat}-f{self.fold}"

    @classmethod
    def parse(cls, unit_id: str) -> Unit:
        """The inverse of :attr:`id` (``"a-roi-r1-f2"`` is configuration ``a-roi``, not ``a``)."""
        configuration, repeat, fold = unit_id.rsplit("-", 2)
        return cls(configuration, int(repeat.removeprefix("r")), int(fold.removeprefix("f")))


def unit_path(out: Path, unit: Unit) -> Path:
    return Path(out) / UNITS_DIR / f"{unit.id}.json"


def unit_key(identity: dict) -> str:
    """A short hash of what makes a unit's result valid (settings, data, fold membership)."""
    return hashlib.sha256(to_json(identity).encode()).hexdigest()[:16]


def save_unit(out: Path, unit: Unit, result: dict) -> Path:
    return atomic_write_json(unit_path(out, unit), result)


def load_unit(out: Path, unit: Unit, key: str | None = None) -> dict | None:
    """The saved result of ``unit``; None when absent, unreadable, or made for another ``key``."""
    path = unit_path(out, unit)
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable unit result (%s); it will be recomputed", path, exc)
        return None
    if key is not None and result.get("key") != key:
        log.warning("%s: made with other settings, data or folds; it will be recomputed", path)
        return None
    return result


def load_units(out: Path) -> dict[str, dict]:
    """Every readable unit result in ``out``, by unit id."""
    results = {}
    for path in sorted((Path(out) / UNITS_DIR).glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s: unreadable unit result (%s); left out", path, exc)
            continue
        results[result["unit"]] = result
    return results


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
