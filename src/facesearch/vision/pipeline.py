"""Detect, align and embed: from decoded pixels to faces with templates, in full-resolution coordinates."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facesearch.core.records import AnalysedFace, Box, DetectedFace, LoadedImage, Point, RGBImage
from facesearch.core.settings import DEFAULT_MIN_FACE_SIDE, DEFAULT_TEMPLATE_RECIPE, Settings
from facesearch.vision.alignment import clip_box, rotate_quarters, scale_box, unrotate_box, unrotate_point
from facesearch.vision.guided import PROPOSAL_THRESHOLD, detect_guided
from facesearch.vision.models.registry import ModelSet
from facesearch.vision.recipes import FoundFace, recipe_named, recipe_templates

CONFIDENT_SCORE = 0.5
"""An upright detection at least this sure ends the search for a better orientation."""
ROTATED_MIN_SCORE = 0.8
"""A face found only after turning the image must score at least this much. On the dev set, faces in
turned photos scored 1.1-2.1 once turned upright, while the rotations of photos without faces produced
detections up to 0.66; weak upright detections in turned photos (0.02-0.19) are beaten by the turn."""
MAX_UPSAMPLE = 4
UPSAMPLE_BUDGET = 4
"""Doubling never takes the pixels HOG scans past this many times ``upsample_max_pixels`` (what an image of that
size doubled once costs: 4 Mpx, about 1.2 s and 35 MB over the models here), counted on the copy actually
scanned, border included, whatever the image's shape. Without it a 3x9000 PNG, reduced to 1x2048 and bordered for
the tight-crop retry, was doubled four times from its 1 px side: 49152x16400 pixels, over 8 GB (bench/README.md,
extreme shapes). Photos of up to about 2.8:1 are doubled as before; a thinner one is doubled less, finding faces
from 40 px instead of 20."""
MIN_IMAGE_SIDE = 20
"""Images (as analysed) with a shorter side under this many pixels give no faces without being looked at: YuNet's
smallest reliable face is 20 px (``models/yunet.py``) and a face cannot be larger than the image. This is what
one-pixel images and thin strips get, instead of a crash in dlib or seconds of doubling to find nothing."""
HOG_WINDOW = 80
"""Side in pixels of the smallest face dlib's HOG detector finds at a given scale."""
ROTATED_MIN_FACE_SHARE = 0.25
"""Turned copies are searched only for faces spanning at least this share of the image's shorter side (the
sideways portraits, selfies and ID photos that lose their orientation), which lets them be detected with
fewer doublings than the upright pass: on the dev set's LFW crops a turn then costs 18 ms instead of 52 ms,
and a third of all detection time had gone into turns that found nothing. Every turned photo of the dev set's
``_variants/`` (faces of 17-53 % of the shorter side, 53-530 px) is still found turned back upright."""
TIGHT_CROP_PADDING = 0.25
"""Black border added (as a fraction of the longest side) when retrying detection on a tight face crop:
HOG's window needs some context around the face, and ID photos or avatars often have none."""
TIGHT_CROP_THRESHOLD = -0.6
TIGHT_CROP_MIN_SIZE = 0.4
"""On the bordered copy of an image without any detection, the detector's threshold drops to
TIGHT_CROP_THRESHOLD but only faces at least TIGHT_CROP_MIN_SIZE of the image's shorter side count: a tight
crop's face fills the picture. On a 600-pair LFW sample this found all 9 faces missed upright (a black
border alone found 15 of 39 on the full set, a repeated edge none), and it adds no detection on the dev
set's 10 photos without faces."""


@dataclass(frozen=True)
class AnalysisOptions:
    """How an image is analysed, from the settings: where faces are looked for and how their templates are made."""

    upsample_max_pixels: int
    upsample_target_side: int
    threshold: float
    try_rotations: bool
    proposals: bool = True
    recipe: str = DEFAULT_TEMPLATE_RECIPE
    """How each template is made (``recipes.py``); a collection's, never mixed within one."""
    min_face_side: int = DEFAULT_MIN_FACE_SIDE
    """Smallest face YuNet's proposals look for, in pixels of the photo as analysed."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AnalysisOptions:
        return cls(
            settings.upsample_max_pixels,
            settings.upsample_target_side,
            settings.detection_threshold,
            settings.try_rotations,
            settings.detection_proposals,
            settings.recipe,
            settings.min_face_side,
        )


@dataclass(frozen=True)
class _Attempt:
    quarters: int  # counter-clockwise quarter turns applied to the pixels
    padded: bool

    @property
    def face_share(self) -> float | None:
        """The smallest face, as a share of the shorter side, this attempt looks for (None: any size)."""
        if self.padded:
            return TIGHT_CROP_MIN_SIZE
        return ROTATED_MIN_FACE_SHARE if self.quarters else None


_UPRIGHT = _Attempt(0, False)
_FALLBACKS = (_Attempt(0, True), _Attempt(1, False), _Attempt(3, False), _Attempt(2, False))


@dataclass(frozen=True)
class _Found:
    """Faces found on a working copy of the pixels, with what it takes to map them back."""

    work: RGBImage
    attempt: _Attempt
    pad: int
    faces: list[tuple[Box, float, tuple[Point, ...]]]


def detect_faces(image: LoadedImage, models: ModelSet, options: AnalysisOptions) -> list[DetectedFace]:
    found = _find(image.pixels, models, options)
    return [] if found is None else _to_original(found, image)


def analyse_image(
    image: LoadedImage,
    models: ModelSet,
    options: AnalysisOptions,
    also: Sequence[str] = (),
    timings: dict[str, float] | None = None,
) -> list[AnalysedFace]:
    """Every face in ``image`` with its template of ``options.recipe`` (and of each recipe in ``also``, detected
    once), largest-score first; ``timings`` receives the seconds spent finding faces (``detector``) and making
    their templates (``calculator``)."""
    started = time.perf_counter()
    found = _find(image.pixels, models, options)
    detected = time.perf_counter()
    if timings is not None:
        timings["detector"] = detected - started
    if found is None:
        return []
    faces = [FoundFace(box, points) for box, _, points in found.faces]
    embeddings, chips = recipe_templates(found.work, faces, models, recipe_named(options.recipe), options.min_face_side)
    others = {
        name: recipe_templates(found.work, faces, models, recipe_named(name), options.min_face_side)[0]
        for name in dict.fromkeys(also)
        if name != options.recipe
    }
    if timings is not None:
        timings["calculator"] = time.perf_counter() - detected
    detections = _to_original(found, image)
    return [
        AnalysedFace(d, e, sharpness(chip), options.recipe, {name: t[number] for name, t in others.items()})
        for number, (d, e, chip) in enumerate(zip(detections, embeddings, chips, strict=True))
    ]


def sharpness(chip: RGBImage) -> float:
    """Variance of the 4-neighbour Laplacian of the chip in grey: how much fine detail the face shows."""
    grey = chip.astype(np.float32).mean(axis=2)
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return round(float(laplacian.var()), 2)


def _find(pixels: RGBImage, models: ModelSet, options: AnalysisOptions) -> _Found | None:
    """The faces of the best orientation: upright unless a turned copy finds a clearly better face."""
    if min(pixels.shape[:2]) < MIN_IMAGE_SIDE:
        return None
    best = _attempt(pixels, _UPRIGHT, models, options)
    if not options.try_rotations or (best is not None and _top_score(best) >= CONFIDENT_SCORE):
        return best
    for attempt in _FALLBACKS:
        if attempt.padded and best is not None:
            continue  # a border only helps crops too tight for any detection
        found = _attempt(pixels, attempt, models, options)
        if found is None or (attempt.quarters and _top_score(found) < ROTATED_MIN_SCORE):
            continue
        if best is None or _top_score(found) > _top_score(best):
            best = found
    return best


def _attempt(pixels: RGBImage, attempt: _Attempt, models: ModelSet, options: AnalysisOptions) -> _Found | None:
    work = rotate_quarters(pixels, attempt.quarters)
    pad = 0
    if attempt.padded:
        pad = round(TIGHT_CROP_PADDING * max(work.shape[:2]))
        work = np.pad(work, ((pad, pad), (pad, pad), (0, 0)), mode="constant")
    height, width = pixels.shape[:2]
    upsample = upsample_times(
        height,
        width,
        options.upsample_max_pixels,
        options.upsample_target_side,
        attempt.face_share,
        scanned_pixels=work.shape[0] * work.shape[1],
    )
    if attempt.padded:
        smallest = TIGHT_CROP_MIN_SIZE * min(height, width)
        boxes = [
            (box, score)
            for box, score in models.detector.detect(work, upsample, min(options.threshold, TIGHT_CROP_THRESHOLD))
            if box.width >= smallest
        ]
    else:
        boxes = _guided(work, models, options) if attempt == _UPRIGHT else []
        boxes = boxes or models.detector.detect(work, upsample, options.threshold)
    if not boxes:
        return None
    landmarks = models.landmarks
    return _Found(work, attempt, pad, [(box, score, landmarks.landmarks(work, box)) for box, score in boxes])


def upsample_times(
    height: int,
    width: int,
    max_pixels: int,
    target_side: int,
    face_share: float | None = None,
    *,
    scanned_pixels: int | None = None,
) -> int:
    """How many times to double the image before HOG detection: none above ``max_pixels``; otherwise enough
    that its shorter side reaches ``target_side`` (at least once, at most MAX_UPSAMPLE times), so that
    small faces in small images reach the detector's 80 px window. A fallback looking only for faces of at
    least ``face_share`` of the shorter side doubles no more than such a face needs. Either way the copy
    scanned (``scanned_pixels``, the image's own when not given) is not doubled past UPSAMPLE_BUDGET times
    ``max_pixels``."""
    if height * width > max_pixels:
        return 0
    times = 1
    while times < MAX_UPSAMPLE and min(height, width) * 2**times < target_side:
        times += 1
    if face_share is not None:
        times = min(times, _upsample_for_face(face_share * min(height, width)))
    scanned = height * width if scanned_pixels is None else scanned_pixels
    while times and scanned * 4**times > UPSAMPLE_BUDGET * max_pixels:
        times -= 1
    return times


def _guided(pixels: RGBImage, models: ModelSet, options: AnalysisOptions) -> list[tuple[Box, float]]:
    proposer = models.proposer if options.proposals else None
    if proposer is None:
        return []
    proposals = proposer.propose(pixels, PROPOSAL_THRESHOLD, options.min_face_side)
    return detect_guided(pixels, proposals, models.detector, options.threshold) if proposals else []


def _upsample_for_face(side: float) -> int:
    """The fewest doublings (at most MAX_UPSAMPLE) that bring a face ``side`` pixels across to HOG's window."""
    times = 0
    while times < MAX_UPSAMPLE and side * 2**times < HOG_WINDOW:
        times += 1
    return times


def _top_score(found: _Found) -> float:
    return max(score for _, score, _ in found.faces)


def _to_original(found: _Found, image: LoadedImage) -> list[DetectedFace]:
    """Faces in full-resolution, upright coordinates of the original image."""
    height, width = image.pixels.shape[:2]
    quarters = found.attempt.quarters
    # Sizes of the rotated (unpadded) frame, in which the unrotation below is expressed.
    rotated_w, rotated_h = (height, width) if quarters % 2 else (width, height)
    faces = []
    for box, score, points in found.faces:
        unpadded = clip_box(scale_box(box, 1.0, (found.pad, found.pad)), rotated_w, rotated_h)
        upright = unrotate_box(unpadded, quarters, width, height)
        full = clip_box(scale_box(upright, image.scale), image.width, image.height)
        mapped = tuple(
            _scale_point(unrotate_point((x - found.pad, y - found.pad), quarters, width, height), image.scale)
            for x, y in points
        )
        faces.append(DetectedFace(box=full, score=score, landmarks=mapped, rotation=quarters * 90))
    return faces


def _scale_point(point: Point, factor: float) -> Point:
    return (round(point[0] * factor, 1), round(point[1] * factor, 1))
