"""k-reciprocal re-ranked average linkage: the Jaccard distance against a dense reference, the bonus that
never pushes apart, and people with many photos, on points whose neighbourhoods can be reasoned about."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from bench.face_model import FaceModel

from facesearch.people.algorithms import (
    Edges,
    average_linkage,
    neighbour_table,
    reciprocal_jaccard,
    reranked_average_linkage,
)

Matrix = npt.NDArray[np.float64]


def pairwise(points: npt.NDArray[np.float32]) -> Matrix:
    values = points.astype(np.float64)
    distances: Matrix = np.linalg.norm(values[:, None, :] - values[None, :, :], axis=2)
    return distances


def knn_edges(points: npt.NDArray[np.float32], k: int, radius: float = np.inf) -> Edges:
    """Each point's ``k`` nearest others within ``radius``, as the product's graph holds them."""
    distances = pairwise(points)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    sources = np.repeat(np.arange(len(points)), k)
    targets = nearest.ravel()
    gaps = distances[sources, targets]
    keep = gaps <= radius
    return sources[keep].astype(np.int64), targets[keep].astype(np.int64), gaps[keep].astype(np.float32)


def dense_reciprocal_jaccard(points: npt.NDArray[np.float32], k1: int, k2: int, bandwidth: float) -> Matrix:
    """Zhong et al. (2017), written out on the full distance matrix with sets, as the paper states it."""
    distances = pairwise(points)
    rank = np.argsort(distances, axis=1, kind="stable")  # each point first in its own row

    def reciprocal(i: int, k: int) -> set[int]:
        return {int(j) for j in rank[i, : k + 1] if i in rank[j, : k + 1]}

    count = len(points)
    weights = np.zeros((count, count))
    for i in range(count):
        own = reciprocal(i, k1)
        expanded = set(own)
        for j in own:
            smaller = reciprocal(j, round(k1 / 2))
            if len(smaller & own) > 2 / 3 * len(smaller):
                expanded |= smaller
        members = sorted(expanded)
        row = np.exp(-(distances[i, members] ** 2) / bandwidth)
        weights[i, members] = row / row.sum()
    weights = np.stack([weights[rank[i, :k2]].mean(axis=0) for i in range(count)])
    smaller_sum = np.minimum(weights[:, None, :], weights[None, :, :]).sum(axis=2)
    larger_sum = np.maximum(weights[:, None, :], weights[None, :, :]).sum(axis=2)
    jaccard: Matrix = 1.0 - smaller_sum / larger_sum
    return jaccard


def blobs(sizes: list[int], spread: float, seed: int = 0, dimension: int = 8) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 0.5, size=(len(sizes), dimension))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return (centres[labels] + rng.normal(0.0, spread, size=(len(labels), dimension))).astype(np.float32)


def test_neighbour_table_is_nearest_first_and_pads_missing_neighbours_with_the_sentinel() -> None:
    edges: Edges = (
        np.array([0, 0, 0, 1], np.int64),
        np.array([3, 1, 2, 0], np.int64),
        np.array([0.5, 0.1, 0.3, 0.1], np.float32),
    )
    table = neighbour_table(4, edges, 2)
    assert table.tolist() == [[1, 2], [0, 4], [4, 4], [4, 4], [4, 4]]


@pytest.mark.parametrize(("k1", "k2"), [(8, 2), (4, 1), (6, 3)])
def test_reciprocal_jaccard_matches_the_dense_definition(k1: int, k2: int) -> None:
    points = blobs([12, 9, 7, 6, 3, 2, 1], spread=0.15)
    edges = knn_edges(points, k=10)
    expected = dense_reciprocal_jaccard(points, k1, k2, bandwidth=0.25)
    found = reciprocal_jaccard(points, edges, reciprocal=k1, expand=k2, bandwidth=0.25, chunk=37)
    assert found.shape == edges[0].shape
    np.testing.assert_allclose(found, expected[edges[0], edges[1]], atol=1e-6)
    assert float(found.min()) < 0.5 and float(found.max()) == pytest.approx(1.0) and len(set(found)) > 10


def test_identical_neighbourhoods_are_at_jaccard_zero_and_disjoint_ones_at_one() -> None:
    # Two photos taken five times each, far apart: each face's 4 nearest are exactly its copies, all
    # reciprocal and equally weighted, so a group's faces have one neighbourhood, shared with no other.
    points = np.repeat(np.eye(128, dtype=np.float32)[:2] * 0.8, 5, axis=0)
    everyone = np.array([(i, j) for i in range(10) for j in range(10) if i != j])
    gaps = pairwise(points)[everyone[:, 0], everyone[:, 1]].astype(np.float32)
    jaccard = reciprocal_jaccard(points, (everyone[:, 0], everyone[:, 1], gaps), reciprocal=4)
    same_group = (everyone[:, 0] < 5) == (everyone[:, 1] < 5)
    np.testing.assert_allclose(jaccard[same_group], 0.0, atol=1e-6)
    np.testing.assert_allclose(jaccard[~same_group], 1.0)


def test_tight_groups_share_their_neighbourhoods_and_strangers_do_not() -> None:
    points = blobs([6, 6, 6], spread=0.05, seed=3)
    edges = knn_edges(points, k=10)
    jaccard = reciprocal_jaccard(points, edges, reciprocal=5)
    same_group = edges[0] // 6 == edges[1] // 6
    assert same_group.any() and (~same_group).any()
    assert float(jaccard[same_group].max()) < float(jaccard[~same_group].min())


def test_reciprocal_jaccard_of_no_edges_is_empty() -> None:
    empty: Edges = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    assert reciprocal_jaccard(np.zeros((3, 128), np.float32), empty).shape == (0,)


def face_like(big: int = 0, seed: int = 0) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Synthetic faces shaped like the dev set's (bench/face_model.py): 300 faces of 60 people, and one
    more person with ``big`` photos, who varies as the average person does."""
    model = FaceModel.load()
    vectors, labels = model.faces(300, seed=seed, per_person=5)
    rng = np.random.default_rng(seed + 100)
    centre = model.mean + rng.standard_normal(128) @ model.between.T
    photos = centre + rng.standard_normal((big, 128)) @ model.within.T
    return np.vstack([vectors, photos]).astype(np.float32), np.r_[labels, np.full(big, labels.max() + 1)]


def dense_average_linkage(vectors: npt.NDArray[np.float32], edges: Edges, threshold: float) -> list[int]:
    """Average linkage with the mean over the full pair matrix: the reference for the matrix product."""
    distances = pairwise(vectors)
    group = list(range(len(vectors)))
    for source, target, gap in sorted(zip(*edges, strict=True), key=lambda edge: float(edge[2])):
        if gap > threshold:
            break
        a, b = group[int(source)], group[int(target)]
        left = [i for i, g in enumerate(group) if g == a]
        right = [i for i, g in enumerate(group) if g == b]
        if a != b and float(distances[np.ix_(left, right)].mean()) <= threshold:
            keep, gone = (a, b) if len(left) >= len(right) else (b, a)
            group = [keep if g == gone else g for g in group]
    return group


def partition(labels: npt.ArrayLike) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for item, label in enumerate(np.asarray(labels).tolist()):
        groups.setdefault(label, set()).add(item)
    return {frozenset(g) for g in groups.values()}


def test_average_linkage_by_matrix_product_matches_the_full_pair_matrix() -> None:
    vectors, _ = face_like()
    edges = knn_edges(vectors, k=10, radius=0.7)
    found = average_linkage(vectors, edges, 0.49)
    assert partition(found) == partition(dense_average_linkage(vectors, edges, 0.49))
    assert 30 < len(partition(found)) < 250  # merges happened, and not everything merged


def test_without_a_bonus_reranked_linkage_is_plain_average_linkage() -> None:
    vectors, _ = face_like()
    edges = knn_edges(vectors, k=10, radius=0.7)
    plain = partition(average_linkage(vectors, edges, 0.48))
    nothing_shared = np.ones(len(edges[0]), np.float32)
    assert partition(reranked_average_linkage(vectors, edges, 0.48, nothing_shared, 0.4)) == plain
    # A Jaccard distance no smaller than the pair's own distance gives no bonus either.
    no_closer = np.maximum(edges[2], 0.9).astype(np.float32)
    assert partition(reranked_average_linkage(vectors, edges, 0.48, no_closer, 0.4)) == plain


def test_a_shared_neighbourhood_pulls_a_pair_together_and_a_partly_shared_one_only_so_far() -> None:
    points = np.zeros((2, 128), np.float32)
    points[1, 0] = 0.55
    edges: Edges = (np.array([0, 1], np.int64), np.array([1, 0], np.int64), np.array([0.55, 0.55], np.float32))
    shared = np.zeros(2, np.float32)
    assert len(set(average_linkage(points, edges, 0.48).tolist())) == 2
    assert len(set(reranked_average_linkage(points, edges, 0.48, shared, 0.4).tolist())) == 1
    half = np.full(2, 0.5, np.float32)  # 0.4 * 0.55 + 0.6 * 0.5 = 0.52
    assert len(set(reranked_average_linkage(points, edges, 0.48, half, 0.4).tolist())) == 2


def test_a_person_with_many_photos_is_not_split_more_than_by_plain_linkage() -> None:
    # Their photos' neighbourhoods cannot all overlap (each face has 8 reciprocal neighbours of 200), so
    # a re-ranking that also pushed apart pairs sharing nothing would break them up.
    vectors, labels = face_like(big=200)
    edges = knn_edges(vectors, k=10, radius=0.7)
    big = labels == labels.max()
    reranked = reranked_average_linkage(vectors, edges, 0.48, reciprocal_jaccard(vectors, edges), 0.4)
    plain = average_linkage(vectors, edges, 0.48)
    pieces, plain_pieces = np.unique(reranked[big], return_counts=True)[1], np.unique(plain[big], return_counts=True)[1]
    assert len(pieces) <= len(plain_pieces) and pieces.max() >= plain_pieces.max()
    assert pieces.max() >= 0.95 * big.sum()  # a few unusual photos apart at most
    assert not np.isin(reranked[~big], reranked[big]).any()  # and nobody else pulled in
