"""People: group a collection's faces into individuals, incrementally or in full, keeping every
correction a person made (merge, split) and running only where the collection's purpose allows it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facesearch.audit import Actor, Event, PeopleEvent
from facesearch.catalog.people import ClusterInput, FaceQuality, PeopleStore, PersonDetail, PersonInfo
from facesearch.engine import Engine
from facesearch.errors import InvalidValueError, RefusedError
from facesearch.people.algorithms import Edges, average_linkage

CLUSTER_THRESHOLD = 0.49
"""The mean distance between a person's faces is at most this (average linkage). On the dev set's LFW
identities with 2+ photos (3,315 faces of 903 people, bench/cluster_quality.py) it gives BCubed precision
0.983 at recall 0.825, where complete linkage (every pair within the threshold) reaches 0.982 / 0.797 at
0.52, and label propagation (Chinese whispers) 0.973 / 0.778 at 0.45, falling to 0.894 / 0.907 at 0.50:
dlib's templates chain look-alikes, and merging two people is the worse error."""
NEIGHBOURS = 10
"""Neighbours each face is linked to in the graph taken from the vector index (10 or 30 measured alike)."""


@dataclass(frozen=True)
class QualityRule:
    """Faces kept out of people: too small, too unsure or too blurred to be grouped reliably."""

    min_side: int = 48
    min_score: float = 0.3
    min_sharpness: float = 15.0

    def accepts(self, face: FaceQuality) -> bool:
        return (
            min(face.width, face.height) >= self.min_side
            and face.score >= self.min_score
            and face.sharpness >= self.min_sharpness
        )


@dataclass(frozen=True)
class ClusterReport:
    collection: str
    full: bool
    faces: int
    low_quality: int
    assigned_to_existing: int
    new_people: int
    people_dropped: int
    people: int
    seconds: float


class People:
    def __init__(self, engine: Engine, quality: QualityRule | None = None) -> None:
        self.engine = engine
        self.store = PeopleStore(engine.catalog)
        self.quality = quality or QualityRule()

    # -- clustering --------------------------------------------------------------------------------

    def cluster(self, collection: str, actor: Actor, *, full: bool = False) -> ClusterReport:
        """Put every clusterable face of ``collection`` into a person. Incremental by default: new faces
        join the person of their nearest grouped neighbours or form new people; ``full`` regroups every
        face that no person placed by hand."""
        started = time.perf_counter()
        collection_id = self._allowed(collection)
        qualities = self.store.qualities(collection_id)
        eligible = [q.face_id for q in qualities if self.quality.accepts(q)]
        low_quality = sorted(set(q.face_id for q in qualities) - set(eligible))
        data = self.store.cluster_input(collection_id, eligible, self.engine.cipher(collection_id).open_template)
        edges = self._graph(collection_id, data)
        if full:
            assignment, groups = _regroup(data, edges)
        else:
            assignment, groups = _extend(data, edges)
        changed = {face: person for face, person in assignment.items() if person != _person_of(data, face)}

        def event(created: int, dropped: int) -> Event:
            return PeopleEvent(
                actor=actor,
                collection=collection,
                change="cluster-full" if full else "cluster",
                faces=len(data.face_ids),
                people_created=created,
                people_dropped=dropped,
                faces_moved=len(changed),
                low_quality=len(low_quality),
            )

        created, dropped = self.store.assign(collection_id, changed, groups, low_quality, event)
        return ClusterReport(
            collection=collection,
            full=full,
            faces=len(data.face_ids),
            low_quality=len(low_quality),
            assigned_to_existing=sum(1 for person in changed.values() if person >= 0),
            new_people=created,
            people_dropped=dropped,
            people=len(self.store.people(collection_id, include_hidden=True)),
            seconds=round(time.perf_counter() - started, 3),
        )

    def _graph(self, collection_id: int, data: ClusterInput) -> Edges:
        """Edges between faces within CLUSTER_THRESHOLD, found with the collection's vector index."""
        if not len(data.face_ids):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        position = {int(face_id): i for i, face_id in enumerate(data.face_ids)}
        distances, ids = self.engine.indexes.index(collection_id).search(data.vectors, NEIGHBOURS + 1)
        sources, targets, weights = [], [], []
        for i, (row_distances, row_ids) in enumerate(zip(distances, ids, strict=True)):
            for distance, face_id in zip(row_distances, row_ids, strict=True):
                j = position.get(int(face_id))
                if j is not None and j != i and distance <= CLUSTER_THRESHOLD:
                    sources.append(i)
                    targets.append(j)
                    weights.append(distance)
        return np.array(sources, np.int64), np.array(targets, np.int64), np.array(weights, np.float32)

    # -- people ------------------------------------------------------------------------------------

    def list_people(self, collection: str, *, include_hidden: bool = False) -> list[PersonInfo]:
        return self.store.people(self.engine.catalog.collection_id(collection), include_hidden)

    def low_quality_faces(self, collection: str) -> int:
        qualities = self.store.qualities(self.engine.catalog.collection_id(collection))
        return sum(1 for q in qualities if not self.quality.accepts(q))

    def show(self, person_id: int) -> PersonDetail:
        return self.store.person(person_id)

    def name(self, person_id: int, name: str, actor: Actor) -> None:
        """Label a person. A label is not an enrolment: it records no consent and creates no subject."""
        if len(name.strip()) > 200:
            raise InvalidValueError("a person's name is at most 200 characters")
        # The audit entry says a name was given, not which: an erased person's name must not outlive them.
        self.store.rename(person_id, name, self._event(actor, "name", person_id))

    def hide(self, person_id: int, actor: Actor, *, hidden: bool = True) -> None:
        self.store.hide(person_id, hidden, self._event(actor, "hide" if hidden else "unhide", person_id))

    def merge(self, keep_id: int, other_id: int, actor: Actor) -> None:
        self.store.merge(keep_id, other_id, self._event(actor, "merge", keep_id, merged=other_id))

    def split(self, person_id: int, face_ids: list[int], actor: Actor) -> int:
        if not face_ids:
            raise InvalidValueError("name the faces to split out of the person")

        def event(collection: str, new_id: int) -> Event:
            return PeopleEvent(
                actor=actor,
                collection=collection,
                change="split",
                person_id=person_id,
                other_person_id=new_id,
                faces_moved=len(face_ids),
            )

        return self.store.split(person_id, face_ids, event)

    def _event(self, actor: Actor, change: str, person_id: int, *, merged: int = 0) -> Callable[[str], Event]:
        def event(collection: str) -> Event:
            return PeopleEvent(
                actor=actor, collection=collection, change=change, person_id=person_id, other_person_id=merged
            )

        return event

    def _allowed(self, collection: str) -> int:
        info = self.engine.collection(collection)
        if not info.people_allowed:
            raise RefusedError(
                f"collection {collection!r} was not declared for grouping faces into people; if its purpose "
                f"allows it, run 'facesearch collection set {collection} --allow-people --reason ...'"
            )
        return self.engine.catalog.collection_id(collection)


def _person_of(data: ClusterInput, face_id: int) -> int:
    return int(data.person_ids[np.searchsorted(data.face_ids, face_id)])


def _extend(data: ClusterInput, edges: Edges) -> tuple[dict[int, int], dict[int, list[int]]]:
    """New (unassigned) faces join the person of a neighbour when their mean distance to that person's faces
    is within the threshold (the average-linkage rule); the rest are grouped among themselves."""
    sources, targets, distances = edges
    new = data.person_ids < 0
    order = np.lexsort((distances, sources))  # by face, nearest neighbour first
    sources, targets = sources[order], targets[order]
    starts = np.searchsorted(sources, np.arange(len(data.face_ids) + 1))
    members: dict[int, npt.NDArray[np.intp]] = {}
    assignment: dict[int, int] = {}
    for i in np.flatnonzero(new):
        neighbours = targets[starts[i] : starts[i + 1]]
        candidates = dict.fromkeys(int(data.person_ids[j]) for j in neighbours if not new[j])
        for person in candidates:
            if person not in members:
                members[person] = np.flatnonzero(data.person_ids == person)
            gaps = np.linalg.norm(data.vectors[members[person]] - data.vectors[i], axis=1)
            if float(gaps.mean()) <= CLUSTER_THRESHOLD:
                assignment[int(data.face_ids[i])] = person
                break
    remaining = np.array([i for i in np.flatnonzero(new) if int(data.face_ids[i]) not in assignment], np.int64)
    return assignment, _new_groups(data, edges, remaining)


def _regroup(data: ClusterInput, edges: Edges) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Cluster every face, then map clusters to people: faces placed by hand stay, and pull the rest of
    their cluster with them; other clusters keep the person most of their faces had (ids and names stay)."""
    labels = average_linkage(data.vectors, edges, CLUSTER_THRESHOLD)
    assignment: dict[int, int] = {}
    groups: dict[int, list[int]] = {}
    clusters = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    claimed = {int(data.person_ids[i]) for i in np.flatnonzero(data.locked)}  # people placed by hand
    for members in sorted(clusters, key=lambda m: (not data.locked[m].any(), -len(m))):
        free = [int(i) for i in members if not data.locked[i]]
        if not free:
            continue
        locked_people = {int(data.person_ids[i]) for i in members if data.locked[i]}
        if locked_people:
            for i in free:
                assignment[int(data.face_ids[i])] = _nearest_person(data, i, members, locked_people)
            continue
        previous = Counter(
            int(data.person_ids[i]) for i in free if data.person_ids[i] >= 0 and int(data.person_ids[i]) not in claimed
        )
        if previous:
            person = previous.most_common(1)[0][0]
            claimed.add(person)
            assignment.update({int(data.face_ids[i]): person for i in free})
        else:
            groups[len(groups)] = [int(data.face_ids[i]) for i in free]
    return assignment, groups


def _nearest_person(data: ClusterInput, i: int, members: npt.NDArray[np.intp], people: set[int]) -> int:
    best, best_distance = -1, np.inf
    for person in sorted(people):
        anchors = [j for j in members if data.locked[j] and data.person_ids[j] == person]
        distance = float(np.linalg.norm(data.vectors[anchors].mean(axis=0) - data.vectors[i]))
        if distance < best_distance:
            best, best_distance = person, distance
    return best


def _new_groups(data: ClusterInput, edges: Edges, positions: npt.NDArray[np.int64]) -> dict[int, list[int]]:
    """Group the faces at ``positions`` among themselves (edges to other faces are ignored)."""
    if not len(positions):
        return {}
    local = {int(p): k for k, p in enumerate(positions)}
    sources, targets, weights = edges
    keep = np.array([int(s) in local and int(t) in local for s, t in zip(sources, targets, strict=True)], bool)
    sub_edges: Edges = (
        np.array([local[int(s)] for s in sources[keep]], np.int64),
        np.array([local[int(t)] for t in targets[keep]], np.int64),
        weights[keep] if len(weights) else weights,
    )
    labels = average_linkage(data.vectors[positions], sub_edges, CLUSTER_THRESHOLD)
    groups: dict[int, list[int]] = {}
    for k, label in enumerate(labels):
        groups.setdefault(int(label), []).append(int(data.face_ids[positions[k]]))
    return groups
