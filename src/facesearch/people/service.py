"""People: group a collection's faces into individuals, incrementally or in full, keeping every
correction a person made (merge, split) and running only where the collection's purpose allows it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from facesearch.core.errors import InvalidValueError, RefusedError
from facesearch.core.settings import DEFAULT_TEMPLATE_RECIPE
from facesearch.engine.engine import Engine
from facesearch.people.algorithms import (
    Edges,
    LoneFaces,
    joint_scale,
    local_scales,
    reciprocal_jaccard,
    reranked_average_linkage,
    reranking_bonus,
    reranking_gain,
)
from facesearch.safeguards.audit import Actor, Event, PeopleEvent
from facesearch.store.catalog.people import ClusterInput, FaceQuality, PeopleStore, PersonDetail, PersonInfo


@dataclass(frozen=True)
class Grouping:
    """How faces of one template recipe are grouped into people: groups merge by average linkage on re-ranked
    distances (``reranked_average_linkage``) within ``threshold``, and a face still on its own meets the
    stricter ``lone`` bars, relative to its local scale (``LoneFaces``)."""

    threshold: float
    lone: LoneFaces


GROUPINGS = {
    "dlib-1view-v1": Grouping(0.47, LoneFaces(pair=0.82, join=0.90)),
    "dlib-4view-v1": Grouping(0.485, LoneFaces(pair=0.82, join=0.90)),
    "dlib4view+facenet2view-v1": Grouping(0.485, LoneFaces(pair=0.82, join=0.88)),
    "dlib4view+facenet2view-int8-v1": Grouping(0.485, LoneFaces(pair=0.82, join=0.88)),
}
"""The measured groupings, by template recipe (bench/cluster_quality.py --recipe R; bench/README.md).

The threshold: the mean distance between a person's faces, less a bonus for the pairs that share their
k-reciprocal neighbourhood, is at most this. On the dev set's LFW identities with 2+ photos (3,315 faces of 903
people), one-view templates gave BCubed precision 0.981 at recall 0.861 at 0.47, where plain average linkage
reaches 0.985 / 0.788 at 0.48, complete linkage 0.981 / 0.799 at 0.52 and label propagation (Chinese whispers)
0.996 / 0.571 at 0.40; in held-out 2-fold checks the re-ranking gained 3.8 to 5.6 recall points at equal
precision. Four-view templates (``templates.py``, the default) lie closer within a person: 0.981 / 0.908 at
0.485 (in a 2-fold check by identity both halves chose 0.49). Merging two people is the worse error, hence
precision first.

The lone-face bars (times each face's local scale, ``LoneFaces``): most people in a real archive appear once,
and without bars one-photo strangers were put into other people. Over every dev LFW person (4,498 faces of
2,086 people, 1,183 of them with one photo), and over the people with 2+ photos grouped alone:

- four views: no bars 0.936 / 0.924 and 0.981 / 0.908; fixed bars (a lone face within 0.46 of plain and 0.43
  of re-ranked distance, before) 0.981 / 0.876 and 0.990 / 0.839; these 0.983 / 0.887 and 0.989 / 0.860.
  Out of fold (bars chosen on half of the people, split by identity, at precision 0.985 on both sets, scored
  on the other half) the halves chose 0.84 / 0.90 and 0.82 / 0.90: 0.984 / 0.903 with 0.991 / 0.877, and
  0.988 / 0.907 with 0.991 / 0.888 held out. Recall on the people with 2+ photos stays under 0.90.
- one view: no bars 0.946 / 0.885; fixed bars (0.46 / 0.44) 0.980 / 0.847; these 0.987 / 0.849 and 0.991 /
  0.808 (halves chose 0.84 / 0.90 and 0.80 / 0.90).
- fused (dlib's four views and FaceNet's two, 4,496 faces both find): no bars 0.927 / 0.968 and 0.987 / 0.961;
  these 0.987 / 0.944 and 0.992 / 0.931, which meets precision 0.98 with recall 0.90 on both sets. Out of fold
  the halves chose 0.84 / 0.88 and 0.82 / 0.88: 0.985 / 0.952 with 0.994 / 0.936, and 0.988 / 0.961 with
  0.993 / 0.949 held out."""


def grouping_for(collection: str, recipe: str) -> Grouping:
    """The measured grouping of a collection's recipe; a recipe it was not measured for is refused."""
    if recipe not in GROUPINGS:
        raise RefusedError(
            f"people grouping has not been measured for template recipe {recipe} (collection {collection!r}); "
            "re-embed the collection with "
            f"'facesearch reindex --collection {collection} --recipe {DEFAULT_TEMPLATE_RECIPE}'"
        )
    return GROUPINGS[recipe]


RECIPROCAL_NEIGHBOURS = 8
"""k of the k-reciprocal neighbourhoods (k1 of Zhong et al. 2017). This, EXPANSION and DISTANCE_WEIGHT
were chosen on the same faces from k1 in 6 / 8 / 10, k2 in 1 / 2 / 3 and weight in 0.4 / 0.5 / 0.6."""
EXPANSION = 2
"""Nearest faces whose neighbourhood weights are averaged (k2, the face itself included)."""
DISTANCE_WEIGHT = 0.4
"""A linked pair's distance d becomes min(d, 0.4 d + 0.6 jaccard) (lambda of Zhong et al. 2017)."""
NEIGHBOURS = 10
"""Neighbours each face is linked to in the graph taken from the vector index (10 or 30 measured alike);
at least RECIPROCAL_NEIGHBOURS, whose lists the re-ranking needs whole. A face's local scale, which the
lone-face bars are relative to, is its distance to the last of them (SCALE_LIMIT where it is farther or
missing; the 8th or the 15th, with bars to match, measured alike)."""
SCALE_LIMIT = 0.575
"""The most a face's local scale counts for (``local_scales``). In a small or sparse collection every face's
neighbours lie far, and bars relative to them alone would let any two faces within the group threshold pair up,
as with no bars (two strangers alone share their whole neighbourhood). At 0.575 the pair bar is at most 0.47
(0.82 x 0.575), about the fixed bar it replaced (0.46). On the dev-set people test's sample (744 faces; its
grouping simulated on the cached templates) it took precision, grouped in full, from 0.978 to 0.991 with four
views and from 0.971 to 0.989 fused; over the whole dev set the four-view figures moved from 0.980 / 0.891 to
0.983 / 0.887 (0.55 costs more recall)."""
GRAPH_RADIUS = 0.7
"""Neighbours further than this are left out of the graph. It is wider than the thresholds because the
re-ranking reads whole neighbour lists, not only the close pairs: on the dev set, recall was 0.877 at 0.7
and with no limit (the same grouping), 0.877 at 0.6, 0.872 at 0.55 and 0.804 at the threshold itself."""


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


CLUSTER_STEPS = ("reading the faces", "finding each face's neighbours", "grouping", "saving the people")
"""The steps of ``People.cluster``, in order, as its ``progress`` callback names them."""


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


class Graph(NamedTuple):
    """Each face's nearest neighbours within GRAPH_RADIUS, how much each linked pair's k-reciprocal
    neighbourhoods differ (``reciprocal_jaccard``, one per edge), and each face's local scale
    (``local_scales``)."""

    edges: Edges
    jaccard: npt.NDArray[np.float32]
    scales: npt.NDArray[np.float64]


Scope = Callable[[], AbstractContextManager[object]]
"""A lock scope to hold while reading or writing (the server's; none for the library and the command line)."""
CLUSTER_ATTEMPTS = 3
"""Groupings computed with no lock held before one is computed under the write scope."""


@dataclass(frozen=True)
class _Plan:
    """A grouping computed from what the collection held when it was read (``state``), not yet written."""

    collection: str
    collection_id: int
    full: bool
    state: int
    faces: int
    low_quality: list[int]
    changed: dict[int, int]
    groups: dict[int, list[int]]


class People:
    def __init__(self, engine: Engine, quality: QualityRule | None = None) -> None:
        self.engine = engine
        self.store = PeopleStore(engine.catalog)
        self.quality = quality or QualityRule()

    # -- clustering --------------------------------------------------------------------------------

    def cluster(
        self,
        collection: str,
        actor: Actor,
        *,
        full: bool = False,
        reading: Scope = nullcontext,
        writing: Scope = nullcontext,
        progress: Callable[[str], None] | None = None,
    ) -> ClusterReport:
        """Put every clusterable face of ``collection`` into a person. Incremental by default: new faces
        join the person of their nearest grouped neighbours or form new people; ``full`` regroups every
        face that no person placed by hand. ``progress`` is told each of CLUSTER_STEPS as it starts.

        The faces are read under ``reading`` and grouped under no lock; the result is written under ``writing``
        if the collection's faces and people are as they were read, else read and grouped again (the last
        attempt groups under ``writing``), so that a server's searches and uploads go on while it groups."""
        step = progress or (lambda _: None)
        started = time.perf_counter()
        for _ in range(CLUSTER_ATTEMPTS - 1):
            plan = self._plan(collection, full, reading, step)
            with writing():
                if self.store.cluster_state(plan.collection_id) == plan.state:
                    return self._write(plan, actor, started, step)
        with writing():  # changed under every attempt: group with this process's writes kept out
            return self._write(self._plan(collection, full, reading, step), actor, started, step)

    def _plan(self, collection: str, full: bool, reading: Scope, step: Callable[[str], None]) -> _Plan:
        with reading():
            collection_id = self._allowed(collection)
            step(CLUSTER_STEPS[0])
            state = self.store.cluster_state(collection_id)
            qualities = self.store.qualities(collection_id)
            eligible = [q.face_id for q in qualities if self.quality.accepts(q)]
            low_quality = sorted(set(q.face_id for q in qualities) - set(eligible))
            data = self.store.cluster_input(collection_id, eligible, self.engine.cipher(collection_id).open_template)
            step(CLUSTER_STEPS[1])
            neighbours = self._neighbours(collection_id, data)
            grouping = grouping_for(collection, self.engine.catalog.collection_recipe(collection_id))
        graph = _graph_of(data, *neighbours)
        step(CLUSTER_STEPS[2])
        if full:
            assignment, groups = _regroup(data, graph, grouping.threshold, grouping.lone)
        else:
            assignment, groups = _extend(data, graph, grouping.threshold, grouping.lone)
        changed = {face: person for face, person in assignment.items() if person != _person_of(data, face)}
        return _Plan(collection, collection_id, full, state, len(data.face_ids), low_quality, changed, groups)

    def _write(self, plan: _Plan, actor: Actor, started: float, step: Callable[[str], None]) -> ClusterReport:
        def event(created: int, dropped: int) -> Event:
            return PeopleEvent(
                actor=actor,
                collection=plan.collection,
                change="cluster-full" if plan.full else "cluster",
                faces=plan.faces,
                people_created=created,
                people_dropped=dropped,
                faces_moved=len(plan.changed),
                low_quality=len(plan.low_quality),
            )

        step(CLUSTER_STEPS[3])
        collection_id = plan.collection_id
        created, dropped = self.store.assign(collection_id, plan.changed, plan.groups, plan.low_quality, event)
        return ClusterReport(
            collection=plan.collection,
            full=plan.full,
            faces=plan.faces,
            low_quality=len(plan.low_quality),
            assigned_to_existing=sum(1 for person in plan.changed.values() if person >= 0),
            new_people=created,
            people_dropped=dropped,
            people=self.store.people_count(collection_id),
            seconds=round(time.perf_counter() - started, 3),
        )

    def _graph(self, collection_id: int, data: ClusterInput) -> Graph:
        """The neighbour graph of ``data`` from the collection's vector index (see ``_graph_of``)."""
        return _graph_of(data, *self._neighbours(collection_id, data))

    def _neighbours(
        self, collection_id: int, data: ClusterInput
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Each face's NEIGHBOURS + 1 nearest faces in the collection's vector index: (distances, ids)."""
        if not len(data.face_ids):
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64)
        return self.engine.indexes.index(collection_id).search(data.vectors, NEIGHBOURS + 1)

    # -- people ------------------------------------------------------------------------------------

    def list_people(self, collection: str, *, include_hidden: bool = False) -> list[PersonInfo]:
        return self.store.people(self.engine.catalog.collection_id(collection), include_hidden)

    def low_quality_faces(self, collection: str) -> int:
        qualities = self.store.qualities(self.engine.catalog.collection_id(collection))
        return sum(1 for q in qualities if not self.quality.accepts(q))

    def faces_alone(self, collection: str) -> int:
        """Faces that are a person of their own (hidden people included): grouping joins a face only where
        it is near enough to others, so these are where a reviewer finds people it did not dare to join."""
        return self.store.faces_alone(self.engine.catalog.collection_id(collection))

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

    def check_allowed(self, collection: str) -> None:
        """Refuse a collection that does not exist or was not declared for grouping faces into people."""
        self._allowed(collection)

    def _allowed(self, collection: str) -> int:
        info = self.engine.collection(collection)
        if not info.people_allowed:
            raise RefusedError(
                f"collection {collection!r} was not declared for grouping faces into people; if its purpose "
                f"allows it, run 'facesearch collection set {collection} --allow-people --reason ...'"
            )
        return self.engine.catalog.collection_id(collection)


def _graph_of(data: ClusterInput, distances: npt.NDArray[np.float32], ids: npt.NDArray[np.int64]) -> Graph:
    """The neighbour graph within GRAPH_RADIUS from each face's nearest faces, the re-ranking's Jaccard
    distance per edge and each face's local scale."""
    edges_of_none = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    empty = Graph(edges_of_none, np.ones(0, np.float32), np.zeros(0, np.float64))
    if not len(data.face_ids):
        return empty
    position = {int(face_id): i for i, face_id in enumerate(data.face_ids)}
    sources, targets, weights = [], [], []
    for i, (row_distances, row_ids) in enumerate(zip(distances, ids, strict=True)):
        for distance, face_id in zip(row_distances, row_ids, strict=True):
            j = position.get(int(face_id))
            if j is not None and j != i and distance <= GRAPH_RADIUS:
                sources.append(i)
                targets.append(j)
                weights.append(distance)
    edges = np.array(sources, np.int64), np.array(targets, np.int64), np.array(weights, np.float32)
    jaccard = reciprocal_jaccard(data.vectors, edges, RECIPROCAL_NEIGHBOURS, EXPANSION)
    return Graph(edges, jaccard, local_scales(len(data.face_ids), edges, NEIGHBOURS, SCALE_LIMIT))


def _person_of(data: ClusterInput, face_id: int) -> int:
    return int(data.person_ids[np.searchsorted(data.face_ids, face_id)])


def _extend(
    data: ClusterInput, graph: Graph, threshold: float, lone: LoneFaces
) -> tuple[dict[int, int], dict[int, list[int]]]:
    """New (unassigned) faces join the person of a neighbour as a lone face joins a group in the full
    grouping (``LoneFaces``): within ``threshold`` of mean re-ranked distance to the person's faces and within
    ``lone.join`` (``lone.pair`` for a person of one face) times the local scale of the new face and theirs, of
    mean plain distance. The rest are grouped among themselves, within ``threshold``."""
    sources, targets, distances = graph.edges
    reranked = distances - reranking_gain(distances, graph.jaccard, DISTANCE_WEIGHT)
    near = reranked <= threshold  # a person with no face this near cannot be within the threshold
    sources, targets, distances = sources[near], targets[near], distances[near]
    bonus = reranking_bonus(graph.edges, graph.jaccard, DISTANCE_WEIGHT)
    new = data.person_ids < 0
    order = np.lexsort((distances, sources))  # by face, nearest neighbour first
    sources, targets = sources[order], targets[order]
    starts = np.searchsorted(sources, np.arange(len(data.face_ids) + 1))
    members: dict[int, npt.NDArray[np.intp]] = {}
    assignment: dict[int, int] = {}
    for i in np.flatnonzero(new):
        neighbours = targets[starts[i] : starts[i + 1]]
        candidates = dict.fromkeys(int(data.person_ids[j]) for j in neighbours if not new[j])
        taken = dict(bonus.get(int(i), ()))
        for person in candidates:
            if person not in members:
                members[person] = np.flatnonzero(data.person_ids == person)
            faces = members[person]
            plain = float(np.linalg.norm(data.vectors[faces] - data.vectors[i], axis=1).mean())
            less = sum(taken.get(int(j), 0.0) for j in faces) / len(faces)
            scale = joint_scale(graph.scales, int(i), faces)
            if lone.allows((len(faces), 1), plain, plain - less, threshold, scale):
                assignment[int(data.face_ids[i])] = person
                break
    remaining = np.array([i for i in np.flatnonzero(new) if int(data.face_ids[i]) not in assignment], np.int64)
    return assignment, _new_groups(data, graph, remaining, threshold, lone)


def _regroup(
    data: ClusterInput, graph: Graph, threshold: float, lone: LoneFaces
) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Cluster every face, then map clusters to people: faces placed by hand stay, and pull the rest of
    their cluster with them; other clusters keep the person most of their faces had (ids and names stay)."""
    labels = _group(data.vectors, graph, threshold, lone)
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


def _new_groups(
    data: ClusterInput, graph: Graph, positions: npt.NDArray[np.int64], threshold: float, lone: LoneFaces
) -> dict[int, list[int]]:
    """Group the faces at ``positions`` among themselves (edges to other faces are ignored; the re-ranking
    still reads each face's neighbourhood in the whole collection)."""
    if not len(positions):
        return {}
    local = np.full(len(data.face_ids), -1, dtype=np.int64)
    local[positions] = np.arange(len(positions))
    sources, targets, distances = graph.edges
    keep = (local[sources] >= 0) & (local[targets] >= 0)
    sub_graph = Graph(
        (local[sources[keep]], local[targets[keep]], distances[keep]), graph.jaccard[keep], graph.scales[positions]
    )
    labels = _group(data.vectors[positions], sub_graph, threshold, lone)
    groups: dict[int, list[int]] = {}
    for k, label in enumerate(labels):
        groups.setdefault(int(label), []).append(int(data.face_ids[positions[k]]))
    return groups


def _group(vectors: npt.NDArray[np.float32], graph: Graph, threshold: float, lone: LoneFaces) -> npt.NDArray[np.int64]:
    return reranked_average_linkage(vectors, graph.edges, threshold, graph.jaccard, DISTANCE_WEIGHT, lone, graph.scales)
