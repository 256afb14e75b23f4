"""Faces still on their own: two lone faces pair up, and a lone face joins a group (in a full grouping or
as a new face joining an existing person), only under the stricter ``LoneFaces`` bars."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from facesearch.people.algorithms import Edges, LoneFaces, reciprocal_jaccard, reranked_average_linkage
from facesearch.people.service import Graph, _extend
from facesearch.store.catalog.people import ClusterInput

THRESHOLD = 0.485
LONE = LoneFaces(pair=0.46, join=0.43)
SIDE = 0.3 / np.sqrt(2.0)
"""Faces at SIDE along different axes are 0.3 apart: one tight person."""


def all_edges(points: npt.NDArray[np.float32]) -> Edges:
    """Every ordered pair of distinct points, as a graph of few faces holds them."""
    count = len(points)
    sources, targets = (a.ravel() for a in np.meshgrid(np.arange(count), np.arange(count), indexing="ij"))
    keep = sources != targets
    gaps = np.linalg.norm(points[sources[keep]] - points[targets[keep]], axis=1)
    return sources[keep].astype(np.int64), targets[keep].astype(np.int64), gaps.astype(np.float32)


def away(distance: float, axis: int) -> npt.NDArray[np.float32]:
    """A face ``distance`` from each face of the tight person (which lie on axes 0-2), along ``axis``."""
    point = np.zeros(128, np.float32)
    point[axis] = np.sqrt(distance**2 - SIDE**2)
    return point


def tight_person(faces: int = 3) -> npt.NDArray[np.float32]:
    points: npt.NDArray[np.float32] = (np.eye(128, dtype=np.float32) * SIDE)[:faces]
    return points


def groups(labels: npt.NDArray[np.int64]) -> int:
    return len(set(labels.tolist()))


def test_two_lone_faces_with_only_each_other_pair_up_by_their_plain_distance() -> None:
    for distance, together in ((0.47, False), (0.45, True)):
        points = np.zeros((2, 128), np.float32)
        points[1, 0] = distance
        edges = all_edges(points)
        jaccard = reciprocal_jaccard(points, edges)
        assert float(jaccard.max()) == 0.0  # each is the other's whole neighbourhood: the re-ranking says "same"
        assert groups(reranked_average_linkage(points, edges, THRESHOLD, jaccard, 0.4)) == 1
        assert groups(reranked_average_linkage(points, edges, THRESHOLD, jaccard, 0.4, LONE)) == (1 if together else 2)


def test_a_lone_face_joins_a_group_only_within_the_join_bar() -> None:
    for distance, joins in ((0.47, False), (0.42, True)):
        points = np.vstack([tight_person(), away(distance, axis=5)[None, :]])
        edges = all_edges(points)
        nothing_shared = np.ones(len(edges[0]), np.float32)
        plain = reranked_average_linkage(points, edges, THRESHOLD, nothing_shared, 0.4)
        careful = reranked_average_linkage(points, edges, THRESHOLD, nothing_shared, 0.4, LONE)
        assert groups(plain) == 1  # within the group threshold, as before
        assert groups(careful) == (1 if joins else 2)
        assert groups(careful[:3]) == 1  # the tight person stays whole


def test_bars_apply_to_lone_faces_only() -> None:
    assert LONE.allows((1, 1), plain=0.45, reranked=0.2, threshold=THRESHOLD)
    assert not LONE.allows((1, 1), plain=0.47, reranked=0.2, threshold=THRESHOLD)  # too far, whatever is shared
    assert not LONE.allows((1, 1), plain=0.45, reranked=0.44, threshold=THRESHOLD)  # and within the join bar
    assert LONE.allows((1, 5), plain=0.6, reranked=0.43, threshold=THRESHOLD)
    assert not LONE.allows((5, 1), plain=0.44, reranked=0.44, threshold=THRESHOLD)
    assert LONE.allows((2, 5), plain=0.6, reranked=0.48, threshold=THRESHOLD)  # groups: the threshold


def test_new_faces_join_existing_people_under_the_same_bars() -> None:
    person, lone_person = 7, 9
    vectors = np.vstack(
        [
            tight_person(),  # person 7
            away(0.47, axis=5)[None, :],  # new: near person 7 on average, but not within the join bar
            away(0.40, axis=6)[None, :],  # new: within it
            away(2.0, axis=10)[None, :],  # person 9, of one face
            away(2.0, axis=10)[None, :] + np.eye(128, dtype=np.float32)[11] * 0.47,  # new: 0.47 from person 9
        ]
    ).astype(np.float32)
    data = ClusterInput(
        face_ids=np.arange(10, 10 + len(vectors), dtype=np.int64),
        person_ids=np.array([person, person, person, -1, -1, lone_person, -1], np.int64),
        locked=np.zeros(len(vectors), bool),
        vectors=vectors,
    )
    edges = all_edges(vectors)
    graph = Graph(edges, np.ones(len(edges[0]), np.float32))  # no re-ranking bonus
    assignment, new_groups = _extend(data, graph, THRESHOLD, LONE)
    assert assignment == {14: person}
    assert sorted(sorted(g) for g in new_groups.values()) == [[13], [16]]
