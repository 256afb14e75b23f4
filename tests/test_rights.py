"""Subject rights: access and erasure from one probe that is never stored, receipts, objection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import ACTOR, FIXTURES, PURPOSE, news_spec
from facesearch.accountability.rights import SubjectRights
from facesearch.cli.html_report import write_access_report
from facesearch.core.errors import InvalidValueError, NotFoundError, RefusedError
from facesearch.core.settings import DEFAULT_TEMPLATE_RECIPE
from facesearch.engine.engine import Engine
from facesearch.vision.api import embed_faces


def every_file_bytes(folder: Path) -> bytes:
    """Everything on disk in the data folder: database, WAL and journal files, indexes, anything else."""
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


@pytest.fixture
def indexed(engine: Engine, identity_files: dict[str, list[Path]], tmp_path: Path) -> dict[str, list[Path]]:
    """Every identity photo but each identity's last (the probe) ingested into 'news'."""
    engine.create_collection(news_spec(), ACTOR)
    gallery: dict[str, list[Path]] = {}
    for identity, paths in identity_files.items():
        folder = tmp_path / "gallery" / identity
        folder.mkdir(parents=True)
        for path in paths[:-1]:
            shutil.copy(path, folder / path.name)
        gallery[identity] = sorted(folder.iterdir())
    engine.ingest("news", [tmp_path / "gallery"], ACTOR)
    return gallery


def test_access_lists_exactly_the_persons_images_and_why(
    engine: Engine, indexed: dict[str, list[Path]], identity_files: dict[str, list[Path]], tmp_path: Path
) -> None:
    rights = SubjectRights(engine)
    for identity, paths in identity_files.items():
        report = rights.access(paths[-1], ACTOR, f"SAR {identity}")
        assert sorted(Path(h.source).name for h in report.held) == sorted(p.name for p in indexed[identity])
        for held in report.held:
            assert held.collection == "news" and held.lawful_basis == "legitimate-interests"
            assert held.purpose == news_spec().purpose
            assert (held.delete_by - held.ingested_at).days == 730
    page, data = write_access_report(report, tmp_path / "sar")
    html = page.read_text()
    assert html.count("<tr>") == len(report.held) + 1 and "data:image/jpeg;base64," in html
    assert len(json.loads(data.read_text())["held"]) == len(report.held)


def test_the_probe_is_never_stored_only_its_hash_is_audited(
    engine: Engine, indexed: dict[str, list[Path]], identity_files: dict[str, list[Path]]
) -> None:
    probe = next(iter(identity_files.values()))[-1]
    (probe_face,) = embed_faces(probe)
    images_before = engine.catalog.counts()
    report = SubjectRights(engine).access(probe, ACTOR, "SAR 7")
    assert engine.catalog.counts() == images_before
    (entry,) = engine.catalog.audit.entries(action="access-request")
    assert entry.details["probe_sha256"] == report.probe_sha256
    assert entry.details["match_face_ids"] == [h.face_id for h in report.held]
    engine.close()
    assert probe_face.embedding.tobytes() not in every_file_bytes(engine.settings.data_dir)
    assert probe.read_bytes()[:4096] not in every_file_bytes(engine.settings.data_dir)


def test_erasure_removes_every_derived_byte_and_issues_a_receipt(
    engine: Engine, indexed: dict[str, list[Path]], identity_files: dict[str, list[Path]]
) -> None:
    _identity, paths = next(iter(identity_files.items()))
    rights = SubjectRights(engine)
    held = rights.access(paths[-1], ACTOR, "SAR 1").held
    erased_ids = [h.face_id for h in held]
    collection_id = engine.catalog.collection_id("news")
    unseal = engine.cipher(collection_id).open_template
    _ids, templates = engine.catalog.embeddings(collection_id, unseal, erased_ids)
    sealed_before = set(engine.catalog.sealed_embeddings())

    result = rights.erase(ACTOR, "erasure request 1", probe=paths[-1])

    receipt = result.receipt
    assert receipt.faces_removed == len(erased_ids) and receipt.face_ids == sorted(erased_ids)
    assert receipt.by_collection == {"news": len(erased_ids)} and receipt.reference == "erasure request 1"
    assert engine.search(paths[-1], ACTOR, PURPOSE).results[0].matches == []
    (entry,) = engine.catalog.audit.entries(action="erasure")
    assert entry.details["receipt_id"] == receipt.id
    gone = sealed_before - set(engine.catalog.sealed_embeddings())
    assert len(gone) == len(erased_ids)
    engine.close()
    on_disk = every_file_bytes(engine.settings.data_dir)
    for template in templates:
        assert template.tobytes() not in on_disk
    for blob in gone:
        assert blob[12:44] not in on_disk  # the ciphertext as it was stored is gone too (secure_delete, WAL)


def test_erasure_by_face_and_image_ids(engine: Engine, indexed: dict[str, list[Path]]) -> None:
    rights = SubjectRights(engine)
    collection_id = engine.catalog.collection_id("news")
    first_face = int(engine.catalog.face_ids(collection_id)[0])
    assert rights.erase(ACTOR, "request 2", face_ids=[first_face]).receipt.faces_removed == 1
    image = engine.catalog.image_ids(collection_id)[0]
    assert rights.erase(ACTOR, "request 3", image_ids=[image]).receipt.images_removed == 1
    assert first_face not in engine.indexes.index(collection_id).ids()
    with pytest.raises(NotFoundError, match="already erased"):
        rights.erase(ACTOR, "request 4", face_ids=[first_face])


def test_rights_requests_need_a_reference_and_something_to_erase(engine: Engine) -> None:
    rights = SubjectRights(engine)
    with pytest.raises(RefusedError, match="purpose or case reference") as refused:
        rights.erase(ACTOR, "", face_ids=[1])
    assert "--reference" in refused.value.message and "--purpose" not in refused.value.message
    with pytest.raises(RefusedError, match="the form field 'reference'"):
        rights.access(FIXTURES / "identities" / "obama__1.jpg", ACTOR, " ", asked_as="the form field 'reference'")
    with pytest.raises(InvalidValueError, match="needs a probe photo, face ids or image ids"):
        rights.erase(ACTOR, "request 5")


def test_an_objector_is_not_indexed_again_and_each_skip_is_recorded(
    engine: Engine, indexed: dict[str, list[Path]], identity_files: dict[str, list[Path]], tmp_path: Path
) -> None:
    identity, paths = next(iter(identity_files.items()))
    result = SubjectRights(engine).erase(
        ACTOR, "erasure and objection 9", probe=paths[-1], objection_agreement="signed form 9, 2026-11-24"
    )
    assert result.objection_id is not None
    (objection,) = engine.catalog.audit.entries(action="objection")
    assert objection.details["agreement_reference"] == "signed form 9, 2026-11-24"

    again = engine.ingest("news", [tmp_path / "gallery"], ACTOR)
    skipped = len(indexed[identity])
    assert again.faces_skipped_by_objection == skipped and again.faces_added == 0
    skips = engine.catalog.audit.entries(action="objection-skip")
    assert len(skips) == skipped and all(set(s.details) == {"source_path", "faces_skipped"} for s in skips)
    assert engine.search(paths[-1], ACTOR, PURPOSE).results[0].matches == []
    # Other people are still indexed.
    _other_identity, other_paths = list(identity_files.items())[1]
    assert engine.search(other_paths[-1], ACTOR, PURPOSE).results[0].matches


def test_the_protected_template_is_encrypted(
    engine: Engine, indexed: dict[str, list[Path]], identity_files: dict[str, list[Path]]
) -> None:
    probe = next(iter(identity_files.values()))[-1]
    SubjectRights(engine).erase(ACTOR, "objection 10", probe=probe, objection_agreement="form 10")
    (sealed,) = engine.catalog.protected_templates(DEFAULT_TEMPLATE_RECIPE)
    (face,) = embed_faces(probe)
    assert face.embedding.tobytes() not in sealed
    assert np.allclose(engine.cipher(0).open_template(sealed), face.embedding)
