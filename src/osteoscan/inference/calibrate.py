"""``calibrate``: fit temperature scaling and the operating threshold on held-out labelled
images, and store both in the bundle with the data they were fitted on.

The images go through the same preprocessing and backend as ``predict``. Use data the model
was not trained on (not its training or validation split): a threshold chosen on training
images promises a sensitivity the model will not reach.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from osteoscan.data.records import load_dataset
from osteoscan.errors import BadManifestError, OsteoscanError
from osteoscan.evaluation.calibration import (
    DEFAULT_TARGET_SENSITIVITY,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    operating_point,
)
from osteoscan.inference.backends import DEFAULT_BACKEND
from osteoscan.inference.bundle_io import update_metadata
from osteoscan.inference.predict import DEFAULT_BATCH_SIZE, open_predictor
from osteoscan.metadata import Calibration
from osteoscan.roi.summary import image_rows
from osteoscan.stats import DEFAULT_BOOTSTRAP, softmax

log = logging.getLogger(__name__)


def calibrate(
    bundle_dir: Path | str,
    data: Path | str,
    target_sensitivity: float | None = DEFAULT_TARGET_SENSITIVITY,
    backend: str = DEFAULT_BACKEND,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> Calibration:
    """Fit and store the bundle's temperature and (binary task) the threshold reaching
    ``target_sensitivity`` on ``data``; ``target_sensitivity=None`` keeps the trained threshold."""
    bundle_dir = Path(bundle_dir)
    predictor = open_predictor(bundle_dir, backend)
    meta = predictor.metadata
    dataset = load_dataset(Path(data))
    records, targets = dataset.for_task(meta.task)
    logits, kept = [], []
    for start in range(0, len(records), DEFAULT_BATCH_SIZE):
        inputs, owners = [], []
        for index in range(start, min(start + DEFAULT_BATCH_SIZE, len(records))):
            try:
                own = predictor.preprocessor.load(records[index].path).inputs
            except OsteoscanError as exc:
                log.warning("skipped for calibration: %s", exc)
                continue
            inputs += own
            owners += [index] * len(own)
        if inputs:
            batch = predictor.backend.logits(predictor.preprocessor.normalise(inputs))
            # a knee-ROI bundle: each radiograph by its most abnormal knee, as predict reports it
            rows = image_rows(softmax(batch), owners)
            logits.append(batch[rows])
            kept += [owners[row] for row in rows]
    if not kept:
        raise BadManifestError(f"{data}: no readable images to calibrate on")
    logits_all = np.concatenate(logits)
    y = np.asarray(targets, dtype=np.int64)[kept]
    before = softmax(logits_all)
    temperature = fit_temperature(logits_all, y)
    after = softmax(logits_all, temperature)

    point, rule = None, "trained"
    if meta.task.name == "binary" and target_sensitivity is not None:
        point = operating_point(y, after[:, 1], target_sensitivity, n_boot=n_boot, seed=seed)
        rule = "target_sensitivity"
    calibration = Calibration(
        temperature=temperature,
        threshold=None if point is None else point.threshold,
        threshold_rule=rule,
        target_sensitivity=None if point is None else target_sensitivity,
        sensitivity=None if point is None else point.sensitivity,
        sensitivity_ci=None if point is None else point.sensitivity_ci,
        specificity=None if point is None else point.specificity,
        specificity_ci=None if point is None else point.specificity_ci,
        threshold_ci=None if point is None else point.threshold_ci,
        data_source=str(Path(data).resolve()),
        data_manifest_sha256=dataset.manifest_hash(),
        n_images=len(kept),
        ece_before=expected_calibration_error(y, before),
        ece_after=expected_calibration_error(y, after),
        brier_before=brier_score(y, before),
        brier_after=brier_score(y, after),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    update_metadata(bundle_dir, calibration=calibration)
    log.info(
        "temperature %.3f: ECE %.3f -> %.3f on %d images",
        temperature,
        calibration.ece_before,
        calibration.ece_after,
        len(kept),
    )
    return calibration
