"""Faces still on their own: two lone faces pair up, and a lone face joins a group (in a full grouping or
as a new face joining an existing person), only under the stricter ``LoneFaces`` bars, which are relative to
how crowded the templates are around the faces (each face's local scale, ``local_scales``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from facesearch.people.algorithms import (
    Edges,
    LoneFaces,
    local_scales,
    reciprocal_jaccard,
    reranked_average_linkage,
)
from facesearch.people.service import NEIGHBOURS, SCALE_LIMIT, Graph, _extend
from facesearch.store.catalog.people import ClusterInput

THRESHOLD = 0.485
LONE = LoneFaces(pair=0.80, join=0.88)
SIDE = 0.3 / np.sqrt(2.0)
"""Faces at SIDE along different axes are 0.3 apart: one tight person."""
CROWD = 10
"""Strangers around the faces under test: as many as the neighbours a face's scale is taken from."""


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


def crowd(centre: npt.NDArray[np.float32], spread: float, distance: float, first_axis: int) -> npt.NDArray[np.float32]:
    """CROWD strangers, each ``distance`` from every point within ``spread`` of ``centre`` along the axes below
    ``first_axis`` (each on an axis of its own from ``first_axis``): they are far from each other too."""
    height = np.sqrt(distance**2 - spread**2)
    points = np.tile(centre, (CROWD, 1)).astype(np.float32)
    points[np.arange(CROWD), first_axis + np.arange(CROWD)] = height
    return points


def grouped(points: npt.NDArray[np.float32], lone: LoneFaces | None, shared: bool = True) -> npt.NDArray[np.int64]:
    """The product's grouping of ``points`` over every pair, the re-ranking from their neighbourhoods (or none)."""
    edges = all_edges(points)
    jaccard = reciprocal_jaccard(points, edges) if shared else np.ones(len(edges[0]), np.float32)
    scales = local_scales(len(points), edges, NEIGHBOURS, SCALE_LIMIT)
    return reranked_average_linkage(points, edges, THRESHOLD, jaccard, 0.4, lone, scales)


def together(labels: npt.NDArray[np.int64], a: int, b: int) -> bool:
    return bool(labels[a] == labels[b])


def two_faces(distance: float, strangers_at: float | None) -> npt.NDArray[np.float32]:
    """Two faces ``distance`` apart (axis 0), with CROWD strangers ``strangers_at`` from both, or none."""
    points = np.zeros((2, 128), np.float32)
    points[1, 0] = distance
    if strangers_at is None:
        return points
    centre = np.zeros(128, np.float32)
    centre[0] = distance / 2
    return np.vstack([points, crowd(centre, distance / 2, strangers_at, first_axis=1)])


def test_a_faces_scale_is_its_distance_to_its_kth_neighbour_within_the_limit() -> None:
    points = two_faces(0.44, strangers_at=0.5)
    scales = local_scales(len(points), all_edges(points), NEIGHBOURS, SCALE_LIMIT)
    assert scales[:2] == pytest.approx([0.5, 0.5], abs=1e-5)  # one neighbour at 0.44, ten at 0.5
    lonely = local_scales(2, all_edges(two_faces(0.44, strangers_at=None)), NEIGHBOURS, SCALE_LIMIT)
    assert lonely.tolist() == [SCALE_LIMIT, SCALE_LIMIT]  # fewer than ten neighbours: the limit
    sparse = two_faces(0.44, strangers_at=0.65)
    assert local_scales(len(sparse), all_edges(sparse), NEIGHBOURS, SCALE_LIMIT)[0] == SCALE_LIMIT  # and at most it


def test_two_lone_faces_pair_up_only_where_their_neighbourhood_is_not_crowded() -> None:
    """0.44 apart: among strangers at 0.65 (scale 0.575, the limit: bar 0.46) a pair; among strangers at 0.5
    (bar 0.40) two faces, as likely strangers themselves. A fixed bar cannot tell the two apart."""
    for strangers_at, paired in ((0.65, True), (0.5, False)):
        points = two_faces(0.44, strangers_at)
        assert together(grouped(points, None), 0, 1)  # within the group threshold, as without the bars
        assert together(grouped(points, LONE), 0, 1) == paired, strangers_at
        assert len(set(grouped(points, LONE)[2:].tolist())) == CROWD  # the strangers stay apart


def test_two_lone_faces_with_only_each_other_pair_up_by_their_plain_distance() -> None:
    """Alone in a collection (scales at the limit, 0.575: bar 0.46), two faces share their whole
    neighbourhood (Jaccard 0), so the re-ranked distance says "same" whatever the plain one is."""
    for distance, paired in ((0.45, True), (0.47, False)):
        points = two_faces(distance, strangers_at=None)
        edges = all_edges(points)
        assert float(reciprocal_jaccard(points, edges).max()) == 0.0
        assert together(grouped(points, LONE), 0, 1) == paired


def test_a_lone_face_joins_a_group_only_within_the_join_bar_of_its_scale() -> None:
    """A face 0.47 on average from a tight person of three, all of scale 0.55: bar 0.88 x 0.55 = 0.484, it joins;
    where the face's own scale is 0.5 (its neighbours nearer), the bar is 0.88 x sqrt(0.5 x 0.55) = 0.461."""
    points = np.vstack([tight_person(), away(0.47, axis=5)[None, :]])
    edges = all_edges(points)
    nothing_shared = np.ones(len(edges[0]), np.float32)
    assert groups(reranked_average_linkage(points, edges, THRESHOLD, nothing_shared, 0.4)) == 1  # as before
    for face_scale, joins in ((0.55, True), (0.5, False)):
        scales = np.array([0.55, 0.55, 0.55, face_scale])
        careful = reranked_average_linkage(points, edges, THRESHOLD, nothing_shared, 0.4, LONE, scales)
        assert groups(careful) == (1 if joins else 2), face_scale
        assert groups(careful[:3]) == 1  # the tight person stays whole


def groups(labels: npt.NDArray[np.int64]) -> int:
    return len(set(labels.tolist()))


def test_bars_apply_to_lone_faces_only() -> None:
    assert LONE.allows((1, 1), plain=0.40, reranked=0.2, threshold=THRESHOLD, scale=0.5)
    assert not LONE.allows((1, 1), plain=0.41, reranked=0.2, threshold=THRESHOLD, scale=0.5)  # whatever is shared
    assert LONE.allows((1, 1), plain=0.47, reranked=0.2, threshold=THRESHOLD, scale=0.6)  # a sparser neighbourhood
    assert LONE.allows((1, 5), plain=0.44, reranked=0.44, threshold=THRESHOLD, scale=0.5)
    assert not LONE.allows((5, 1), plain=0.45, reranked=0.44, threshold=THRESHOLD, scale=0.5)
    assert not LONE.allows((1, 5), plain=0.3, reranked=0.49, threshold=THRESHOLD, scale=0.7)  # and the threshold
    assert LONE.allows((2, 5), plain=0.6, reranked=0.48, threshold=THRESHOLD, scale=0.1)  # groups: the threshold


def test_the_lone_face_bars_need_the_faces_scales() -> None:
    points = two_faces(0.44, strangers_at=None)
    edges = all_edges(points)
    with pytest.raises(ValueError, match="local scale"):
        reranked_average_linkage(points, edges, THRESHOLD, np.ones(2, np.float32), 0.4, LONE)


def test_new_faces_join_existing_people_under_the_same_bars() -> None:
    """Scales 0.5 everywhere: a new face joins a person within 0.44 of mean distance, one of one face within
    0.40; at scales 0.6 (bars 0.528 and 0.48) the faces kept apart at 0.5 join."""
    person, lone_person = 7, 9
    vectors = np.vstack(
        [
            tight_person(),  # person 7
            away(0.47, axis=5)[None, :],  # new: near person 7 on average, but not within the join bar at 0.5
            away(0.40, axis=6)[None, :],  # new: within it
            away(2.0, axis=10)[None, :],  # person 9, of one face
            away(2.0, axis=10)[None, :] + np.eye(128, dtype=np.float32)[11] * 0.42,  # new: 0.42 from person 9
        ]
    ).astype(np.float32)
    data = ClusterInput(
        face_ids=np.arange(10, 10 + len(vectors), dtype=np.int64),
        person_ids=np.array([person, person, person, -1, -1, lone_person, -1], np.int64),
        locked=np.zeros(len(vectors), bool),
        vectors=vectors,
    )
    edges = all_edges(vectors)
    no_bonus = np.ones(len(edges[0]), np.float32)
    assignment, new_groups = _extend(data, Graph(edges, no_bonus, np.full(len(vectors), 0.5)), THRESHOLD, LONE)
    assert assignment == {14: person}
    assert sorted(sorted(g) for g in new_groups.values()) == [[13], [16]]
    assignment, new_groups = _extend(data, Graph(edges, no_bonus, np.full(len(vectors), 0.6)), THRESHOLD, LONE)
    assert assignment == {13: person, 14: person, 16: lone_person}
    assert not new_groups
