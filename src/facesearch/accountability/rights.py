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
REVIEW_LIMIT = 50
"""Possible matches listed for review, closest first (a wide band in a large gallery holds many strangers)."""


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
    same_person: float | None = None
    """Estimated probability that this is the person (``vision/calibration.py``); None when uncalibrated."""


@dataclass(frozen=True)
class AccessReport:
    reference: str
    generated_at: datetime
    probe_sha256: str
    threshold: float
    held: list[HeldImage] = field(default_factory=list)
    review_threshold: float = 0.0
    to_review: list[HeldImage] = field(default_factory=list)
    """Possible matches, beyond ``threshold`` and within ``review_threshold``, closest first: the person answering
    looks at each and confirms those that show the person (an erasure then takes the confirmed face ids)."""
    review_not_listed: int = 0
    """Possible matches beyond the ``REVIEW_LIMIT`` closest, not listed."""


@dataclass(frozen=True)
class ErasureResult:
    receipt: ErasureReceipt
    objection_id: int | None = None
    confirmed_face_ids: list[int] = field(default_factory=list)
    """Possible matches that the person answering confirmed, erased with the rest."""
    left_to_review: list[HeldImage] = field(default_factory=list)
    """Possible matches not confirmed, so not erased: look at them and erase those that show the person."""


@dataclass(frozen=True)
class Candidates:
    """What a probe finds in every collection: the faces within the threshold and the possible matches."""

    probe_sha256: str
    threshold: float
    matches: list[tuple[float, FaceDetails]]
    review_threshold: float
    to_review: list[tuple[float, FaceDetails]]
    review_not_listed: int


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

    def matching_faces(self, probe: ImageSource | AnalysedProbe, threshold: float | None = None) -> Candidates:
        """Every face in every collection that matches a face of the probe, and the possible matches beyond the
        threshold, within the setting ``rights_review_threshold``."""
        collection_ids = sorted(self.engine.catalog.collection_names())
        # The threshold follows the gallery's size, as a search's does: at 0.6 a thousand faces hold about eleven
        # strangers per probe face, whom an erasure would erase. The rest, up to the review threshold, is listed for
        # the person answering to confirm.
        given = None if threshold is None else self.engine.analyser.threshold(threshold)
        limit = self.engine.operating_point(collection_ids, given).threshold
        wide = max(limit, self.engine.settings.rights_review_threshold)
        analysed = self.analyse(probe)  # embedded for every recipe held
        loaded, faces = analysed.image, analysed.faces
        # Exhaustive: an access or erasure request must find every face, whatever index a collection has.
        results = self.engine.find(faces, range(len(faces)), collection_ids, ACCESS_TOP_K, wide, exhaustive=True)
        best: dict[int, float] = {}
        for result in results:
            for match in result.matches:
                best[match.face_id] = min(best.get(match.face_id, match.distance), match.distance)
        within = {face_id: d for face_id, d in best.items() if d <= limit}
        beyond = sorted((d, face_id) for face_id, d in best.items() if d > limit)
        listed = {face_id: d for d, face_id in beyond[:REVIEW_LIMIT]}
        details = self.engine.catalog.face_details(within)
        review_details = self.engine.catalog.face_details(listed)
        return Candidates(
            loaded.content_id,
            limit,
            closest_first(within, details),
            wide,
            closest_first(listed, review_details),
            len(beyond) - len(listed),
        )

    def _held(self, matches: list[tuple[float, FaceDetails]]) -> list[HeldImage]:
        catalog = self.engine.catalog
        recipes = {
            name: catalog.collection_recipe(catalog.collection_id(name)) for name in {d.collection for _, d in matches}
        }
        return [
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
                same_person=_rounded(self.engine.same_person(distance, recipes[d.collection])),
            )
            for distance, d in matches
        ]

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
        found = self.matching_faces(probe, threshold)
        held = self._held(found.matches)
        to_review = self._held(found.to_review)
        self.engine.catalog.audit.record(
            AccessRequestEvent(
                actor=actor,
                purpose=stated,
                probe_sha256=found.probe_sha256,
                match_count=len(held),
                match_face_ids=[h.face_id for h in held],
                review_face_ids=[h.face_id for h in to_review],
            )
        )
        return AccessReport(
            stated,
            self.engine.clock(),
            found.probe_sha256,
            found.threshold,
            held,
            found.review_threshold,
            to_review,
            found.review_not_listed,
        )

    def erase(
        self,
        actor: Actor,
        reference: str,
        *,
        probe: ImageSource | AnalysedProbe | None = None,
        face_ids: Sequence[int] = (),
        image_ids: Sequence[int] = (),
        threshold: float | None = None,
        confirmed: Sequence[int] = (),
        objection_agreement: str = "",
        asked_as: str = REFERENCE_FLAG,
        confirm_as: str = "--confirm",
    ) -> ErasureResult:
        """Remove every derived byte of the person: faces, vectors, catalog rows (and images left without
        faces), then shred the deleted bytes. ``confirmed`` are possible matches of the probe (beyond its
        threshold, listed by an access request) that the person answering confirmed show the person; those not
        confirmed are left and returned for review. With ``objection_agreement`` (where the person's explicit
        agreement is recorded), the probe's template is kept, encrypted, so that ingest skips them."""
        stated = require_purpose(reference, "erasure request", asked_as=asked_as)
        if probe is None and not face_ids and not image_ids:
            raise InvalidValueError("an erasure needs a probe photo, face ids or image ids")
        if confirmed and probe is None:
            raise InvalidValueError(
                f"{confirm_as} confirms possible matches of a probe photo: give the photo, or name the faces as "
                "face ids"
            )
        if objection_agreement and probe is None:
            raise InvalidValueError("an objection needs the probe photo whose template ingest must skip")
        catalog = self.engine.catalog
        probe_hash = ""
        wanted = set(face_ids) | set(catalog.face_ids_of_images(image_ids))
        left: list[tuple[float, FaceDetails]] = []
        if probe is not None:
            found = self.matching_faces(probe, threshold)
            probe_hash = found.probe_sha256
            candidates = {details.face_id for _, details in found.to_review + found.matches}
            unknown = sorted(set(confirmed) - candidates)
            if unknown:
                raise InvalidValueError(
                    f"face(s) {', '.join(map(str, unknown))} confirmed by {confirm_as} are not possible matches of "
                    f"this photo (beyond distance {found.threshold}, within {found.review_threshold}); run an "
                    "access request with the same photo and confirm only faces it lists for review"
                )
            wanted |= {details.face_id for _, details in found.matches} | set(confirmed)
            left = [(d, details) for d, details in found.to_review if details.face_id not in wanted]
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
                confirmed_face_ids=sorted(confirmed),
            ),
        )
        for collection_id, removal in removals.items():
            self.engine.indexes.remove(collection_id, removal.face_ids, removal.generation)
        self.engine.indexes.save()
        catalog.shred_deleted_bytes()
        self.engine.sweep_uploads()
        objection_id = self._object(probe, actor, objection_agreement) if objection_agreement and probe else None
        return ErasureResult(receipt, objection_id, sorted(confirmed), self._held(left))

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


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 4)
