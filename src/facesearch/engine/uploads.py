"""Ingest of uploaded images (name as sent, bytes): each is checked, analysed in this process and kept,
encrypted, beside the catalog (``store/uploads.py``) so that its matches can be shown. Analysis
(``prepare_uploads``) and writing (``write_uploads``) are apart, so that the service analyses without its lock."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from facesearch.core.errors import (
    ConflictError,
    FacesearchError,
    NoFaceError,
    TooLargeError,
    TooManyFacesError,
    UnsupportedFormatError,
)
from facesearch.core.records import AnalysedFace, NewImage
from facesearch.core.results import FailedFile, IngestReport, UnsupportedFile, UploadedImage, UploadReport
from facesearch.core.settings import Settings
from facesearch.engine.batches import BatchWriter
from facesearch.engine.ciphers import Ciphers
from facesearch.store.catalog.store import Catalog
from facesearch.store.uploads import UploadStore, upload_source
from facesearch.vision.analysis import FaceAnalyser
from facesearch.vision.imaging import content_id_of, unsupported_advice


@dataclass
class PreparedUploads:
    """Uploads checked and analysed, not yet written: the service prepares them before taking its lock."""

    collection: str
    report: IngestReport
    analysed: list[tuple[NewImage, bytes]] = field(default_factory=list)
    """Each new image with the bytes it came from (kept, encrypted, when it is written)."""
    names: dict[str, str] = field(default_factory=dict)
    """Name as sent per content id, of every upload that is or will be held."""
    started: float = field(default_factory=time.perf_counter)


def prepare_uploads(
    settings: Settings,
    catalog: Catalog,
    analyser: FaceAnalyser,
    collection: str,
    uploads: Sequence[tuple[str, bytes]],
    *,
    subject_id: int | None,
    strict: bool,
    only_face_above: float | None = None,
) -> PreparedUploads:
    """Check and analyse ``uploads`` (see ``Engine.ingest_uploads``); reads the catalog, writes nothing."""
    prepared = PreparedUploads(collection, IngestReport(collection=collection, files_seen=len(uploads)))
    report = prepared.report
    # Content is checked before analysis, for every upload in one query: a photo already held costs a
    # hash, not a detection and an embedding.
    content_ids = [content_id_of(data) for _, data in uploads]
    collection_id = catalog.collection_id(collection)
    held = catalog.held_contents(collection_id, content_ids)
    recipe = catalog.collection_recipe(collection_id)
    for (name, data), content_id in zip(uploads, content_ids, strict=True):
        if content_id in prepared.names or content_id in held:
            if strict:
                raise ConflictError(f"{name} is already held in {collection}; send a different photo")
            report.skipped_already_indexed += 1
            prepared.names.setdefault(content_id, name)
            continue
        try:
            image = _analyse_upload(settings, analyser, name, data, subject_id, only_face_above, recipe)
        except UnsupportedFormatError as problem:
            if strict:
                raise
            report.unsupported.append(
                UnsupportedFile(name, problem.image_format, unsupported_advice(problem.image_format))
            )
            continue
        except FacesearchError as problem:
            if strict:
                raise
            report.failed.append(FailedFile(name, problem.message))
            continue
        prepared.analysed.append((image, data))
        prepared.names[image.content_id] = name
    return prepared


def write_uploads(
    catalog: Catalog,
    store: UploadStore,
    ciphers: Ciphers,
    writer: BatchWriter,
    prepared: PreparedUploads,
    *,
    strict: bool,
) -> UploadReport:
    """Keep the prepared uploads' bytes, encrypted, and write their images in one batch. Content written by
    another upload since they were prepared is skipped (or refused, ``strict``)."""
    collection_id = writer.collection_id
    report = prepared.report
    held = catalog.held_contents(collection_id, [image.content_id for image, _ in prepared.analysed])
    batch: list[NewImage] = []
    for image, data in prepared.analysed:
        if image.content_id in held:
            if strict:
                name = prepared.names[image.content_id]
                raise ConflictError(f"{name} is already held in {report.collection}; send a different photo")
            report.skipped_already_indexed += 1
            continue
        store.put(ciphers(collection_id), image.content_id, data)
        batch.append(image)
    writer.write(batch)
    report.seconds = time.perf_counter() - prepared.started
    images = [
        UploadedImage(name, catalog.image_id_of(collection_id, content_id), content_id)
        for content_id, name in prepared.names.items()
    ]
    return UploadReport(report, images)


def _analyse_upload(
    settings: Settings,
    analyser: FaceAnalyser,
    name: str,
    data: bytes,
    subject_id: int | None,
    only_face_above: float | None,
    recipe: str,
) -> NewImage:
    if len(data) > settings.max_file_bytes:
        raise TooLargeError(
            f"{name}: {len(data):,} bytes is over the {settings.max_file_bytes:,}-byte limit; "
            "send a smaller image (FACESEARCH_MAX_FILE_BYTES sets the limit)"
        )
    if subject_id is None:
        loaded, faces = analyser.analyse(data, name, recipe=recipe)
    else:
        loaded, faces = analyser.analyse_or_fail(data, name, recipe=recipe)
        faces = [example_face(faces, name, only_face_above)]
    return NewImage(
        content_id=loaded.content_id,
        source_path=upload_source(name),
        width=loaded.width,
        height=loaded.height,
        format=loaded.format,
        byte_size=loaded.byte_size,
        faces=faces,
        embedder=recipe,
        subject_id=subject_id,
    )


def example_face(faces: list[AnalysedFace], name: str, only_face_above: float | None) -> AnalysedFace:
    """The face an enrolment example stands for: its largest, or, with ``only_face_above`` (a detection score),
    the one face scoring above it; no such face, or more than one, is refused, so no bystander is enrolled."""
    if only_face_above is None:
        return max(faces, key=lambda f: f.detection.box.area)
    sure = [face for face in faces if face.detection.score >= only_face_above]
    if not sure:
        raise NoFaceError(
            f"{name}: no face is found above the detection threshold; send a photo where the subject's face is "
            "clear and upright, or lower det_prob_threshold"
        )
    if len(sure) > 1:
        raise TooManyFacesError(
            f"{name}: {len(sure)} faces are found above the detection threshold, and an example must show exactly "
            "one, the subject's: crop the photo to the subject (or raise det_prob_threshold)"
        )
    return sure[0]
