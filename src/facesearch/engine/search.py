"""Finding a probe's faces in the galleries: each collection's index is asked, the hits within the threshold
are merged, and each match is given its provenance (file, collection, box, when it was ingested)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facesearch.core.errors import ConflictError
from facesearch.core.records import AnalysedFace, LoadedImage
from facesearch.core.results import Match, ProbeResult
from facesearch.store.catalog.store import Catalog
from facesearch.store.consistency import CollectionIndexes
from facesearch.vision.distance import is_match


@dataclass(frozen=True)
class AnalysedProbe:
    """A probe image and its faces, analysed before any lock is taken (the expensive part of a search)."""

    image: LoadedImage
    faces: list[AnalysedFace]
    described_as: str
    """How results name it: its path, or "uploaded image"."""


def find_matches(
    catalog: Catalog,
    indexes: CollectionIndexes,
    faces: Sequence[AnalysedFace],
    chosen: Sequence[int],
    collection_ids: Sequence[int],
    top_k: int,
    threshold: float,
    *,
    exhaustive: bool = False,
    same_person: Callable[[float, str], float | None] = lambda _, __: None,
) -> list[ProbeResult]:
    """The matches of each chosen face, nearest first, at most ``top_k`` each (no audit: callers record what
    they did with them); ``exhaustive`` compares every face even in collections with an approximate index;
    ``same_person`` gives each match its calibrated score from its distance and its templates' recipe."""
    recipes = catalog.collection_recipes()
    recipe_of_face: dict[int, str] = {}
    per_face: list[list[tuple[float, int]]] = [[] for _ in chosen]
    for collection_id in collection_ids:
        queries = probe_templates(faces, chosen, recipes.get(collection_id, ""))
        distances, ids = indexes.index(collection_id).search(queries, top_k, exhaustive=exhaustive)
        recipe_of_face.update((int(i), recipes.get(collection_id, "")) for i in ids.ravel() if i >= 0)
        for row, hits in enumerate(per_face):
            hits.extend(
                (float(d), int(i))
                for d, i in zip(distances[row], ids[row], strict=True)
                if i >= 0 and is_match(float(d), threshold)
            )
    best = [sorted(hits)[:top_k] for hits in per_face]
    details = catalog.face_details(i for hits in best for _, i in hits)
    results = []
    for position, hits in zip(chosen, best, strict=True):
        matches = [
            Match(
                probe_face=position,
                distance=round(distance, 4),
                face_id=face_id,
                image_id=details[face_id].image_id,
                collection=details[face_id].collection,
                image_path=details[face_id].image_path,
                content_id=details[face_id].content_id,
                box=details[face_id].box,
                ingested_at=details[face_id].ingested_at,
                same_person=_rounded(same_person(distance, recipe_of_face[face_id])),
            )
            for distance, face_id in hits
            if face_id in details
        ]
        detection = faces[position].detection
        results.append(ProbeResult(position, detection.box, matches, round(detection.score, 4)))
    return results


def probe_templates(faces: Sequence[AnalysedFace], chosen: Sequence[int], recipe: str) -> npt.NDArray[np.float32]:
    """The chosen faces' templates of a collection's recipe: templates of two recipes are never compared."""
    try:
        return np.vstack([faces[i].template(recipe) for i in chosen])
    except ValueError:
        raise ConflictError(
            f"a collection's templates were re-embedded with recipe {recipe} while the probe was analysed; search again"
        ) from None


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 4)
