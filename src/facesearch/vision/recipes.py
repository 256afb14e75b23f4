"""Template recipes: how a face's template is made, by name, with its dimension and its match threshold.

Every template is stored with its recipe's name, a collection's templates are all of one recipe, and templates of
two recipes are never compared (a probe is embedded once per recipe the collections it searches hold).

- ``dlib-1view-v1``: dlib's ResNet descriptor of dlib's chip, as published (128-d).
- ``dlib-4view-v1``: the mean of four views of dlib's chip (``templates.py``; 128-d; the default).
- ``dlib4view+facenet2view-v1``: the four-view dlib template and FaceNet's template of the ArcFace-aligned chip and
  its mirror image (``models/onnx_facenet.py``), each unit length, concatenated with weights sqrt(w) and sqrt(1 - w)
  (w = FUSED_DLIB_WEIGHT) and scaled by FUSED_SCALE so that the 0.6 threshold keeps the false-match rate it has
  for dlib's four views (256-d). About 3.4x the embedding cost of four dlib views; see ``docs/models.md``.
- ``dlib4view+facenet2view-int8-v1`` (the default): the same with FaceNet in 8-bit integers
  (``models/facenet_int8.py``), scaled by FUSED_INT8_SCALE. FaceNet then costs 2.4x less CPU; out of fold on the dev
  LFW identities it keeps TAR 0.733 at FMR 1e-5 where the 32-bit form holds 0.762 and dlib's four views 0.448.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facesearch.core.errors import InvalidValueError
from facesearch.core.records import Box, Point, RGBImage
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD, TEMPLATE_RECIPES, EmbedderChoice, views_recipe
from facesearch.vision.alignment import arcface_chip, arcface_template, similarity_transform
from facesearch.vision.models.registry import ModelSet, build_model_files
from facesearch.vision.templates import face_templates, mirrored, view_chips

Floats = npt.NDArray[np.float32]

FUSED_DLIB_WEIGHT = 0.8
"""dlib's share of the fused template's squared length (FaceNet's is the rest): the middle of the weights the folds
chose out of fold on the dev set's LFW identities (``bench/template_fusion.py --facenet-views 2``, "concatenated",
"w on dlib" 0.75-0.85; ``bench/README.md``)."""
FUSED_SCALE = 0.956
"""The fused unit template's length: the 0.6 threshold then has the false-match rate it has for dlib's four views
(1.07e-2 over the dev set's LFW pairs). Out of fold (``bench/recipe_threshold.py``, identities in 5 folds, each scale
fitted on the pairs of the other folds' people, on the 2,236 faces of 1,034 people embedded both ways so far) the
folds chose 0.9545-0.9575, and on each held-out fold the fused FMR at 0.6 was 0.97-1.22 % where dlib's was
0.87-1.22 %, while the fused TAR was 0.969-1.000 where dlib's was 0.957-0.993."""
FUSED_INT8_SCALE = 0.955
"""FUSED_SCALE for the 8-bit recipe: fitted on all pairs of the 4,496 dev LFW faces both pipelines find, 0.9552;
out of fold (5 folds by identity) the folds chose 0.9540-0.9557, and the held-out fused FMR at 0.6 was 0.97-1.15 %
where dlib's was 0.95-1.14 % (``bench/recipe_threshold.py --recipe dlib4view+facenet2view-int8-v1``)."""
FACENET_POINT_SCORE = 0.3
"""YuNet's score from which its five points of a face are used to align FaceNet's chip (else dlib's eyes are)."""


@dataclass(frozen=True)
class Recipe:
    name: str
    dlib_views: int
    facenet_views: int
    """0: no FaceNet part."""
    facenet_int8: bool = False
    """FaceNet's graph in 8-bit integers (else 32-bit floats)."""
    scale: float = FUSED_SCALE
    """The fused template's length (FaceNet recipes only)."""
    threshold: float = DEFAULT_MATCH_THRESHOLD
    """Distance at or under which two templates of this recipe match (the setting ``match_threshold`` overrides
    it for every recipe)."""

    @property
    def dimension(self) -> int:
        return 128 + (128 if self.facenet_views else 0)


RECIPES: dict[str, Recipe] = {
    "dlib-1view-v1": Recipe("dlib-1view-v1", 1, 0),
    "dlib-4view-v1": Recipe("dlib-4view-v1", 4, 0),
    "dlib4view+facenet2view-v1": Recipe("dlib4view+facenet2view-v1", 4, 2),
    "dlib4view+facenet2view-int8-v1": Recipe(
        "dlib4view+facenet2view-int8-v1", 4, 2, facenet_int8=True, scale=FUSED_INT8_SCALE
    ),
}
assert tuple(RECIPES) == TEMPLATE_RECIPES

LEGACY_EMBEDDERS = {"dlib-resnet-v1": views_recipe(1), "dlib-resnet-v1/4-views": views_recipe(4)}
"""What faces stored before recipes recorded as their embedder, and the recipe that made them."""


def prepare_model_files(name: str, choice: EmbedderChoice) -> None:
    """Build the cached graphs recipe ``name`` needs before worker processes start (``registry.build_model_files``)."""
    recipe = recipe_named(name)
    build_model_files(choice, facenet=bool(recipe.facenet_views), int8=recipe.facenet_int8)


def recipe_named(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise InvalidValueError(f"unknown template recipe {name!r}; choose one of {', '.join(RECIPES)}") from None


@dataclass(frozen=True)
class FoundFace:
    """A face on the working pixels, as the pipeline found it: its box and dlib's five points."""

    box: Box
    points: tuple[Point, ...]


def recipe_templates(
    pixels: RGBImage, faces: Sequence[FoundFace], models: ModelSet, recipe: Recipe, min_face_side: int
) -> tuple[Floats, list[RGBImage]]:
    """One template per face of ``faces`` (found on ``pixels``), and each face's dlib chip."""
    embedder = models.embedder
    views = [view_chips(pixels, face.box, face.points, embedder, recipe.dlib_views) for face in faces]
    dlib = face_templates(embedder, views)
    chips = [v[0] for v in views]
    if not recipe.facenet_views:
        return dlib, chips
    if not faces:
        return np.zeros((0, recipe.dimension), dtype=np.float32), chips
    five = facenet_points(pixels, faces, models, min_face_side)
    facenet_chips = [arcface_chip(pixels, points) for points in five]
    views_by_face = [[chip, mirrored(chip)] for chip in facenet_chips]
    facenet = models.facenet(recipe.facenet_int8).embed([view for pair in views_by_face for view in pair])
    return fused_templates(dlib, facenet.reshape(len(faces), 2, -1).mean(axis=1), recipe.scale), chips


def fused_templates(dlib: Floats, facenet: Floats, scale: float) -> Floats:
    """A fused recipe's templates from each face's dlib template and FaceNet's (the mean over its views), of length
    ``scale``."""
    weight = FUSED_DLIB_WEIGHT
    fused = np.hstack([np.sqrt(weight) * _unit(dlib), np.sqrt(1 - weight) * _unit(facenet)]) * scale
    result: Floats = fused.astype(np.float32)
    return result


def facenet_points(
    pixels: RGBImage, faces: Sequence[FoundFace], models: ModelSet, min_face_side: int
) -> list[Sequence[Point]]:
    """ArcFace's five points of each face: YuNet's face whose centre lies nearest the box's, inside it; where
    YuNet has none, the two eye centres from dlib's points mapped onto ArcFace's eyes (a face is never lost)."""
    proposer = models.proposer
    located = proposer.locate(pixels, FACENET_POINT_SCORE, min_face_side) if proposer is not None else []
    chosen: list[Sequence[Point]] = []
    for face in faces:
        box = face.box
        cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        inside = [
            (abs((b.left + b.right) / 2 - cx) + abs((b.top + b.bottom) / 2 - cy), points)
            for b, _, points in located
            if box.left <= (b.left + b.right) / 2 <= box.right and box.top <= (b.top + b.bottom) / 2 <= box.bottom
        ]
        chosen.append(min(inside, key=lambda item: item[0])[1] if inside else _eyes_as_five(face.points))
    return chosen


def _eyes_as_five(points: Sequence[Point]) -> tuple[Point, ...]:
    """Five points whose similarity transform onto ArcFace's template is the one that puts dlib's eye centres on
    ArcFace's eyes (the other three follow that transform)."""
    right = ((points[0][0] + points[1][0]) / 2, (points[0][1] + points[1][1]) / 2)
    left = ((points[2][0] + points[3][0]) / 2, (points[2][1] + points[3][1]) / 2)
    template = arcface_template(160)
    to_photo = similarity_transform(template[:2].tolist(), [right, left])
    mapped = np.hstack([template, np.ones((5, 1))]) @ to_photo.T
    return tuple((float(x), float(y)) for x, y in mapped)


def _unit(vectors: Floats) -> Floats:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: Floats = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return result
