"""The fusion benchmark (bench/template_fusion.py): its measures on distance matrices agree with the identification
benchmark's on templates, identities never straddle folds, and the weights chosen out of fold follow the evidence."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from bench import identification
from bench.template_fusion import (
    FOLDS,
    FUSIONS,
    Dataset,
    Fusion,
    closed_set,
    distances,
    held_out,
    identity_folds,
    open_set,
    unit,
    verification,
    within_whitening,
)


def clustered(people: int, photos: int, spread: float, seed: int, singles: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``people`` random centres with ``photos`` noisy photos each, then ``singles`` one-photo people."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (people + singles, 32))
    labels = [f"p{p:03d}" for p in range(people) for _ in range(photos)] + [f"s{s:03d}" for s in range(singles)]
    vectors = np.vstack([np.repeat(centres[:people], photos, axis=0), centres[people:]])
    return (vectors + rng.normal(0, spread, vectors.shape)).astype(np.float32), np.array(labels)


def dataset(first: np.ndarray, second: np.ndarray, labels: npt.NDArray[np.str_]) -> Dataset:
    names, counts = np.unique(labels, return_counts=True)
    photos = dict(zip(names.tolist(), counts.tolist(), strict=True))
    multi = np.array([photos[label] >= 2 for label in labels])
    return Dataset([f"{label}/{i}" for i, label in enumerate(labels)], labels, multi, first, second, 0, 0)


def test_the_measures_on_a_matrix_are_the_identification_benchs_on_templates() -> None:
    vectors, labels = clustered(people=60, photos=4, spread=0.9, seed=3, singles=40)
    data = dataset(vectors, vectors, labels)
    faces = identification.Faces(vectors, labels, data.multi)
    parts = identification.split(faces)
    matrix = distances(vectors)
    fmrs = (1e-2, 1e-3)
    expected = identification.verification(faces, fmrs)
    for mine, theirs in zip(verification(matrix, data, fmrs), expected, strict=True):
        assert mine.tar == pytest.approx(theirs.tar, abs=1e-9)
        assert (mine.same_pairs, mine.different_pairs) == (theirs.same_pairs, theirs.different_pairs)
    assert closed_set(matrix, parts) == identification.closed_set(faces, parts)
    assert 0.2 < closed_set(matrix, parts)[1] < 1.0  # neither trivial nor hopeless
    empty = np.zeros((0, vectors.shape[1]), np.float32)
    for mine_row, their_row in zip(open_set(matrix, parts), identification.open_set(faces, parts, empty), strict=True):
        assert mine_row.fnir == pytest.approx(their_row.fnir, abs=1e-6)
        assert mine_row.gallery == their_row.gallery


def test_each_identity_lies_in_one_fold_and_the_folds_are_even() -> None:
    _, labels = clustered(people=103, photos=3, spread=0.1, seed=1)
    folds = identity_folds(labels)
    for label in np.unique(labels):
        assert len(set(folds[labels == label].tolist())) == 1
    sizes = np.bincount(folds, minlength=FOLDS) // 3
    assert sizes.max() - sizes.min() <= 1


@pytest.mark.parametrize("fusion", FUSIONS, ids=lambda f: f.name)
def test_the_weight_chosen_out_of_fold_follows_the_informative_templates(fusion: Fusion) -> None:
    informative, labels = clustered(people=80, photos=3, spread=0.5, seed=5)
    noise = np.random.default_rng(9).normal(0, 1, informative.shape).astype(np.float32)
    for first, second, favoured in ((informative, noise, "first"), (noise, informative, "second")):
        data = dataset(first, second, labels)
        bases = {"dlib": distances(first), "facenet": distances(second), "dlib_unit": distances(unit(first))}
        if fusion.name == "concatenated":
            bases["facenet"] = distances(unit(second))
        fused, weights = held_out(fusion, bases, data, identity_folds(labels))
        assert len(weights) == FOLDS * (FOLDS + 1) // 2
        assert np.allclose(fused, fused.T) and np.all(np.isfinite(fused))
        assert all(w >= 0.8 for w in weights) if favoured == "first" else all(w <= 0.2 for w in weights)


def test_whitening_makes_the_within_person_scatter_the_identity() -> None:
    vectors, labels = clustered(people=50, photos=6, spread=0.3, seed=11)
    vectors[:, :4] *= 5.0  # a few directions where photos of one person differ a lot
    mean, matrix = within_whitening(vectors, labels, shrink=0.0)
    whitened = (vectors - mean) @ matrix
    residuals = np.vstack(
        [whitened[labels == label] - whitened[labels == label].mean(axis=0) for label in np.unique(labels)]
    )
    np.testing.assert_allclose(residuals.T @ residuals / len(vectors), np.eye(32), atol=1e-3)
