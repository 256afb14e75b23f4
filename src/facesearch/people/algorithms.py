"""Grouping maths on a sparse neighbour graph: pure functions, no models, no storage."""

from __future__ import annotations

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
    members: dict[int, list[int]] = {node: [node] for node in range(len(vectors))}
    group = list(range(len(vectors)))
    for source, target, distance in sorted(zip(sources, targets, distances, strict=True), key=lambda e: e[2]):
        if distance > threshold:
            break
        a, b = group[int(source)], group[int(target)]
        if a == b:
            continue
        left, right = vectors[members[a]], vectors[members[b]]
        gaps = np.sqrt(np.maximum(((left[:, None, :] - right[None, :, :]) ** 2).sum(axis=2), 0.0))
        if float(gaps.mean()) <= threshold:
            if len(members[a]) < len(members[b]):
                a, b = b, a
            for node in members[b]:
                group[node] = a
            members[a].extend(members.pop(b))
    return np.asarray(group, dtype=np.int64)


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
