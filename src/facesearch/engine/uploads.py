"""Ingest of uploaded images (name as sent, bytes): each is checked, analysed in this process and kept,
encrypted, beside the catalog (``store/uploads.py``) so that its matches can be shown."""

from __future__ import annotations

import time
from collections.abc import Sequence

from facesearch.core.errors import ConflictError, FacesearchError, TooLargeError, UnsupportedFormatError
from facesearch.core.records import NewImage
from facesearch.core.results import FailedFile, IngestReport, UnsupportedFile, UploadedImage, UploadReport
from facesearch.core.settings import Settings
from facesearch.engine.batches import BatchWriter
from facesearch.engine.ciphers import Ciphers
from facesearch.store.catalog.store import Catalog
from facesearch.store.uploads import UploadStore, upload_source
from facesearch.vision.analysis import FaceAnalyser
from facesearch.vision.imaging import content_id_of, unsupported_advice
from facesearch.vision.templates import template_recipe


def ingest_uploads(
    settings: Settings,
    catalog: Catalog,
    analyser: FaceAnalyser,
    store: UploadStore,
    ciphers: Ciphers,
    writer: BatchWriter,
    report: IngestReport,
    uploads: Sequence[tuple[str, bytes]],
    *,
    subject_id: int | None,
    strict: bool,
) -> UploadReport:
    """See ``Engine.ingest_uploads``."""
    started = time.perf_counter()
    collection_id = writer.collection_id
    batch: list[NewImage] = []
    names: dict[str, str] = {}
    # Content is checked before analysis, for every upload in one query: a photo already held costs a
    # hash, not a detection and an embedding.
    content_ids = [content_id_of(data) for _, data in uploads]
    held = catalog.held_contents(collection_id, content_ids)
    for (name, data), content_id in zip(uploads, content_ids, strict=True):
        if content_id in names or content_id in held:
            if strict:
                raise ConflictError(f"{name} is already held in {report.collection}; send a different photo")
            report.skipped_already_indexed += 1
            names.setdefault(content_id, name)
            continue
        try:
            image = _analyse_upload(settings, analyser, name, data, subject_id)
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
        store.put(ciphers(collection_id), image.content_id, data)
        batch.append(image)
        names[image.content_id] = name
    writer.write(batch)
    report.seconds = time.perf_counter() - started
    images = [
        UploadedImage(name, catalog.image_id_of(collection_id, content_id), content_id)
        for content_id, name in names.items()
    ]
    return UploadReport(report, images)


def _analyse_upload(
    settings: Settings, analyser: FaceAnalyser, name: str, data: bytes, subject_id: int | None
) -> NewImage:
    if len(data) > settings.max_file_bytes:
        raise TooLargeError(
            f"{name}: {len(data):,} bytes is over the {settings.max_file_bytes:,}-byte limit; "
            "send a smaller image (FACESEARCH_MAX_FILE_BYTES sets the limit)"
        )
    if subject_id is None:
        loaded, faces = analyser.analyse(data, name)
    else:
        loaded, faces = analyser.analyse_or_fail(data, name)
        faces = [max(faces, key=lambda f: f.detection.box.area)]
    return NewImage(
        content_id=loaded.content_id,
        source_path=upload_source(name),
        width=loaded.width,
        height=loaded.height,
        format=loaded.format,
        byte_size=loaded.byte_size,
        faces=faces,
        embedder=template_recipe(analyser.models.embedder.name, settings.template_views),
        subject_id=subject_id,
    )
