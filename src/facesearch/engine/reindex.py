"""Re-embedding a collection with another template recipe (``facesearch reindex``).

Every face is re-embedded from its source photo (or its kept upload) at the box and five points stored with it, so
no face is detected anew, lost or duplicated; the photo must still be the one indexed (same sha256). Templates are
kept aside, a batch of images per transaction (``store/catalog/reindex.py``); when every face has one, a single
transaction replaces the collection's templates and recipe, then its vector index is rebuilt. Killed at any point,
the collection stays whole on its old recipe and consistent with its index; run again, it re-embeds only what is
left. A face whose photo is gone or changed cannot be re-embedded: the collection then keeps its old recipe (all of
its templates comparable) and the report names each such face, to restore its photo or remove its image.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from facesearch.core.errors import FacesearchError, ImageError
from facesearch.core.records import Embedding
from facesearch.core.results import ReindexReport, UnavailableFace
from facesearch.engine.ingest import Progress
from facesearch.safeguards.audit import Actor, ConfigurationEvent
from facesearch.safeguards.vault import CollectionCipher
from facesearch.store.catalog import reindex as pending
from facesearch.store.catalog.reindex import FaceToReindex
from facesearch.store.catalog.store import Catalog
from facesearch.store.consistency import CollectionIndexes
from facesearch.vision.alignment import scale_box
from facesearch.vision.analysis import FaceAnalyser
from facesearch.vision.recipes import FoundFace, recipe_named, recipe_templates

ReadImage = Callable[[int], bytes]
ROUNDS = 3
"""Times the collection is gone through before giving up on switching it, when another process keeps adding faces."""


def reindex_collection(
    catalog: Catalog,
    indexes: CollectionIndexes,
    analyser: FaceAnalyser,
    cipher: CollectionCipher,
    read_image: ReadImage,
    collection: str,
    recipe: str,
    actor: Actor,
    progress: Progress,
    batch_size: int,
) -> ReindexReport:
    """Re-embed ``collection`` with ``recipe`` and switch it when every face was re-embedded; the templates of
    ``batch_size`` images are written per transaction (a killed reindex redoes at most those)."""
    started = time.perf_counter()
    target = recipe_named(recipe)
    collection_id = catalog.collection_id(collection)
    current = catalog.collection_recipe(collection_id)
    report = ReindexReport(collection, current, target.name, faces=len(catalog.face_ids(collection_id)))
    if current == target.name:
        report.switched = True
        return report
    report.already_done = pending.start(catalog, collection_id, target.name)
    for _ in range(ROUNDS):
        _re_embed_waiting(
            catalog, analyser, cipher, read_image, collection_id, target.name, report, progress, batch_size
        )
        fields = {
            "from_recipe": current,
            "to_recipe": target.name,
            "faces": report.faces,
            "re_embedded": report.re_embedded,
            "already_done": report.already_done,
        }
        if report.unavailable:
            fields["unavailable_face_ids"] = [face.face_id for face in report.unavailable]
            event = ConfigurationEvent(actor=actor, collection=collection, change="reindex-incomplete", fields=fields)
            catalog.audit.record(event)
            break
        event = ConfigurationEvent(actor=actor, collection=collection, change="templates-reindexed", fields=fields)
        if pending.switch(catalog, collection_id, target.name, event) is not None:
            report.switched = True
            indexes.rebuild(collection_id)
            catalog.shred_deleted_bytes()
            break
        report.faces = len(catalog.face_ids(collection_id))  # faces were added meanwhile: re-embed them too
    report.seconds = time.perf_counter() - started
    return report


def _re_embed_waiting(
    catalog: Catalog,
    analyser: FaceAnalyser,
    cipher: CollectionCipher,
    read_image: ReadImage,
    collection_id: int,
    recipe: str,
    report: ReindexReport,
    progress: Progress,
    batch_size: int,
) -> None:
    """Re-embed the collection's faces that have no template of ``recipe`` aside yet, ``batch_size`` images per
    transaction, counting into ``report``."""
    progress.start(pending.waiting_count(catalog, collection_id, recipe))
    after_image = 0
    try:
        while batch := pending.waiting_faces(catalog, collection_id, recipe, batch_size, after_image):
            after_image = batch[-1].image_id
            sealed: list[tuple[int, bytes]] = []
            for image_id in sorted({face.image_id for face in batch}):
                faces = [face for face in batch if face.image_id == image_id]
                try:
                    templates = _re_embed(analyser, read_image, faces, recipe)
                except FacesearchError as problem:
                    report.unavailable.extend(
                        UnavailableFace(f.face_id, f.image_id, f.source_path, problem.message) for f in faces
                    )
                else:
                    sealed.extend((f.face_id, cipher.seal_template(t)) for f, t in zip(faces, templates, strict=True))
                for face in faces:
                    progress.advance(Path(face.source_path))
            report.re_embedded += pending.keep_templates(catalog, recipe, sealed)
    finally:
        progress.finish()


def _re_embed(
    analyser: FaceAnalyser, read_image: ReadImage, faces: list[FaceToReindex], recipe: str
) -> list[Embedding]:
    """Templates of ``recipe`` of one image's ``faces``, at their stored boxes and points."""
    first = faces[0]
    loaded = analyser.load(read_image(first.image_id), first.source_path)
    if loaded.content_id != first.content_id:
        raise ImageError(f"{first.source_path} is no longer the photo that was indexed (its content changed)")
    # Boxes and points are stored in full-resolution pixels; the photo is analysed as ingest decoded it.
    scale = loaded.scale
    found = [
        FoundFace(scale_box(f.box, 1 / scale), tuple((x / scale, y / scale) for x, y in f.landmarks)) for f in faces
    ]
    min_face_side = analyser.options.min_face_side
    templates, _ = recipe_templates(loaded.pixels, found, analyser.models, recipe_named(recipe), min_face_side)
    return list(templates)
