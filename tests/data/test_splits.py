"""Leakage groups and grouped, stratified splits: a patient or duplicate never straddles folds."""

from __future__ import annotations

import numpy as np
import pytest

from osteoscan.data.labels import NORMAL, OSTEOPOROSIS
from osteoscan.data.splits import (
    grouped_kfold,
    join_groups,
    plan_leakage_groups,
    train_val_split,
)
from osteoscan.errors import BadManifestError

N, P = NORMAL, OSTEOPOROSIS
SEEDS = range(6)


def random_cohort(seed: int, n_classes: int, n_groups: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Patients with 1-4 images each; a patient's images mostly share a class."""
    rng = np.random.default_rng(seed)
    group_class = rng.permutation(np.arange(n_groups) % n_classes)
    targets, groups = [], []
    for group, cls in enumerate(group_class):
        for _ in range(rng.integers(1, 5)):
            mixed = rng.random() < 0.1
            targets.append(int(rng.integers(n_classes)) if mixed else int(cls))
            groups.append(int(rng.integers(10_000)) * 100 + group)  # arbitrary group ids
    return np.array(targets), np.array(groups)


def test_join_groups_is_transitive_and_leaves_loners_alone() -> None:
    roots = join_groups(7, [(1, 2), (3, 4), (2, 5), (6,)])
    assert roots[1] == roots[2] == roots[5]
    assert roots[3] == roots[4]
    assert len({roots[0], roots[1], roots[3], roots[6]}) == 4
    assert join_groups(3, []) == [0, 1, 2]


def test_leakage_groups_join_patients_and_duplicates_transitively() -> None:
    labels = [N, N, N, N, P, P, N, P, N, P]
    patients = ["A", "A", None, None, "B", "B", None, "", None, None]
    duplicates = [[1, 2], [2, 3], [6, 9]]  # [6, 9] carries two labels
    plan = plan_leakage_groups(labels, patients, duplicates)

    assert plan.kept == [0, 1, 2, 3, 4, 5, 7, 8]
    assert plan.dropped_conflicting == [6, 9]
    assert plan.n_conflicting_groups == 1
    assert plan.n_duplicate_groups == 3
    group_of = dict(zip(plan.kept, plan.group_ids, strict=True))
    assert len({group_of[i] for i in (0, 1, 2, 3)}) == 1  # patient A -> dup -> dup
    assert group_of[4] == group_of[5]  # patient B
    independent = [group_of[0], group_of[4], group_of[7], group_of[8]]
    assert len(set(independent)) == 4  # an empty or missing patient id joins nothing


def test_conflicting_duplicates_are_kept_on_request() -> None:
    labels = [N, P, N, P]
    plan = plan_leakage_groups(labels, [None] * 4, [[0, 1], [2, 3]], keep_conflicts=True)
    assert plan.kept == [0, 1, 2, 3]
    assert plan.dropped_conflicting == []
    assert plan.n_conflicting_groups == 2
    assert plan.group_ids[0] == plan.group_ids[1] != plan.group_ids[2] == plan.group_ids[3]


def test_consistent_duplicates_are_never_dropped() -> None:
    plan = plan_leakage_groups([P, P, N], [None, None, None], [[0, 1]])
    assert plan.kept == [0, 1, 2] and plan.dropped_conflicting == []
    assert plan.n_conflicting_groups == 0 and plan.n_duplicate_groups == 1


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_kfold_keeps_groups_whole_and_classes_in_every_fold(seed, n_classes) -> None:
    targets, groups = random_cohort(seed, n_classes)
    folds = grouped_kfold(targets, groups, k=5, seed=seed)

    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(targets)))  # every image tested exactly once
    fold_of_group: dict[int, int] = {}
    for fold, (train, test) in enumerate(folds):
        assert set(train).isdisjoint(test)
        assert len(train) + len(test) == len(targets)
        assert set(targets[test]) == set(range(n_classes))
        assert set(groups[train]).isdisjoint(groups[test])
        for group in groups[test]:
            assert fold_of_group.setdefault(int(group), fold) == fold


@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_kfold_is_reproducible_and_seed_dependent(seed: int) -> None:
    targets, groups = random_cohort(seed, 2)
    first = grouped_kfold(targets, groups, k=5, seed=seed)
    again = grouped_kfold(targets, groups, k=5, seed=seed)
    other = grouped_kfold(targets, groups, k=5, seed=seed + 100)
    for (train_a, test_a), (train_b, test_b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(train_a, train_b)
        np.testing.assert_array_equal(test_a, test_b)
    assert [set(test) for _, test in first] != [set(test) for _, test in other]


def test_leakage_plan_feeds_grouped_kfold_without_patient_leakage() -> None:
    labels = [N if i % 2 else P for i in range(60)]
    patients = [f"P{i // 3}" if i % 5 else None for i in range(60)]
    duplicates = [[i, i + 10] for i in range(0, 20, 2)]  # same label: i and i + 10 share parity
    plan = plan_leakage_groups(labels, patients, duplicates)
    targets = [int(labels[i] == P) for i in plan.kept]
    for train, test in grouped_kfold(targets, plan.group_ids, k=4, seed=3):
        train_records = {plan.kept[i] for i in train}
        test_records = {plan.kept[i] for i in test}
        train_patients = {patients[i] for i in train_records} - {None}
        assert train_patients.isdisjoint({patients[i] for i in test_records})
        for a, b in duplicates:
            assert {a, b} <= train_records or {a, b} <= test_records


def test_fewer_groups_than_folds_is_a_clear_error() -> None:
    targets = [0, 0, 0, 1, 1, 1, 0, 1]
    groups = [1, 1, 1, 2, 2, 2, 3, 3]
    with pytest.raises(
        BadManifestError, match=r"only 3 independent image groups .* 5 stratified folds"
    ):
        grouped_kfold(targets, groups, k=5, seed=0)


def test_too_few_images_per_class_is_a_clear_error() -> None:
    with pytest.raises(BadManifestError, match="5 stratified folds"):
        grouped_kfold([0, 0, 0, 1, 1, 1], [0, 1, 2, 3, 4, 5], k=5, seed=0)


@pytest.mark.parametrize(
    ("targets", "groups", "shortage"),
    [
        ([0, 0, 0, 1, 1, 1, 0, 1], [1, 1, 1, 2, 2, 2, 3, 3], "only 3 independent image groups"),
        ([0, 0, 0, 1, 1, 1], [0, 1, 2, 3, 4, 5], "only 3 images in the largest class"),
        ([], [], "only 0 independent image groups"),
    ],
)
def test_train_val_split_errors_name_the_option_train_has(targets, groups, shortage) -> None:
    """`train` has no folds option: the message names --val-fraction, never folds."""
    with pytest.raises(BadManifestError) as caught:
        train_val_split(targets, groups, val_fraction=0.2, seed=0)
    message = str(caught.value)
    assert shortage in message and "validation fraction of 0.2" in message
    assert "--val-fraction" in message and "fold" not in message


def test_all_images_dropped_as_conflicts_names_keep_conflicts() -> None:
    with pytest.raises(BadManifestError, match="--keep-conflicts") as caught:
        plan_leakage_groups([N, P, N, P], [None] * 4, [[0, 1], [2, 3]])
    assert "every image (4)" in str(caught.value) and "2 group(s)" in str(caught.value)
    assert "0 independent" not in str(caught.value)


@pytest.mark.parametrize("seed", SEEDS)
def test_train_val_split_is_grouped_stratified_and_reproducible(seed: int) -> None:
    targets, groups = random_cohort(seed, 2)
    train, val = train_val_split(targets, groups, val_fraction=0.2, seed=seed)
    assert sorted(np.concatenate([train, val])) == list(range(len(targets)))
    assert set(groups[train]).isdisjoint(groups[val])
    assert set(targets[val]) == set(targets[train]) == {0, 1}
    assert 0.1 < len(val) / len(targets) < 0.3
    train_again, val_again = train_val_split(targets, groups, val_fraction=0.2, seed=seed)
    np.testing.assert_array_equal(val_again, val)
    np.testing.assert_array_equal(train_again, train)


def test_train_val_split_differs_across_seeds() -> None:
    targets, groups = random_cohort(0, 2)
    vals = {tuple(train_val_split(targets, groups, 0.2, seed)[1]) for seed in SEEDS}
    assert len(vals) > 1


@pytest.mark.filterwarnings("ignore:The least populated class")
def test_train_val_split_never_returns_a_validation_set_without_a_class() -> None:
    targets = np.array([0] * 40 + [1] * 2)
    groups = np.array(list(range(40)) + [99, 99])  # the rare class is one patient
    outcomes = []
    for seed in range(10):
        try:
            _, val = train_val_split(targets, groups, val_fraction=0.2, seed=seed)
        except BadManifestError as exc:
            assert "lacks a class" in str(exc)
            outcomes.append("refused")
        else:
            assert set(targets[val]) == {0, 1}
            outcomes.append("ok")
    assert "refused" in outcomes


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9, -0.1])
def test_train_val_split_rejects_impossible_fractions(fraction: float) -> None:
    targets, groups = random_cohort(0, 2)
    with pytest.raises(BadManifestError, match="validation fraction"):
        train_val_split(targets, groups, val_fraction=fraction, seed=0)
