"""Duplicate grouping: exact by pixels, near by verified alignment, and the splitting API."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from osteoscan.audit import DuplicateGroup, find_duplicate_groups
from osteoscan.audit.align import alignment_view, similarities, similarity
from osteoscan.audit.candidates import NEIGHBOURS, candidate_pairs
from osteoscan.audit.verify import NEAR_THRESHOLD


def test_find_duplicate_groups_on_planted_files(planted) -> None:
    names = sorted(planted.families) + planted.broken
    groups = find_duplicate_groups([planted.root / n for n in names], workers=1)
    assert all(isinstance(g, DuplicateGroup) and len(g.members) >= 2 for g in groups)
    as_names = [{names[i] for i in g.members} for g in groups]
    exact = [s for s, g in zip(as_names, groups, strict=True) if g.kind == "exact"]
    near = [s for s, g in zip(as_names, groups, strict=True) if g.kind == "near"]
    assert sorted(map(sorted, exact)) == sorted(map(sorted, planted.exact))
    assert sorted(map(sorted, near)) == sorted(sorted(pair) for pair in planted.near)
    assert all(g.similarity == 1.0 for g in groups if g.kind == "exact")


def test_near_groups_include_the_exact_copies_of_their_members(tmp_path, planted) -> None:
    """n03 has an exact copy (PNG -> TIFF) and an edited copy: one near group holds all three."""
    source = planted.root / "normal"
    names = ["n03.png", "n03_small.jpg", "n07.png"]
    paths = [source / n for n in names]
    Image.open(paths[0]).save(tmp_path / "n03.tiff")
    groups = find_duplicate_groups([*paths, tmp_path / "n03.tiff"], workers=1)
    assert [(g.kind, g.members) for g in groups] == [("exact", (0, 3)), ("near", (0, 1, 3))]
    ((a, b, score),) = groups[1].pairs
    assert {a, b} in ({0, 1}, {1, 3}) and score >= NEAR_THRESHOLD


def test_similarity_separates_an_edited_copy_from_another_knee(planted) -> None:
    def view(name):
        pixels = np.asarray(Image.open(planted.root / name).convert("L"), dtype=np.float32)
        return alignment_view(Image.fromarray(pixels).resize((80, 128)))

    original, copy = view("normal/n04.png"), view("normal/n04_crop.png")
    assert similarity(original, original) > 0.99
    assert similarity(original, copy) > NEAR_THRESHOLD
    # every pair of the 20 distinct knees, even though all phantoms share one drawn template
    knees = [view(name) for name in sorted(planted.families) if planted.families[name] == name]
    first, second = np.triu_indices(len(knees), 1)
    scores = similarities([knees[i] for i in first], [knees[j] for j in second])
    assert len(knees) == 20 and scores.max() < NEAR_THRESHOLD - 0.02


def test_an_image_compared_with_itself_scores_one() -> None:
    """Rounding in the aligned warp must not push edge pixels out of the overlap (it once scored
    some phantoms 0.96 against themselves)."""
    from osteoscan.data.synth import render_phantom

    for seed in range(6):
        pixels = render_phantom(0.5 - seed, np.random.default_rng(seed), 320).astype(np.float32)
        view = alignment_view(Image.fromarray(pixels).resize((80, 128)))
        assert similarity(view, view) > 0.9999, seed


def test_candidate_search_finds_a_noisy_copy_among_many_vectors() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(24, 144))  # images vary along a few directions, like real ones
    embeddings = rng.normal(size=(2000, 2, 24)) @ shared + 0.3 * rng.normal(size=(2000, 2, 144))
    embeddings[1999] = embeddings[17] + 0.05 * rng.normal(size=(2, 144))
    pairs = candidate_pairs(embeddings)
    assert [17, 1999] in pairs.tolist()
    assert len(pairs) <= 2000 * sum(NEIGHBOURS)  # a few per image, not all n^2 / 2
    assert (pairs[:, 0] < pairs[:, 1]).all()


def test_second_call_with_a_cache_decodes_and_verifies_nothing(
    planted, tmp_path, monkeypatch
) -> None:
    from osteoscan.audit import duplicates, fingerprint

    paths = [planted.root / n for n in sorted(planted.families)]
    first = find_duplicate_groups(paths, cache_dir=tmp_path, workers=1)

    def forbidden(*args, **kwargs):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(fingerprint, "compute_fingerprint", forbidden)
    monkeypatch.setattr(duplicates, "verify_pairs", forbidden)
    assert find_duplicate_groups(paths, cache_dir=tmp_path, workers=1) == first


def test_pair_cache_is_strict_json_and_skips_scores_that_are_not_numbers(tmp_path) -> None:
    from osteoscan.audit.pair_cache import load_scores, save_scores

    def refuse(constant: str):
        raise AssertionError(f"{constant} in the pair cache: not strict JSON")

    pairs = [("a" * 64, "b" * 64), ("a" * 64, "c" * 64)]
    save_scores(tmp_path, pairs, np.array([0.93, np.nan]))
    (table,) = (tmp_path / "pairs").rglob("*.json")
    assert json.loads(table.read_text(), parse_constant=refuse) == {"b" * 64: 0.93}
    np.testing.assert_array_equal(load_scores(tmp_path, pairs), [0.93, np.nan])
    assert not list(tmp_path.rglob("*.tmp"))
