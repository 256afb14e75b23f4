"""Grouping maths on a sparse neighbour graph: pure functions, no models, no storage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Edges = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]
"""(source, target, distance) of each directed edge."""


def chinese_whispers(count: int, edges: Edges, iterations: int = 20, seed: int = 0) -> npt.NDArray[np.int64]:
    """dlib's Chinese whispers: each node repeatedly takes the label with the largest total edge weight
    among its neighbours (weight 1 - distance/2), in a random order; no number of clusters to choose,
    linear in the number of edges. Deterministic for a given seed."""
    labels = np.arange(count, dtype=np.int64)
    sources, targets, distances = edges
    if count == 0 or len(sources) == 0:
        return labels
    weights = 1.0 - np.asarray(distances, dtype=np.float64) / 2.0
    # Undirected adjacency in CSR form.
    both_sources = np.concatenate([sources, targets])
    both_targets = np.concatenate([targets, sources])
    both_weights = np.concatenate([weights, weights])
    order = np.argsort(both_sources, kind="stable")
    neighbours, neighbour_weights = both_targets[order], both_weights[order]
    starts = np.searchsorted(both_sources[order], np.arange(count + 1))
    random = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = False
        for node in random.permutation(count):
            begin, end = starts[node], starts[node + 1]
            if begin == end:
                continue
            totals: dict[int, float] = {}
            for neighbour, weight in zip(neighbours[begin:end], neighbour_weights[begin:end], strict=True):
                label = int(labels[neighbour])
                totals[label] = totals.get(label, 0.0) + float(weight)
            best = max(totals.items(), key=lambda item: (item[1], -item[0]))[0]
            if best != labels[node]:
                labels[node] = best
                changed = True
        if not changed:
            break
    return labels


def bcubed(truth: npt.ArrayLike, predicted: npt.ArrayLike) -> tuple[float, float]:
    """BCubed precision and recall: for each item, the share of its predicted cluster that truly belongs
    with it, and the share of its true group that the prediction kept with it; averaged over items."""
    true_labels = np.asarray(truth)
    predicted_labels = np.asarray(predicted)
    if true_labels.shape != predicted_labels.shape:
        raise ValueError("truth and prediction must label the same items")
    if not len(true_labels):
        return 1.0, 1.0
    precision = recall = 0.0
    for item in range(len(true_labels)):
        same_cluster = predicted_labels == predicted_labels[item]
        same_truth = true_labels == true_labels[item]
        both = float(np.count_nonzero(same_cluster & same_truth))
        precision += both / np.count_nonzero(same_cluster)
        recall += both / np.count_nonzero(same_truth)
    return precision / len(true_labels), recall / len(true_labels)


def average_linkage(vectors: npt.NDArray[np.float32], edges: Edges, threshold: float) -> npt.NDArray[np.int64]:
    """Average linkage on a sparse graph: the graph's edges, shortest first, propose merges, and two groups
    merge only if the mean distance over every pair of their members (computed from the templates, not
    only from the edges) is within ``threshold``. Every group so made keeps the mean distance between its
    faces within the threshold: one look-alike pair cannot pull two people together, as in single linkage,
    yet one unusual photo does not keep a person apart, as in complete linkage."""
    sources, targets, distances = edges
    return _merge_by_mean_distance(vectors, sources, targets, np.asarray(distances, np.float64), threshold, {})


def complete_linkage(count: int, edges: Edges, threshold: float) -> npt.NDArray[np.int64]:
    """Complete linkage on a sparse graph: edges are taken from the shortest up, and two groups merge
    only if every pair of their members is linked within ``threshold`` (a missing edge counts as too
    far). Chains of look-alikes, which single linkage and label propagation follow, cannot form: this
    trades some recall for precision, the right way round for people (merging two is worse than
    splitting one)."""
    sources, targets, distances = edges
    linked: set[tuple[int, int]] = set()
    for source, target, distance in zip(sources, targets, distances, strict=True):
        if distance <= threshold and source != target:
            linked.add((min(int(source), int(target)), max(int(source), int(target))))
    members: dict[int, list[int]] = {node: [node] for node in range(count)}
    group = list(range(count))
    for source, target, distance in sorted(zip(sources, targets, distances, strict=True), key=lambda e: e[2]):
        if distance > threshold:
            break
        a, b = group[int(source)], group[int(target)]
        if a == b:
            continue
        if all((min(x, y), max(x, y)) in linked for x in members[a] for y in members[b]):
            if len(members[a]) < len(members[b]):
                a, b = b, a
            for node in members[b]:
                group[node] = a
            members[a].extend(members.pop(b))
    return np.asarray(group, dtype=np.int64)


# -- k-reciprocal re-ranking -------------------------------------------------------------------------------

Bonus = dict[int, list[tuple[int, float]]]
"""Face -> (other face, distance taken off the pair) for each pair of faces whose distance is lowered."""


@dataclass(frozen=True)
class SparseRows:
    """Weights over faces, one row per face, stored by row: row r is ``columns[starts[r]:starts[r + 1]]``
    with ``values`` alike, each column at most once. The sentinel row ``count`` is empty."""

    count: int
    starts: npt.NDArray[np.int64]
    columns: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    @classmethod
    def of(
        cls, count: int, rows: npt.NDArray[np.int64], columns: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
    ) -> SparseRows:
        """From (row, column, value) triples in any order; the values of a repeated (row, column) add up."""
        key = rows * (count + 1) + columns
        order = np.argsort(key, kind="stable")
        key, values = key[order], values[order]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
        summed = np.add.reduceat(values, first) if len(key) else values
        key = key[first]
        starts = np.searchsorted(key // (count + 1), np.arange(count + 2))
        return cls(count, starts.astype(np.int64), key % (count + 1), summed)

    def entries(self, rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The entries of ``rows``, row after row: for each, its row's position in ``rows`` and its index in
        ``columns`` and ``values``."""
        lengths = self.starts[rows + 1] - self.starts[rows]
        owner = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        offsets = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return owner, self.starts[rows][owner] + offsets


def neighbour_table(count: int, edges: Edges, width: int) -> npt.NDArray[np.int64]:
    """Each face's nearest ``width`` neighbours from the directed edges, nearest first, one row per face
    plus a last row for the sentinel ``count``, which also fills the places of missing neighbours (so that
    a table can index itself)."""
    sources, targets, distances = edges
    order = np.lexsort((distances, sources))
    sources, targets = sources[order], targets[order]
    starts = np.searchsorted(sources, np.arange(count + 1))
    rank = np.arange(len(sources)) - starts[sources]
    keep = rank < width
    table = np.full((count + 1, width), count, dtype=np.int64)
    table[sources[keep], rank[keep]] = targets[keep]
    return table


def reciprocal_jaccard(
    vectors: npt.NDArray[np.float32],
    edges: Edges,
    reciprocal: int = 8,
    expand: int = 2,
    bandwidth: float = 0.25,
    chunk: int = 20_000,
) -> npt.NDArray[np.float32]:
    """Jaccard distance between the k-reciprocal neighbourhoods of each edge's two faces (Zhong et al. 2017,
    "Re-ranking person re-identification with k-reciprocal encoding"), from the kNN edges alone, so it
    scales with the edges, not with the square of the faces. A face's neighbourhood is its ``reciprocal``
    nearest neighbours that also count it among theirs, widened by the neighbourhoods of members that
    mostly agree with it; members are weighted by exp(-distance^2 / ``bandwidth``) and the weights averaged
    over the face's ``expand`` nearest faces (itself included). Two photos of one person are often not
    each other's nearest, yet share most of their neighbourhood: 0 means the same neighbourhood, 1 that
    nothing is shared. ``chunk`` edges are compared at a time (bounds the memory)."""
    count = len(vectors)
    sources, targets, _ = edges
    if count == 0 or len(sources) == 0:
        return np.ones(len(sources), dtype=np.float32)
    neighbours = neighbour_table(count, edges, reciprocal)
    members = _expanded_neighbourhoods(neighbours, count)
    weights = _neighbourhood_weights(vectors, members, bandwidth)
    if expand > 1:
        nearest = np.hstack([np.arange(count + 1)[:, None], neighbours[:, : expand - 1]])
        weights = _average_over(weights, nearest)
    shared = np.zeros(len(sources), dtype=np.float64)
    for start in range(0, len(sources), chunk):
        part = slice(start, min(len(sources), start + chunk))
        shared[part] = _shared_weight(weights, sources[part], targets[part])
    # Each face's weights sum to 1, so the sum of the larger weights is 2 - the sum of the smaller.
    return (1.0 - shared / (2.0 - shared)).astype(np.float32)


def reranking_bonus(edges: Edges, jaccard: npt.NDArray[np.float32], weight: float) -> Bonus:
    """What k-reciprocal re-ranking takes off each linked pair: its distance d becomes
    min(d, ``weight``*d + (1-``weight``)*jaccard) where the two faces share part of their neighbourhood,
    once per unordered pair. Only ever a bonus: pairs that share nothing keep their distance."""
    sources, targets, distances = edges
    gain = reranking_gain(distances, jaccard, weight)
    low, high = np.minimum(sources, targets), np.maximum(sources, targets)
    _, first = np.unique(low * (int(high.max(initial=0)) + 1) + high, return_index=True)
    bonus: Bonus = {}
    for edge in first[gain[first] > 0.0]:
        a, b, taken = int(low[edge]), int(high[edge]), float(gain[edge])
        bonus.setdefault(a, []).append((b, taken))
        bonus.setdefault(b, []).append((a, taken))
    return bonus


@dataclass(frozen=True)
class LoneFaces:
    """Stricter bars for a face that is still on its own, which most faces of a real archive stay (most
    people in it appear once): a face left alone is better than a stranger put into someone's person.

    The bars are relative to how crowded the templates are around the faces (local scaling, Zelnik-Manor and
    Perona 2004): a face's scale is its distance to its k-th nearest face (``local_scales``). A lone face pairs
    with another lone face only if their plain distance is within ``pair`` times the geometric mean of their
    two scales, and joins a group only if its mean plain distance to the group's faces is within ``join`` times
    the geometric mean of its scale and the group's mean scale; both also within the group threshold,
    re-ranked. Where many faces lie near (a face whose k-th neighbour is close), a look-alike stranger is
    likely and the bar is tight; where a face's neighbours are all far, a near face is telling. Two faces that
    have only each other share their whole neighbourhood (Jaccard 0), one person or two strangers alike, so the
    re-ranking alone would pair them: the bars take the plain distance."""

    pair: float
    join: float

    def allows(self, sizes: tuple[int, int], plain: float, reranked: float, threshold: float, scale: float) -> bool:
        """Whether groups of ``sizes`` faces, at mean distance ``plain`` (``reranked`` with the bonuses), may
        merge, ``scale`` being the geometric mean of the lone face's scale and the other side's mean scale;
        groups of two or more faces each merge within ``threshold``, as without these bars."""
        if reranked > threshold:
            return False
        return min(sizes) > 1 or plain <= (self.pair if max(sizes) == 1 else self.join) * scale


def local_scales(count: int, edges: Edges, k: int, limit: float) -> npt.NDArray[np.float64]:
    """Each face's distance to its ``k``-th nearest neighbour among the directed ``edges`` (each face's nearest
    faces within ``limit``), or ``limit`` where it has fewer than ``k`` neighbours there."""
    sources, _, distances = edges
    scales = np.full(count, limit, dtype=np.float64)
    if not len(sources):
        return scales
    order = np.lexsort((distances, sources))
    sources, ordered = sources[order], np.asarray(distances, np.float64)[order]
    starts = np.searchsorted(sources, np.arange(count + 1))
    rank = np.arange(len(sources)) - starts[sources]
    kth = rank == k - 1
    scales[sources[kth]] = np.minimum(ordered[kth], limit)
    return scales


def joint_scale(scales: npt.NDArray[np.float64], face: int, others: npt.NDArray[np.intp] | list[int]) -> float:
    """The scale a lone ``face`` meets ``others`` at: the geometric mean of its scale and theirs (their mean)."""
    return float(np.sqrt(scales[face] * np.mean(scales[others])))


def reranked_average_linkage(
    vectors: npt.NDArray[np.float32],
    edges: Edges,
    threshold: float,
    jaccard: npt.NDArray[np.float32],
    weight: float = 0.4,
    lone: LoneFaces | None = None,
    scales: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.int64]:
    """Average linkage (see ``average_linkage``) in which linked faces that share their k-reciprocal
    neighbourhood (``jaccard``, one per edge, from ``reciprocal_jaccard``) count as closer, by
    ``reranking_bonus``. Edges propose merges by their re-ranked distance, and the mean over every cross
    pair, from the templates, less the bonuses of the pairs linked, must be within ``threshold``. As pairs
    are never pushed apart, a person with hundreds of photos, whose neighbourhoods cannot all overlap,
    groups at least as with plain average linkage; two look-alikes, who rarely share a neighbourhood, gain
    little. With ``lone``, a face still on its own merges only under that stricter rule, relative to each
    face's ``scales`` (``local_scales``, which ``lone`` requires)."""
    if lone is not None and scales is None:
        raise ValueError("the lone-face bars need each face's local scale")
    sources, targets, distances = edges
    reranked = np.asarray(distances, dtype=np.float64) - reranking_gain(distances, jaccard, weight)
    bonus = reranking_bonus(edges, jaccard, weight)
    bars = None if lone is None or scales is None else (lone, scales)
    return _merge_by_mean_distance(vectors, sources, targets, reranked, threshold, bonus, bars)


def reranking_gain(
    distances: npt.NDArray[np.float32], jaccard: npt.NDArray[np.float32], weight: float
) -> npt.NDArray[np.float64]:
    """d - min(d, weight*d + (1-weight)*jaccard) per edge, 0 where nothing is shared (jaccard 1)."""
    plain = np.asarray(distances, dtype=np.float64)
    overlap = np.asarray(jaccard, dtype=np.float64)
    return np.where(overlap < 1.0, np.maximum(plain - (weight * plain + (1.0 - weight) * overlap), 0.0), 0.0)


def _merge_by_mean_distance(
    vectors: npt.NDArray[np.float32],
    sources: npt.NDArray[np.int64],
    targets: npt.NDArray[np.int64],
    proposals: npt.NDArray[np.float64],
    threshold: float,
    bonus: Bonus,
    bars: tuple[LoneFaces, npt.NDArray[np.float64]] | None = None,
) -> npt.NDArray[np.int64]:
    """The average-linkage loop: edges, by ``proposals`` shortest first, propose merging their faces'
    groups, which merge if the mean distance over every cross pair, less the ``bonus`` of the pairs that
    have one, is within ``threshold`` (under ``bars``, lone-face bars and each face's scale, where one side
    is a single face). Labels are a member of each group."""
    templates = np.asarray(vectors, dtype=np.float64)
    norms = (templates**2).sum(axis=1)
    members: dict[int, list[int]] = {node: [node] for node in range(len(templates))}
    group = np.arange(len(templates), dtype=np.int64)
    for edge in np.argsort(proposals, kind="stable"):
        if proposals[edge] > threshold:
            break
        a, b = int(group[sources[edge]]), int(group[targets[edge]])
        if a == b:
            continue
        if len(members[a]) < len(members[b]):
            a, b = b, a
        pairs = len(members[a]) * len(members[b])
        plain = _cross_distance_sum(templates, norms, members[a], members[b]) / pairs
        taken = sum(taken for node in members[b] for other, taken in bonus.get(node, ()) if group[other] == a)
        reranked = plain - taken / pairs
        if bars is None or len(members[b]) > 1:
            allowed = reranked <= threshold
        else:
            lone, scales = bars
            scale = joint_scale(scales, members[b][0], members[a])
            allowed = lone.allows((len(members[a]), 1), plain, reranked, threshold, scale)
        if allowed:
            group[members[b]] = a
            members[a].extend(members.pop(b))
    return group


def _cross_distance_sum(
    templates: npt.NDArray[np.float64], norms: npt.NDArray[np.float64], left: list[int], right: list[int]
) -> float:
    """Sum of the distances between every face of ``left`` and every face of ``right``, by a matrix product
    (|x|^2 + |y|^2 - 2 x.y): a len(left) x len(right) matrix, never a len(left) x len(right) x dimension
    temporary (1.5 GB when 3,000 faces meet 1,000)."""
    squared = norms[left][:, None] + norms[right][None, :] - 2.0 * templates[left] @ templates[right].T
    return float(np.sqrt(np.maximum(squared, 0.0)).sum())


def _reciprocal(table: npt.NDArray[np.int64], count: int) -> npt.NDArray[np.int64]:
    """``table``'s rows (a neighbour table, each face first in its own row) keeping only the members whose
    own row holds the face: its k-reciprocal neighbours; the others become the sentinel ``count``."""
    faces = np.arange(count + 1)[:, None, None]
    mutual = (table[table] == faces).any(axis=2)
    return np.where(mutual & (table < count), table, count)


def _expanded_neighbourhoods(neighbours: npt.NDArray[np.int64], count: int) -> npt.NDArray[np.int64]:
    """Each face's k-reciprocal neighbourhood (itself included), joined by the smaller (k/2) reciprocal
    neighbourhood of any member when two thirds of that one is already in: a face's true match is often
    just outside its k nearest, and the members that agree with it bring it in. One row per face, members
    in increasing order, each once, padded with the sentinel ``count``."""
    selves = np.arange(count + 1)[:, None]
    half = max(1, round(neighbours.shape[1] / 2))
    full = _reciprocal(np.hstack([selves, neighbours]), count)
    small = _reciprocal(np.hstack([selves, neighbours[:, :half]]), count)
    candidates = small[full]  # (face, member, member's smaller neighbourhood)
    real = candidates < count
    inside = (candidates[:, :, :, None] == full[:, None, None, :]).any(axis=3) & real
    joins = inside.sum(axis=2) > 2 / 3 * real.sum(axis=2)
    joined = np.where(joins[:, :, None], candidates, count).reshape(count + 1, -1)
    rows = np.sort(np.hstack([full, joined]), axis=1)
    repeated = np.zeros(rows.shape, dtype=bool)
    repeated[:, 1:] = rows[:, 1:] == rows[:, :-1]
    return np.where(repeated, count, rows)[:count]


def _neighbourhood_weights(
    vectors: npt.NDArray[np.float32], members: npt.NDArray[np.int64], bandwidth: float
) -> SparseRows:
    """Each face's neighbourhood as weights summing to 1: exp(-distance^2 / ``bandwidth``) per member, so
    near members count more. Distances are taken a block of faces at a time (~16 MiB of float32)."""
    count, width = members.shape
    padded = np.vstack([vectors, np.zeros((1, vectors.shape[1]), vectors.dtype)]).astype(np.float32)
    valid = members < count
    weights = np.zeros(members.shape, dtype=np.float64)
    step = max(1, (1 << 22) // (width * vectors.shape[1]))
    for start in range(0, count, step):
        stop = min(count, start + step)
        squared = ((padded[members[start:stop]] - padded[start:stop, None, :]) ** 2).sum(axis=2)
        weights[start:stop] = np.exp(-squared / bandwidth)
    weights *= valid
    weights /= weights.sum(axis=1, keepdims=True)
    rows = np.repeat(np.arange(count), width)[valid.ravel()]
    return SparseRows.of(count, rows, members[valid], weights[valid])


def _average_over(weights: SparseRows, nearest: npt.NDArray[np.int64]) -> SparseRows:
    """Local query expansion: each face's weights become the mean of those of the faces in its row of
    ``nearest`` (itself first; the sentinel, an empty row, stands for no face and is not counted)."""
    count = weights.count
    receivers = np.repeat(np.arange(count), nearest.shape[1])
    owner, entries = weights.entries(nearest[:count].ravel())
    present = (nearest[:count] < count).sum(axis=1).astype(np.float64)
    rows = receivers[owner]
    return SparseRows.of(count, rows, weights.columns[entries], weights.values[entries] / present[rows])


def _shared_weight(
    weights: SparseRows, sources: npt.NDArray[np.int64], targets: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """For each pair (source, target), the sum over faces of the smaller of their two weights."""
    owners, keys, values = [], [], []
    for side in (sources, targets):
        owner, entries = weights.entries(side)
        owners.append(owner)
        keys.append(owner * (weights.count + 1) + weights.columns[entries])
        values.append(weights.values[entries])
    key, value, owner = np.concatenate(keys), np.concatenate(values), np.concatenate(owners)
    order = np.argsort(key, kind="stable")
    key, value, owner = key[order], value[order], owner[order]
    # A face is at most once in each row, so a key twice means a face weighted by both sides.
    pair = np.flatnonzero(key[1:] == key[:-1])
    smaller = np.minimum(value[pair], value[pair + 1])
    return np.bincount(owner[pair], weights=smaller, minlength=len(sources)).astype(np.float64)
