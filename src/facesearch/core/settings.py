"""One settings object, built once (from the environment, a CLI or code) and passed down.

Every field can be set from the environment as ``FACESEARCH_<FIELD>`` (for example
``FACESEARCH_MATCH_THRESHOLD=0.55``). ``docs/settings.md`` documents each one; a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from facesearch.core.errors import InvalidValueError

TEMPLATE_VIEWS = (1, 4)
"""How many views of a face its template may average (``templates.py``)."""
DEFAULT_TEMPLATE_VIEWS = 4
TEMPLATE_RECIPES = ("dlib-1view-v1", "dlib-4view-v1", "dlib4view+facenet2view-v1", "dlib4view+facenet2view-int8-v1")
"""How a template may be made (``vision/recipes.py``): dlib's one view, its four views, or those fused with FaceNet's
two views (FaceNet in 32-bit floats or 8-bit integers). Every template records its recipe, and templates of two
recipes are never compared."""
DEFAULT_TEMPLATE_RECIPE = "dlib4view+facenet2view-int8-v1"
"""New collections' recipe unless ``template_recipe`` (or ``template_views=1``) says otherwise: the most accurate
recipe whose ingest keeps at least 2.5x the ``face_recognition`` command's pace (3.24x measured; ``docs/models.md``)."""


def views_recipe(views: int) -> str:
    """The dlib recipe of ``views`` views: what a data folder made before recipes holds."""
    return f"dlib-{views}view-v1"


ENV_PREFIX = "FACESEARCH_"

EMBEDDERS = ("auto", "onnx", "dlib")
"""How the embedder may run: ONNX Runtime, dlib's own code, or ONNX falling back to dlib."""

DEFAULT_MIN_FACE_SIDE = 20
"""The smallest face proposals look for, in pixels of the photo as analysed (setting ``min_face_side``). YuNet
looks at the photo scaled by RELIABLE_FACE / min_face_side (``vision/models/yunet.py``, never enlarged). At 40 it
looks at half size: its time per image falls from 8.7 to 4.7 ms on 300 dev images, but 5 of their 416 faces are
lost (small faces behind the subject of LFW crops), so the default keeps every face YuNet can find
(bench/README.md)."""

DEFAULT_MATCH_THRESHOLD = 0.6
"""Euclidean distance between dlib templates at or under which two faces are the same person.

Measured on the 2,022 LFW-protocol ``lfw_view1_devtrain`` pairs of the dev set (bench/verify_accuracy.py):
accuracy peaks at 0.60 (98.4%; 0.58: 98.0%, 0.62: 98.2%, 0.56: 97.0%), and 10-fold cross-validation
picks 0.59-0.60 in every fold (98.3%). 0.6 is also dlib's own published operating point.
"""


@dataclass(frozen=True)
class EmbedderChoice:
    """How this process runs the embedder (``vision/models/registry.py``)."""

    runtime: str = "auto"
    cache_dir: Path | None = None
    """Where the converted ONNX graph and the HOG detector's file are cached (None: the user's cache folder)."""
    threads: int | None = None
    """ONNX Runtime threads (None: one per core)."""


MILVUS_SCHEME = "milvus://"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("facesearch-data")
    """Folder that holds the catalog, the vector indexes and nothing else."""
    database_url: str = ""
    """SQLAlchemy URL of the catalog; empty means ``sqlite:///<data_dir>/catalog.sqlite3``."""
    vector_store: str = ""
    """Where the vectors live: empty means faiss index files in the data folder; ``milvus://HOST:PORT`` a Milvus
    server, which is given each collection's templates only rotated by the collection's key."""
    workers: int = 0
    """Worker processes for ingest; 0 means one per CPU core."""
    ray_address: str = ""
    """Address (``HOST:PORT`` of its head) of a Ray cluster whose nodes decode, detect and embed for ingest; empty:
    local worker processes. Catalog writes stay in the ingesting process."""
    threads_per_worker: int = 0
    """ONNX Runtime threads each ingest worker embeds with; 0 shares the cores out among the workers (all of
    them for a single worker). 1 keeps an ingest to one core per worker on a machine shared with others."""
    threads_per_request: int = 0
    """ONNX Runtime threads the engine's own analyses (a search's probe, a verification, an upload) embed with; 0
    means every core, except in ``facesearch serve``, which takes 1 so that concurrent requests each get a core
    (one request on every core left the other requests nothing to gain: bench/serve_concurrency.py)."""
    max_image_pixels: int = 90_000_000
    """Images with more pixels are refused before they are decoded (decompression bombs)."""
    max_file_bytes: int = 200_000_000
    """Files larger than this are refused before they are read."""
    detect_max_side: int = 2048
    """Images are detected at most this many pixels on their longest side (large JPEGs are decoded at
    reduced scale, others resized). Larger finds smaller faces in big photos and costs time as the square."""
    upsample_max_pixels: int = 1_000_000
    """Images with at most this many pixels (after reduction) are upsampled once before detection, so that
    faces down to about 40 px across are found; larger images are detected as they are (faces from ~80 px).
    Doubling never takes the pixels one detection pass scans past 4 times this, whatever the image's shape."""
    upsample_target_side: int = 600
    """Small images are upsampled (up to 4 times) until their shorter side reaches this, so that faces
    of 40 px in them are found. Doubling it finds faces down to about 20 px at about 4x the time."""
    detection_threshold: float = 0.0
    """HOG detector score threshold: lower finds more faces and more false ones."""
    detection_proposals: bool = True
    """Let YuNet propose where faces are and run HOG only there, at the scale each needs (about 4x less
    detection time on the dev images, and small faces in large photos are found); HOG still scans the whole
    photo when no proposal is confirmed. Off: HOG scans every photo whole."""
    min_face_side: int = DEFAULT_MIN_FACE_SIDE
    """Smallest face, in pixels of the photo as analysed, that YuNet's proposals look for. YuNet looks at photos
    scaled so that such a face is 20 px, its reliable minimum (never enlarged): 20 (the default) or less, full
    size; 40, half size, about half of YuNet's time, and faces under 40 px are not proposed."""
    try_rotations: bool = True
    """When no upright face is found, also try the image padded (tight crops) and turned 90, 270 and 180
    degrees, for photos whose pixels are rotated without an EXIF tag. Costs up to four more detections
    on images without faces."""
    match_threshold: float = DEFAULT_MATCH_THRESHOLD
    """Default distance at or under which two faces match (search and verify)."""
    search_top_k: int = 10
    """Default number of matches returned for each probe face."""
    search_false_matches: float = 0.1
    """Wrong people a search may expect within its threshold per probe face: with the measured false-match curve
    of the templates' recipe and the number of faces searched this sets the search's threshold (never above
    ``match_threshold``, which verification keeps)."""
    rights_review_threshold: float = 0.7
    """Access and erasure requests list the faces beyond ``match_threshold`` and within this distance as possible
    matches for the person answering to review and confirm (none when it is not above the request's threshold)."""
    index_exact_max: int = 1_000_000
    """Collections with up to this many faces are searched exactly; larger ones get an approximate (IVF)
    index, rebuilt from the catalog when they cross the limit (and back below half of it)."""
    index_nprobe: int = 256
    """Cells of an IVF index compared with each query: more finds more of the true neighbours, slower."""
    ingest_batch_size: int = 64
    """Images written to the catalog per transaction during ingest."""
    template_views: int = DEFAULT_TEMPLATE_VIEWS
    """Views of each face's dlib template: 4 (with its mirror image and a shrunk copy of both) or 1 (dlib's template
    as published). With ``template_recipe`` empty, 1 makes new collections ``dlib-1view-v1`` and 4 the default
    recipe. Applies to data folders made from now on: each folder keeps the count it was made with (a folder made
    before recipes were recorded holds one-view templates)."""
    template_recipe: str = ""
    """How new collections' templates are made: ``dlib4view+facenet2view-int8-v1`` (the default: dlib's four views
    fused with FaceNet's two in 8 bits), ``dlib4view+facenet2view-v1`` (FaceNet in 32 bits: a little more accurate,
    slower), ``dlib-4view-v1`` or ``dlib-1view-v1`` (dlib alone: faster, far less accurate); empty means the default
    (or ``dlib-1view-v1`` where ``template_views`` is 1). A collection keeps the recipe it was made with until
    ``facesearch reindex`` re-embeds it."""
    embedder: str = "auto"
    """How dlib's ResNet runs: ``onnx`` (ONNX Runtime, graph converted from dlib's weights and cached),
    ``dlib`` (dlib's own code, about 10x slower here), or ``auto`` (ONNX, else dlib with a warning)."""
    model_cache_dir: str = ""
    """Where the converted ONNX graph is cached (checksummed); empty means ``~/.cache/facesearch``."""
    master_key: str = field(default="", repr=False)
    """Base64 master key that wraps the collection keys (or use ``master_key_file``); never stored."""
    master_key_file: str = ""
    """File holding the base64 master key; must not be inside the data folder."""
    actor: str = ""
    """Who is acting, written into the audit log; empty means the operating-system user."""
    purpose: str = ""
    """Default purpose or case reference for searches, verifications and rights requests made from the CLI."""
    host: str = "127.0.0.1"
    """Address ``facesearch serve`` listens on; loopback by default (put a TLS proxy in front to expose it)."""
    port: int = 8000
    """Port ``facesearch serve`` listens on."""
    server_workers: int = 1
    """Processes ``facesearch serve`` answers requests in, each with every model loaded (about 300 MB each). More than
    1 needs the catalog on a database server (``database_url``): the processes share the rate limits through it, and
    each brings its vector indexes up to the others' writes before it reads them."""
    search_rate_per_minute: int = 30
    """Searches (search, recognize, verify, detect, access requests) one API key may make per minute; more
    are refused with 429 and audited, so that the API cannot be used to enumerate a gallery."""
    max_upload_files: int = 100
    """Images one batch upload may carry."""
    purge_interval_minutes: int = 10
    """How often ``facesearch serve`` removes images held past their collection's retention period (the
    engine also purges whenever a data folder is opened)."""
    subjects_collection: str = "subjects"
    """Collection that holds enrolled subjects (the CompreFace-compatible endpoints use it)."""

    def __post_init__(self) -> None:
        positive = (
            "max_image_pixels",
            "max_file_bytes",
            "detect_max_side",
            "upsample_target_side",
            "search_top_k",
            "ingest_batch_size",
            "port",
            "server_workers",
            "search_rate_per_minute",
            "max_upload_files",
            "purge_interval_minutes",
            "index_nprobe",
            "min_face_side",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise InvalidValueError(f"setting {name} must be positive, got {getattr(self, name)}")
        if self.template_views not in TEMPLATE_VIEWS:
            raise InvalidValueError(
                f"setting template_views must be 1 or 4 (views averaged into each template), got {self.template_views}"
            )
        if self.template_recipe and self.template_recipe not in TEMPLATE_RECIPES:
            raise InvalidValueError(
                f"setting template_recipe must be one of {', '.join(TEMPLATE_RECIPES)} (or empty), "
                f"got {self.template_recipe!r}"
            )
        if self.embedder not in EMBEDDERS:
            raise InvalidValueError(f"setting embedder must be auto, onnx or dlib, got {self.embedder!r}")
        if self.index_exact_max < 0:
            raise InvalidValueError(f"setting index_exact_max must be 0 or more, got {self.index_exact_max}")
        if self.threads_per_worker < 0:
            raise InvalidValueError(
                f"setting threads_per_worker must be 0 (cores shared out) or more, got {self.threads_per_worker}"
            )
        if self.threads_per_request < 0:
            raise InvalidValueError(
                f"setting threads_per_request must be 0 (every core) or more, got {self.threads_per_request}"
            )
        if self.workers < 0:
            raise InvalidValueError(f"setting workers must be 0 (one per core) or more, got {self.workers}")
        if self.upsample_max_pixels < 0:
            raise InvalidValueError(f"setting upsample_max_pixels must be 0 or more, got {self.upsample_max_pixels}")
        self.milvus_address  # noqa: B018 (checks vector_store)
        if not 0.0 < self.search_false_matches <= 1000.0:
            raise InvalidValueError(
                "setting search_false_matches must be more than 0 and at most 1000 (wrong people expected per probe "
                f"face, for example 0.1), got {self.search_false_matches}"
            )
        if not 0.0 < self.rights_review_threshold < 2.0:
            raise InvalidValueError(
                f"setting rights_review_threshold must be between 0 and 2, got {self.rights_review_threshold}"
            )
        if not 0.0 < self.match_threshold < 2.0:
            raise InvalidValueError(
                f"setting match_threshold must be between 0 and 2 (dlib's distances lie well inside), "
                f"got {self.match_threshold}"
            )

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'catalog.sqlite3'}"

    @property
    def milvus_address(self) -> tuple[str, int] | None:
        """The Milvus server's host and port that ``vector_store`` names; None for local faiss files."""
        if not self.vector_store:
            return None
        host, _, port = self.vector_store.removeprefix(MILVUS_SCHEME).rpartition(":")
        if (
            not self.vector_store.startswith(MILVUS_SCHEME)
            or not host
            or not port.isdigit()
            or not 0 < int(port) < 65536
        ):
            raise InvalidValueError(
                f"setting vector_store must be empty (faiss files in the data folder) or milvus://HOST:PORT, "
                f"got {self.vector_store!r}"
            )
        return host, int(port)

    @property
    def recipe(self) -> str:
        """The recipe of new collections' templates (and of verifications)."""
        if self.template_recipe:
            return self.template_recipe
        return views_recipe(1) if self.template_views == 1 else DEFAULT_TEMPLATE_RECIPE

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    def embedder_choice(self, threads: int | None = None) -> EmbedderChoice:
        cache_dir = Path(self.model_cache_dir) if self.model_cache_dir else None
        return EmbedderChoice(self.embedder, cache_dir, threads)

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``FACESEARCH_*`` variables, then ``overrides`` (values that are None are ignored)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = environ.get(ENV_PREFIX + spec.name.upper())
            if raw is not None:
                values[spec.name] = _parse(spec.name, str(spec.type), raw)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def _parse(name: str, type_name: str, raw: str) -> Any:
    try:
        if type_name == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "Path":
            return Path(raw)
        return raw
    except ValueError:
        raise InvalidValueError(
            f"environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a valid {type_name}"
        ) from None
