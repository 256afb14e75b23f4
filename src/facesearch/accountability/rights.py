"""Subject rights answered from one probe photo (processed in memory, never stored) or from ids:
access (which of our photos show me, why, until when), erasure (with a receipt) and objection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from facesearch.core.errors import DataFolderError, InvalidValueError
from facesearch.core.records import Box
from facesearch.core.settings import TEMPLATE_RECIPES
from facesearch.engine.ciphers import OBJECTIONS_COLLECTION_ID
from facesearch.engine.engine import Engine
from facesearch.engine.search import AnalysedProbe
from facesearch.safeguards.audit import AccessRequestEvent, Actor, ErasureEvent, ObjectionEvent
from facesearch.safeguards.governance import require_purpose
from facesearch.store.catalog.store import ErasureReceipt, FaceDetails
from facesearch.vision.analysis import ImageSource

REFERENCE_FLAG = "--reference, or FACESEARCH_PURPOSE"
"""Where the command line states a rights request's reference."""

ACCESS_TOP_K = 10_000
"""Matches considered per collection and probe face: high, because a person is owed all of their data."""


@dataclass(frozen=True)
class HeldImage:
    """One image held about the person, with why and until when."""

    face_id: int
    image_id: int
    distance: float
    collection: str
    purpose: str
    lawful_basis: str
    source: str
    box: Box
    ingested_at: datetime
    delete_by: datetime


@dataclass(frozen=True)
class AccessReport:
    reference: str
    generated_at: datetime
    probe_sha256: str
    threshold: float
    held: list[HeldImage] = field(default_factory=list)


@dataclass(frozen=True)
class ErasureResult:
    receipt: ErasureReceipt
    objection_id: int | None = None


def closest_first(distances: dict[int, float], details: dict[int, FaceDetails]) -> list[tuple[float, FaceDetails]]:
    """(distance, details) of each face with details, closest first; ties (the same photo held in two
    collections) in face id order, so that records, which do not compare, are never compared."""
    return sorted(((distances[face_id], details[face_id]) for face_id in details), key=lambda m: (m[0], m[1].face_id))


class SubjectRights:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def analyse(self, probe: ImageSource | AnalysedProbe, *, for_objection: bool = False) -> AnalysedProbe:
        """The probe's faces (an image without one is an error), embedded for every recipe held, or with
        ``for_objection`` for every recipe there is: the service analyses before taking its lock."""
        if isinstance(probe, AnalysedProbe):
            return probe
        if not for_objection:
            return self.engine.analyse_probe(probe)
        # One protected template per recipe, so that any collection, whatever its recipe, recognises the face
        # (a recipe whose model cannot run here cannot make the faces it would have to recognise either).
        try:
            loaded, faces = self.engine.analyser.analyse_or_fail(probe, also=TEMPLATE_RECIPES)
        except DataFolderError:
            dlib_recipes = [recipe for recipe in TEMPLATE_RECIPES if recipe.startswith("dlib-")]
            loaded, faces = self.engine.analyser.analyse_or_fail(probe, also=dlib_recipes)
        return AnalysedProbe(loaded, faces, str(probe) if isinstance(probe, Path) else "uploaded image")

    def matching_faces(
        self, probe: ImageSource | AnalysedProbe, threshold: float | None = None
    ) -> tuple[str, float, list[tuple[float, FaceDetails]]]:
        """Every face in every collection that matches a face of the probe: (probe hash, threshold, matches)."""
        limit = self.engine.analyser.threshold(threshold)
        analysed = self.analyse(probe)  # embedded for every recipe held
        loaded, faces = analysed.image, analysed.faces
        collection_ids = sorted(self.engine.catalog.collection_names())
        # Exhaustive: an access or erasure request must find every face, whatever index a collection has.
        results = self.engine.find(faces, range(len(faces)), collection_ids, ACCESS_TOP_K, limit, exhaustive=True)
        best: dict[int, float] = {}
        for result in results:
            for match in result.matches:
                best[match.face_id] = min(best.get(match.face_id, match.distance), match.distance)
        return loaded.content_id, limit, closest_first(best, self.engine.catalog.face_details(best))

    def access(
        self,
        probe: ImageSource | AnalysedProbe,
        actor: Actor,
        reference: str,
        threshold: float | None = None,
        *,
        asked_as: str = REFERENCE_FLAG,
    ) -> AccessReport:
        """Everything held about the person in ``probe``; the probe itself is never stored. ``asked_as`` names
        where the caller states the reference (for the refusal when there is none)."""
        stated = require_purpose(reference, "subject access request", asked_as=asked_as)
        probe_hash, limit, matches = self.matching_faces(probe, threshold)
        held = [
            HeldImage(
                face_id=d.face_id,
                image_id=d.image_id,
                distance=distance,
                collection=d.collection,
                purpose=d.collection_purpose,
                lawful_basis=d.lawful_basis,
                source=d.image_path,
                box=d.box,
                ingested_at=d.ingested_at,
                delete_by=d.delete_by,
            )
            for distance, d in matches
        ]
        self.engine.catalog.audit.record(
            AccessRequestEvent(
                actor=actor,
                purpose=stated,
                probe_sha256=probe_hash,
                match_count=len(held),
                match_face_ids=[h.face_id for h in held],
            )
        )
        return AccessReport(stated, self.engine.clock(), probe_hash, limit, held)

    def erase(
        self,
        actor: Actor,
        reference: str,
        *,
        probe: ImageSource | AnalysedProbe | None = None,
        face_ids: Sequence[int] = (),
        image_ids: Sequence[int] = (),
        threshold: float | None = None,
        objection_agreement: str = "",
        asked_as: str = REFERENCE_FLAG,
    ) -> ErasureResult:
        """Remove every derived byte of the person: faces, vectors, catalog rows (and images left without
        faces), then shred the deleted bytes. With ``objection_agreement`` (where the person's explicit
        agreement is recorded), the probe's template is kept, encrypted, so that ingest skips them."""
        stated = require_purpose(reference, "erasure request", asked_as=asked_as)
        if probe is None and not face_ids and not image_ids:
            raise InvalidValueError("an erasure needs a probe photo, face ids or image ids")
        if objection_agreement and probe is None:
            raise InvalidValueError("an objection needs the probe photo whose template ingest must skip")
        catalog = self.engine.catalog
        probe_hash = ""
        wanted = set(face_ids) | set(catalog.face_ids_of_images(image_ids))
        if probe is not None:
            probe_hash, _, matches = self.matching_faces(probe, threshold)
            wanted |= {details.face_id for _, details in matches}
        receipt, removals = catalog.erase_faces(
            wanted,
            actor.name,
            stated,
            lambda receipt: ErasureEvent(
                actor=actor,
                purpose=stated,
                receipt_id=receipt.id,
                requested_by="probe" if probe else "ids",
                probe_sha256=probe_hash,
                faces_removed=receipt.faces_removed,
                images_removed=receipt.images_removed,
                face_ids=receipt.face_ids,
            ),
        )
        for collection_id, removal in removals.items():
            self.engine.indexes.remove(collection_id, removal.face_ids, removal.generation)
        self.engine.indexes.save()
        catalog.shred_deleted_bytes()
        self.engine.sweep_uploads()
        objection_id = self._object(probe, actor, objection_agreement) if objection_agreement and probe else None
        return ErasureResult(receipt, objection_id)

    def _object(self, probe: ImageSource | AnalysedProbe, actor: Actor, agreement: str) -> int:
        faces = self.analyse(probe, for_objection=True).faces
        largest = max(faces, key=lambda f: f.detection.box.area)
        recipes = (largest.recipe, *largest.templates)
        seal = self.engine.cipher(OBJECTIONS_COLLECTION_ID).seal_template
        return self.engine.catalog.add_protected_template(
            {recipe: seal(largest.template(recipe)) for recipe in recipes},
            agreement,
            actor.name,
            lambda template_id: ObjectionEvent(
                actor=actor, protected_template_id=template_id, agreement_reference=agreement
            ),
        )
