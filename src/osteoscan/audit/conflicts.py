"""Label conflicts: the same image, the same T-score or the same patient saying two things.

Three kinds, each a :class:`Conflict` over record indices:

* ``duplicate_labels``: a duplicate group (exact or near) whose members carry different labels;
* ``t_score_label``: a record whose T-score puts it in another WHO class than its label;
* ``patient_classes``: a patient id with images in more than one class.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from osteoscan.audit.duplicates import DuplicateGroup
from osteoscan.data.labels import who_class
from osteoscan.data.records import ImageRecord

DUPLICATE_LABELS = "duplicate_labels"
T_SCORE_LABEL = "t_score_label"
PATIENT_CLASSES = "patient_classes"
CONFLICT_KINDS = (DUPLICATE_LABELS, T_SCORE_LABEL, PATIENT_CLASSES)


@dataclass(frozen=True)
class Conflict:
    kind: str
    members: tuple[int, ...]
    detail: str


def find_conflicts(
    records: Sequence[ImageRecord], groups: Sequence[DuplicateGroup]
) -> list[Conflict]:
    """Every conflict among ``records``, in the order of CONFLICT_KINDS."""
    return [
        *_duplicate_label_conflicts(records, groups),
        *_t_score_conflicts(records),
        *_patient_conflicts(records),
    ]


def _duplicate_label_conflicts(
    records: Sequence[ImageRecord], groups: Sequence[DuplicateGroup]
) -> list[Conflict]:
    conflicts = []
    for group in groups:
        labels = sorted({str(records[i].label) for i in group.members})
        if len(labels) > 1:
            detail = f"the same image ({group.kind} duplicate) is labelled {' and '.join(labels)}"
            conflicts.append(Conflict(DUPLICATE_LABELS, group.members, detail))
    return conflicts


def _t_score_conflicts(records: Sequence[ImageRecord]) -> list[Conflict]:
    conflicts = []
    for index, record in enumerate(records):
        if record.t_score is None or record.label is None:
            continue
        expected = who_class(record.t_score)
        if expected != record.label:
            detail = (
                f"T-score {record.t_score:g} is {expected} by the WHO definition, "
                f"but the label is {record.label}"
            )
            conflicts.append(Conflict(T_SCORE_LABEL, (index,), detail))
    return conflicts


def _patient_conflicts(records: Sequence[ImageRecord]) -> list[Conflict]:
    by_patient: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        if record.patient_id:
            by_patient[record.patient_id].append(index)
    conflicts = []
    for patient_id, members in sorted(by_patient.items()):
        labels = sorted({str(records[i].label) for i in members})
        if len(labels) > 1:
            detail = f"patient {patient_id} has images labelled {' and '.join(labels)}"
            conflicts.append(Conflict(PATIENT_CLASSES, tuple(members), detail))
    return conflicts
