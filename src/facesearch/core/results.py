"""What the engine returns: plain, frozen data that the CLI prints and the API will serialise."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from facesearch.core.paths import utf8_text
from facesearch.core.records import Box


def to_plain(value: Any) -> Any:
    """A JSON-ready copy of a result (dataclasses, boxes, datetimes, tuples)."""
    if isinstance(value, Box):
        return value.as_list()
    if hasattr(value, "__dataclass_fields__"):
        return {key: to_plain(getattr(value, key)) for key in asdict(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {utf8_text(str(key)): to_plain(item) for key, item in value.items()}
    if isinstance(value, str):
        return utf8_text(value)  # a file name that is not UTF-8 must not make the JSON invalid
    return value


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    purpose: str
    lawful_basis: str
    biometric_condition: str
    retention_days: int
    created_at: datetime
    image_count: int
    face_count: int
    oldest_item_at: datetime | None = None
    people_allowed: bool = False
    template_recipe: str = ""
    """How its templates are made (``vision/recipes.py``); all of one recipe."""

    @property
    def next_purge_at(self) -> datetime | None:
        """When the oldest item falls out of the retention period (None while the collection is empty)."""
        return None if self.oldest_item_at is None else self.oldest_item_at + timedelta(days=self.retention_days)


@dataclass(frozen=True)
class FaceInfo:
    """A detected face as reported to a person: where it is and how sure the detector was."""

    box: Box
    score: float
    landmarks: tuple[tuple[float, float], ...]
    rotation: int


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold a search used and what it implies, from the measured false-match curve of its templates'
    recipe (``vision/calibration.py``)."""

    threshold: float
    gallery_size: int
    """Faces searched: every face of the collections the search covered."""
    chosen_by: str
    """``false-match target`` (the setting ``search_false_matches`` and the gallery size), ``threshold`` (given by
    the caller) or ``uncalibrated`` (no calibration for the recipe: the verification threshold)."""
    recipe: str
    wanted_false_matches: float | None = None
    """The wrong people per probe face asked for (None when the caller gave the threshold)."""
    false_match_rate: float | None = None
    """Share of different-person pairs within the threshold, as measured (None when uncalibrated)."""
    expected_false_matches: float | None = None
    """Wrong people expected within the threshold per probe face: gallery size x false-match rate."""
    extrapolated: bool = False
    """The threshold lies below the measured curve, where the rate is extrapolated (conservatively)."""
    prior: float | None = None
    """The prior of each match's ``same_person`` score (None when uncalibrated)."""

    def summary(self) -> str:
        """One sentence a person can read: the threshold, why, and the wrong matches it lets through."""
        searched = f"{self.gallery_size:,} face(s) searched"
        if self.expected_false_matches is None:
            given = "given" if self.chosen_by == "threshold" else "the verification threshold"
            return f"threshold {self.threshold} ({given}; no false-match curve for templates {self.recipe}), {searched}"
        rate = f"false-match rate {self.false_match_rate:.2g}"
        extrapolated = ", extrapolated below the measured curve, conservatively" if self.extrapolated else ""
        if self.chosen_by == "threshold":
            head = f"threshold {self.threshold} (given) over {searched} lets through about"
        else:
            head = (
                f"threshold {self.threshold}, chosen for {self.wanted_false_matches:g} wrong people per probe face "
                f"over {searched}: about"
            )
        score = f"; scores are the estimated chance of the same person at prior {self.prior:g}" if self.prior else ""
        return f"{head} {self.expected_false_matches:g} wrong people per probe face ({rate}{extrapolated}){score}"


@dataclass(frozen=True)
class Match:
    probe_face: int
    """Index of the probe's face this match is for (faces are numbered from 0, best detection first)."""
    distance: float
    face_id: int
    image_id: int
    collection: str
    image_path: str
    content_id: str
    box: Box
    ingested_at: datetime
    same_person: float | None = None
    """Estimated probability that this face is the probe's person, from the distance (at the operating point's
    prior); None when the templates' recipe has no calibration."""


@dataclass(frozen=True)
class ProbeResult:
    probe_face: int
    box: Box
    matches: list[Match]
    score: float = 0.0
    """The probe face's detection score."""


@dataclass(frozen=True)
class SearchResult:
    probe: str
    threshold: float
    top_k: int
    faces_in_probe: int
    results: list[ProbeResult]
    operating_point: OperatingPoint | None = None


@dataclass(frozen=True)
class Verification:
    distance: float
    threshold: float
    match: bool
    faces_in_a: int
    faces_in_b: int
    box_a: Box
    box_b: Box
    a_sha256: str = ""
    b_sha256: str = ""
    score_a: float = 0.0
    """Detection score of the face compared in ``a`` (and ``b``)."""
    score_b: float = 0.0


@dataclass(frozen=True)
class DetectionResult:
    image: str
    width: int
    height: int
    faces: list[FaceInfo]


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class UnsupportedFile:
    path: str
    format: str
    advice: str


@dataclass
class IngestReport:
    collection: str
    files_seen: int = 0
    images_added: int = 0
    faces_added: int = 0
    images_without_faces: int = 0
    skipped_already_indexed: int = 0
    failed: list[FailedFile] = field(default_factory=list)
    unsupported: list[UnsupportedFile] = field(default_factory=list)
    """Files skipped because facesearch does not read their format (HEIC, AVIF, JPEG 2000, JPEG XL)."""
    faces_skipped_by_objection: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class UploadedImage:
    name: str
    image_id: int
    content_id: str


@dataclass(frozen=True)
class UploadReport:
    report: IngestReport
    images: list[UploadedImage]
    """Every upload that is held after the call (new or already held), by the name it was sent with."""


@dataclass
class PurgeReport:
    at: datetime
    by_collection: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Images and faces removed, per collection."""


@dataclass(frozen=True)
class CollectionStats:
    name: str
    images: int
    faces: int
    indexed_vectors: int


@dataclass(frozen=True)
class Stats:
    data_dir: str
    catalog_url: str
    collections: list[CollectionStats]
    images: int
    faces: int
    data_bytes: int
    template_views: int
    """Views each new template of this data folder averages, fixed when the folder was made."""
    template_recipes: list[str]
    """How the templates held were made, as stored with each face (one recipe unless faces came from an older
    facesearch)."""


@dataclass(frozen=True)
class UnavailableFace:
    """A face a reindex could not re-embed, and why (its photo is gone, unreadable or changed)."""

    face_id: int
    image_id: int
    source: str
    reason: str


@dataclass
class ReindexReport:
    """What ``facesearch reindex`` did to one collection."""

    collection: str
    from_recipe: str
    to_recipe: str
    faces: int = 0
    re_embedded: int = 0
    """Faces re-embedded by this run."""
    already_done: int = 0
    """Faces an interrupted earlier run had re-embedded (not embedded again)."""
    unavailable: list[UnavailableFace] = field(default_factory=list)
    switched: bool = False
    """Whether the collection's templates are now all of ``to_recipe`` (False while any face is unavailable: the
    collection then stays whole on ``from_recipe``)."""
    seconds: float = 0.0
