"""How grouping faces into people scales: the product's own path (catalog, decryption, neighbour graph
from the vector index, k-reciprocal re-ranking, re-ranked average linkage, writes) on synthetic identities
that behave like real faces.

    python -m bench.people_scale                       # 1k, 10k, 30k faces
    python -m bench.people_scale --sizes 1000 10000 100000

Synthetic identities: centres and per-face noise are Gaussian, scaled so that same-person and
different-person distances have the means measured on the dev set's LFW templates (from the cache of
bench/cluster_quality.py when present); their quantiles are printed beside the real ones.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.cluster_quality import CACHE
from facesearch.core.records import AnalysedFace, Box, DetectedFace, NewImage
from facesearch.core.settings import DEFAULT_TEMPLATE_VIEWS, Settings
from facesearch.engine.engine import Engine
from facesearch.people.algorithms import bcubed
from facesearch.people.service import People
from facesearch.safeguards.audit import Actor
from facesearch.safeguards.governance import CollectionSpec
from facesearch.safeguards.vault import generate_master_key

DIMENSION = 128
FACES_PER_PERSON = 5
REAL_SAME_MEAN, REAL_DIFFERENT_MEAN = 0.42, 0.88
"""Used when no cached dev embeddings exist (values measured on the dev set's LFW identities)."""
SPREAD_OF_VARIATION = 0.2
"""Log-normal sigma of each person's own variation, chosen so that the synthetic same-person distances
spread like the real ones (compare the quantiles the bench prints)."""
ACTOR = Actor("people-scale-bench")


def real_distances() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    cache = Path(CACHE.format(views=DEFAULT_TEMPLATE_VIEWS))  # the default templates' dev-set cache
    if not cache.exists():
        return None
    import json

    images = json.loads(cache.read_text())["images"]
    by_person: dict[str, list[npt.NDArray[np.float64]]] = {}
    for key, item in images.items():
        if item["embedding"] is not None:
            by_person.setdefault(key.split("/")[0], []).append(np.asarray(item["embedding"]))
    same = [float(np.linalg.norm(v[0] - v[1])) for v in by_person.values() if len(v) >= 2]
    firsts = [v[0] for v in by_person.values()]
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(firsts), size=(len(same), 2))
    different = [float(np.linalg.norm(firsts[a] - firsts[b])) for a, b in pairs if a != b]
    return np.array(same), np.array(different)


def synthetic(
    faces: int, same_mean: float, different_mean: float, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Faces of ``faces // FACES_PER_PERSON`` identities with the given mean distances."""
    rng = np.random.default_rng(seed)
    people = max(1, faces // FACES_PER_PERSON)
    noise = same_mean / math.sqrt(2 * DIMENSION)  # E|n1 - n2| for Gaussian noise of this sigma
    spread = math.sqrt(max(different_mean**2 - same_mean**2, 1e-6) / (2 * DIMENSION))
    centres = rng.normal(0.0, spread, size=(people, DIMENSION))
    labels = np.arange(faces) % people
    # Some people vary more between photos than others (lighting, age, pose): a per-person noise scale.
    scale = np.exp(rng.normal(0.0, SPREAD_OF_VARIATION, size=people))[labels, None]
    vectors = centres[labels] + rng.normal(0.0, noise, size=(faces, DIMENSION)) * scale
    return vectors.astype(np.float32), labels.astype(np.int64)


def quantiles(values: npt.NDArray[np.float64]) -> str:
    return " / ".join(f"{q:.2f}" for q in np.quantile(values, [0.05, 0.5, 0.95]))


def run(size: int, same_mean: float, different_mean: float) -> tuple[float, float, float, float, float]:
    vectors, labels = synthetic(size, same_mean, different_mean)
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine.init(Settings(data_dir=Path(folder), master_key=generate_master_key()))
        spec = CollectionSpec.parse(
            "scale", "Scale benchmark of grouping into people", "consent", "explicit-consent", "1y", people_allowed=True
        )
        engine.create_collection(spec, ACTOR)
        collection_id = engine.catalog.collection_id("scale")
        engine.indexes.index(collection_id)  # opened before the first write, as ingest does
        seal = engine.cipher(collection_id).seal_template
        started = time.perf_counter()
        for start in range(0, size, 5000):
            batch = [
                NewImage(
                    f"{i:064x}",
                    f"/synthetic/{i}.jpg",
                    200,
                    200,
                    "JPEG",
                    1000,
                    [AnalysedFace(DetectedFace(Box(50, 50, 150, 150), 1.5, ((0.0, 0.0),) * 5), vectors[i], 100.0)],
                    engine.settings.recipe,
                )
                for i in range(start, min(size, start + 5000))
            ]
            added = engine.catalog.add_images(collection_id, batch, seal)
            engine.indexes.add(collection_id, added.ids, added.embeddings, added.generation)
        load_seconds = time.perf_counter() - started
        service = People(engine)
        started = time.perf_counter()
        service.cluster("scale", ACTOR)
        cluster_seconds = time.perf_counter() - started
        person_of = {
            face.face_id: person.id for person in service.list_people("scale") for face in service.show(person.id).faces
        }
        predicted = np.array([person_of.get(i + 1, -(i + 1)) for i in range(size)])
        precision, recall = bcubed(labels, predicted)
        engine.close()
    return load_seconds, cluster_seconds, precision, recall, float(len(set(predicted.tolist())))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 30000])
    args = parser.parse_args(argv)
    real = real_distances()
    same_mean, different_mean = (
        (float(real[0].mean()), float(real[1].mean())) if real is not None else (REAL_SAME_MEAN, REAL_DIFFERENT_MEAN)
    )
    vectors, _ = synthetic(2000, same_mean, different_mean, seed=1)
    same = np.array([np.linalg.norm(vectors[i] - vectors[i + 400]) for i in range(400)], dtype=np.float64)
    different = np.array([np.linalg.norm(vectors[i] - vectors[i + 1]) for i in range(0, 1600, 2)], dtype=np.float64)
    print("| distances (5% / median / 95%) | same person | different people |\n|---|---|---|")
    if real is not None:
        print(f"| dev set (LFW) | {quantiles(real[0])} | {quantiles(real[1])} |")
    print(f"| synthetic | {quantiles(same)} | {quantiles(different)} |\n")
    print("| faces | load (s) | group (s) | BCubed precision | BCubed recall | people |\n|---|---|---|---|---|---|")
    timings = []
    for size in args.sizes:
        load_seconds, cluster_seconds, precision, recall, people = run(size, same_mean, different_mean)
        timings.append((size, cluster_seconds))
        print(
            f"| {size:,} | {load_seconds:.1f} | {cluster_seconds:.1f} | {precision:.4f} | {recall:.4f} "
            f"| {people:,.0f} |",
            flush=True,
        )
    if len(timings) >= 2:
        sizes = np.log([t[0] for t in timings])
        seconds = np.log([t[1] for t in timings])
        print(f"\ngrouping time grows as faces^{np.polyfit(sizes, seconds, 1)[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
