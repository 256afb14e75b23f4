"""dlib's face-recognition ResNet on ONNX Runtime: the same 128-d templates as ``DlibResNetEmbedder``, several
times faster on CPUs (dlib's pip build has no BLAS).

The weights are read from the ``.dat`` file that ``face-recognition-models`` ships (:mod:`dlib_dat`), turned once
into an ONNX graph that is cached as ``dlib-resnet-v1-<sha256 of the .dat>-b<builder version>.onnx`` beside a
``.sha256`` file holding the checksum of the ``.onnx`` itself; a cached graph whose checksum does not match is
rebuilt.

The graph takes the aligned chips as they are (``N x 150 x 150 x 3`` uint8 RGB) and does dlib's input
normalisation itself, so callers need no preprocessing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facesearch.core.records import RGBImage
from facesearch.vision.models.cache import default_cache_dir, is_intact, sha256_file, store_checked
from facesearch.vision.models.dlib_dat import CONV_MODE, DlibDatError, DlibNetwork, LayerRecord, read_dat

BUILDER_VERSION = 1
"""Part of the cache file name: bump it when the graph this module builds changes."""
OPSET = 17
IR_VERSION = 8
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"
DEFAULT_BATCH = 32


class FastEmbedderUnavailableError(RuntimeError):
    """The ONNX embedder cannot be used here (missing package, unreadable weights, runtime failure): fall back to
    ``DlibResNetEmbedder``."""


def default_dat_path() -> Path:
    import face_recognition_models  # the package that DlibResNetEmbedder reads too

    return Path(face_recognition_models.face_recognition_model_location())


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# -- graph building ----------------------------------------------------------------------------------


@dataclass
class _Value:
    name: str
    shape: tuple[int, int, int]
    """(channels, rows, columns) of one sample."""


class _GraphBuilder:
    def __init__(self) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.counter = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def const(self, stem: str, array: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs: Any) -> str:
        out = self.fresh(stem)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _pooled(size: int, window: int, stride: int, padding: int) -> int:
    """dlib's (and ONNX's floor-mode) output size."""
    return 1 + (size + 2 * padding - window) // stride


def _pad_to(graph: _GraphBuilder, value: _Value, shape: tuple[int, int, int]) -> str:
    """``value`` zero-padded at the end of each dimension to ``shape`` (what dlib's ``tt::add`` does)."""
    extra = [target - own for target, own in zip(shape, value.shape, strict=True)]
    if not any(extra):
        return value.name
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
    return graph.node("Pad", [value.name, graph.const("pads", pads)], "pad", mode="constant")


def build_onnx(network: DlibNetwork) -> bytes:
    """The serialized ONNX model of ``network`` (layers as :func:`dlib_dat.read_dat` returns them)."""
    from onnx import TensorProto, checker, helper

    layers = network.layers
    if not layers or layers[0].kind != "input":
        raise ValueError("the network must start with its input layer")
    graph = _GraphBuilder()
    first = layers[0]
    rows, cols = first.attrs["nr"], first.attrs["nc"]

    # dlib's input_rgb_image_sized: (pixel - mean) / 256, NCHW float.
    x = graph.node("Cast", [INPUT_NAME], "cast", to=TensorProto.FLOAT)
    x = graph.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    x = graph.node("Sub", [x, graph.const("mean", first.arrays["mean"].reshape(1, 3, 1, 1))], "centred")
    x = graph.node("Mul", [x, graph.const("scale", np.array(1.0 / 256.0, dtype=np.float32))], "input")
    current = _Value(x, (3, rows, cols))
    tags: dict[int, _Value] = {}

    index = 1
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        if layer.kind == "con":
            fold = following is not None and following.kind == "affine"
            current = _conv(graph, current, layer, following if fold else None)
            index += 2 if fold else 1
            continue
        if layer.kind == "affine":
            current = _affine(graph, current, layer)
        elif layer.kind == "relu":
            current = _Value(graph.node("Relu", [current.name], "relu"), current.shape)
        elif layer.kind in ("max_pool", "avg_pool"):
            current = _pool(graph, current, layer)
        elif layer.kind == "tag":
            tags[layer.attrs["id"]] = current
        elif layer.kind == "skip":
            current = tags[layer.attrs["id"]]
        elif layer.kind == "add_prev":
            other = tags[layer.attrs["tag"]]
            shape = (
                max(current.shape[0], other.shape[0]),
                max(current.shape[1], other.shape[1]),
                max(current.shape[2], other.shape[2]),
            )
            total = graph.node("Add", [_pad_to(graph, current, shape), _pad_to(graph, other, shape)], "add")
            current = _Value(total, shape)
        elif layer.kind == "fc":
            flat = graph.node("Flatten", [current.name], "flatten", axis=1)
            inputs = int(np.prod(current.shape))
            if inputs != layer.attrs["num_inputs"]:
                raise ValueError(f"fc layer {index} expects {layer.attrs['num_inputs']} inputs, gets {inputs}")
            weights = graph.const("fc_w", layer.arrays["weights"])
            if layer.attrs["use_bias"]:
                y = graph.node("Gemm", [flat, weights, graph.const("fc_b", layer.arrays["bias"])], "fc")
            else:
                y = graph.node("MatMul", [flat, weights], "fc")
            current = _Value(y, (layer.attrs["num_outputs"], 1, 1))
        else:
            raise ValueError(f"layer {index}: no ONNX translation for {layer.kind!r}")
        index += 1

    if layers[-1].kind != "fc":
        raise ValueError("the network must end with its fc layer")
    graph.nodes.append(helper.make_node("Identity", [current.name], [OUTPUT_NAME], name="output"))
    onnx_graph = helper.make_graph(
        graph.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", rows, cols, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", current.shape[0]])],
        graph.initializers,
    )
    model = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facesearch", ir_version=IR_VERSION
    )
    checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized


def _conv(graph: _GraphBuilder, value: _Value, layer: LayerRecord, affine: LayerRecord | None) -> _Value:
    weights = layer.arrays["weights"].astype(np.float64)
    filters = layer.attrs["num_filters"]
    bias = layer.arrays["bias"].astype(np.float64) if layer.attrs["use_bias"] else np.zeros(filters)
    if layer.attrs["channels"] != value.shape[0]:
        raise ValueError(f"con layer expects {layer.attrs['channels']} channels, gets {value.shape[0]}")
    if affine is not None:  # fold the per-channel scale and shift into the filters, in double precision
        gamma, beta = _affine_params(affine, filters)
        weights = weights * gamma[:, None, None, None]
        bias = bias * gamma + beta
    py, px = layer.attrs["padding_y"], layer.attrs["padding_x"]
    sy, sx = layer.attrs["stride_y"], layer.attrs["stride_x"]
    nr, nc = layer.attrs["nr"], layer.attrs["nc"]
    out = graph.node(
        "Conv",
        [value.name, graph.const("con_w", weights.astype(np.float32)), graph.const("con_b", bias.astype(np.float32))],
        "con",
        kernel_shape=[nr, nc],
        strides=[sy, sx],
        pads=[py, px, py, px],
    )
    shape = (filters, _pooled(value.shape[1], nr, sy, py), _pooled(value.shape[2], nc, sx, px))
    return _Value(out, shape)


def _affine_params(layer: LayerRecord, channels: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if layer.attrs["mode"] != CONV_MODE or layer.arrays["gamma"].size != channels:
        raise ValueError("only per-channel (CONV_MODE) affine layers are supported")
    return layer.arrays["gamma"].astype(np.float64), layer.arrays["beta"].astype(np.float64)


def _affine(graph: _GraphBuilder, value: _Value, layer: LayerRecord) -> _Value:
    gamma, beta = _affine_params(layer, value.shape[0])
    scaled = graph.node("Mul", [value.name, graph.const("gamma", gamma.astype(np.float32).reshape(1, -1, 1, 1))], "g")
    shifted = graph.node("Add", [scaled, graph.const("beta", beta.astype(np.float32).reshape(1, -1, 1, 1))], "b")
    return _Value(shifted, value.shape)


def _pool(graph: _GraphBuilder, value: _Value, layer: LayerRecord) -> _Value:
    channels, rows, cols = value.shape
    nr = layer.attrs["nr"] or rows  # 0: the whole input (avg_pool_everything)
    nc = layer.attrs["nc"] or cols
    py, px = layer.attrs["padding_y"], layer.attrs["padding_x"]
    sy, sx = layer.attrs["stride_y"], layer.attrs["stride_x"]
    if layer.kind == "avg_pool" and (py or px):
        raise ValueError("average pooling with padding is not supported (dlib and ONNX count the window differently)")
    if layer.kind == "avg_pool" and (nr, nc) == (rows, cols):
        out = graph.node("GlobalAveragePool", [value.name], "avg_all")
    else:
        op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
        out = graph.node(op, [value.name], layer.kind, kernel_shape=[nr, nc], strides=[sy, sx], pads=[py, px, py, px])
    return _Value(out, (channels, _pooled(rows, nr, sy, py), _pooled(cols, nc, sx, px)))


# -- cache -------------------------------------------------------------------------------------------


def cached_model_path(dat_path: Path, cache_dir: Path | None = None, dat_sha256: str | None = None) -> Path:
    digest = dat_sha256 or sha256_file(dat_path)
    folder = default_cache_dir() if cache_dir is None else cache_dir
    return folder / f"dlib-resnet-v1-{digest}-b{BUILDER_VERSION}.onnx"


def ensure_onnx_model(dat_path: Path | None = None, cache_dir: Path | None = None) -> Path:
    """The cached ONNX model for ``dat_path`` (default: ``face_recognition_models``' file), built if it is missing
    or if its checksum does not match the one recorded beside it."""
    source = default_dat_path() if dat_path is None else Path(dat_path)
    model_path = cached_model_path(source, cache_dir)
    if not is_intact(model_path):
        store_checked(model_path, build_onnx(read_dat(source)))
    return model_path


# -- the embedder ------------------------------------------------------------------------------------


def onnxruntime_module() -> Any:
    """The ``onnxruntime`` module, imported only when needed (it ships no type information)."""
    import onnxruntime  # type: ignore[import-untyped]

    return onnxruntime


def default_providers() -> list[str]:
    ort = onnxruntime_module()
    available = set(ort.get_available_providers())
    providers = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
    return [*providers, "CPUExecutionProvider"]


class OnnxResNetEmbedder:
    """dlib's ResNet (the same templates as ``DlibResNetEmbedder``, hence the same name) run by ONNX Runtime."""

    name = "dlib-resnet-v1"
    dimension = 128
    chip_size = 150
    chip_padding = 0.25

    def __init__(
        self,
        dat_path: Path | None = None,
        cache_dir: Path | None = None,
        providers: Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH,
        threads: int | None = None,
    ) -> None:
        ort = onnxruntime_module()
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.model_path = ensure_onnx_model(dat_path, cache_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_count()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(self.model_path), sess_options=options, providers=list(providers or default_providers())
        )

    @property
    def providers(self) -> list[str]:
        active: list[str] = self._session.get_providers()
        return active

    def embed(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        if not chips:
            return np.zeros((0, self.dimension), dtype=np.float32)
        expected = (self.chip_size, self.chip_size, 3)
        for number, chip in enumerate(chips):
            if chip.shape != expected:
                raise ValueError(f"chip {number} has shape {chip.shape}, expected {expected}")
        out = np.empty((len(chips), self.dimension), dtype=np.float32)
        for start in range(0, len(chips), self.batch_size):
            batch = np.ascontiguousarray(np.stack(chips[start : start + self.batch_size]), dtype=np.uint8)
            result = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
            out[start : start + len(batch)] = result
        return out


def load_fast_embedder(
    dat_path: Path | None = None,
    cache_dir: Path | None = None,
    providers: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    threads: int | None = None,
) -> OnnxResNetEmbedder:
    """An :class:`OnnxResNetEmbedder`, or :class:`FastEmbedderUnavailableError` saying why not (catch it and use
    ``DlibResNetEmbedder``)."""
    try:
        return OnnxResNetEmbedder(dat_path, cache_dir, providers, batch_size, threads)
    except ImportError as error:
        raise FastEmbedderUnavailableError(f"onnx or onnxruntime is not installed: {error}") from error
    except DlibDatError as error:
        raise FastEmbedderUnavailableError(f"cannot read the dlib model weights: {error}") from error
    except OSError as error:
        raise FastEmbedderUnavailableError(f"cannot read or cache the model: {error}") from error
    except Exception as error:  # onnx checker or onnxruntime failures have their own exception types
        raise FastEmbedderUnavailableError(
            f"ONNX Runtime cannot run the model: {type(error).__name__}: {error}"
        ) from error
