"""A reader for dlib's serialization of its face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``).

dlib writes a network by serializing its outermost object, ``loss_metric<fc_no_bias<... input_rgb_image_sized<150>>>``
(``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``). Every wrapper writes its version, then its
subnetwork, then its own details (``dlib/dnn/core.h``), so the stream holds, in order:

1. ``add_loss_layer``: version 1, the ``loss_metric_`` details, then the subnetwork;
2. one version integer per layer from the output end down: 2 for ``add_layer`` (3 or 2 for the bottom one, whose
   subnetwork is the input layer), 1 for ``add_tag_layer`` and ``add_skip_layer``;
3. the input layer (``input_rgb_image_sized``), then, from the input end up, each ``add_layer``'s details followed by
   its bookkeeping (three booleans and the ``x_grad``, ``cached_output`` and ``params_grad``/``grad_final``
   tensors). Tag and skip layers write nothing but their version.

Tag and skip layers write no name and ``add_prev_`` writes no tag id, so the stream cannot be read without
knowing the network type: :func:`face_resnet_spec` spells out ``anet_type`` and the reader checks every version,
name and hyper-parameter against it, failing with :class:`DlibDatError` (which gives the byte offset) on the
first mismatch.

Primitive encodings (``dlib/serialize.h``, ``dlib/float_details.h``, ``dlib/dnn/tensor.h``):

* integers: a control byte (low 4 bits: byte count; 0x80: negative, signed types only), then the magnitude in
  little-endian bytes;
* ``bool``: the character ``'1'`` or ``'0'``;
* ``std::string``: an ``unsigned long`` length, then the bytes;
* ``float``/``double``: ``float_details``, an ``int64`` mantissa and an ``int16`` exponent, value
  ``mantissa * 2**exponent`` (exponents 32000/32001/32002 mean +inf/-inf/NaN);
* ``resizable_tensor``: ``int`` version, then ``num_samples, k, nr, nc`` as ``long``, then the values: version 2
  as raw little-endian IEEE float32, version 1 as one ``float_details`` each;
* ``alias_tensor``: ``int`` version 1 and the four dimensions, no data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

LayerKind = Literal["input", "con", "affine", "relu", "max_pool", "avg_pool", "tag", "skip", "add_prev", "fc"]

CONV_MODE = 0
"""``dlib::layer_mode::CONV_MODE``: an affine layer with one scale and shift per channel."""

FC_HAS_BIAS = 0
FC_NO_BIAS = 1
"""``dlib::fc_bias_mode``."""

_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002

# Sizes in bytes of the C++ types dlib serializes here (LP64: long and size_t are 8 bytes).
_INT, _LONG, _UINT, _ULONG, _INT16, _INT64 = 4, 8, 4, 8, 2, 8


class DlibDatError(ValueError):
    """The file is not the dlib network expected: truncated, corrupted or of another type."""

    def __init__(self, message: str, offset: int, path: str = "") -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{message} (at byte offset {offset})")
        self.offset = offset
        self.path = path


@dataclass(frozen=True)
class LayerRecord:
    """One layer of the network, in input-to-output order.

    ``kind`` and what ``arrays`` and ``attrs`` hold:

    * ``input``: ``arrays["mean"]`` (red, green, blue), ``attrs`` ``nr``, ``nc``; the input tensor is
      ``(pixel - mean) / 256`` in NCHW order, channels R, G, B;
    * ``con``: ``arrays["weights"]`` (filters, channels, nr, nc), ``arrays["bias"]`` (filters) when present;
      ``attrs`` ``num_filters``, ``channels``, ``nr``, ``nc``, ``stride_y``, ``stride_x``, ``padding_y``,
      ``padding_x``, ``use_bias`` (0/1);
    * ``affine``: ``arrays["gamma"]``, ``arrays["beta"]`` (one per channel in CONV_MODE); ``attrs["mode"]``;
    * ``relu``: nothing;
    * ``max_pool`` / ``avg_pool``: ``attrs`` ``nr``, ``nc`` (0: the whole input), ``stride_y``, ``stride_x``,
      ``padding_y``, ``padding_x``;
    * ``tag``: ``attrs["id"]``: this point's output is remembered as tag ``id``;
    * ``skip``: ``attrs["id"]``: the output of the most recent tag ``id`` becomes the current output;
    * ``add_prev``: ``attrs["tag"]``: current output plus the most recent tag's output, zero-padding either to the
      larger size in each dimension (``dlib::tt::add``);
    * ``fc``: ``arrays["weights"]`` (inputs, outputs) so that ``y = x @ weights``; ``arrays["bias"]`` when
      present; ``attrs`` ``num_inputs``, ``num_outputs``, ``use_bias``.
    """

    kind: LayerKind
    arrays: Mapping[str, FloatArray] = field(default_factory=dict)
    attrs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DlibNetwork:
    layers: list[LayerRecord]
    """Input to output; the first is the ``input`` layer."""
    loss_margin: float
    loss_dist_thresh: float
    """The ``loss_metric_`` settings (the 0.6 distance threshold the network was trained for)."""

    def count(self, kind: LayerKind) -> int:
        return sum(1 for layer in self.layers if layer.kind == kind)


# -- expected structure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    kind: LayerKind
    attrs: Mapping[str, int] = field(default_factory=dict)


def _con(filters: int, size: int, stride: int) -> _Spec:
    padding = 0 if stride != 1 else size // 2  # con_'s default _padding_y = _stride_y!=1? 0 : _nr/2
    return _Spec(
        "con",
        {"num_filters": filters, "nr": size, "nc": size, "stride_y": stride, "stride_x": stride,
         "padding_y": padding, "padding_x": padding},
    )  # fmt: skip


def _pool(kind: LayerKind, size: int, stride: int) -> _Spec:
    padding = 0 if stride != 1 or size == 0 else size // 2
    return _Spec(
        kind,
        {"nr": size, "nc": size, "stride_y": stride, "stride_x": stride, "padding_y": padding, "padding_x": padding},
    )


def _block(filters: int, stride: int) -> list[_Spec]:
    """``block<N,affine,stride,SUBNET> = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,SUBNET>>>>>``,
    input to output."""
    return [_con(filters, 3, stride), _Spec("affine"), _Spec("relu"), _con(filters, 3, 1), _Spec("affine")]


def _ares(filters: int) -> list[_Spec]:
    """``relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>``, input to output."""
    return [_Spec("tag", {"id": 1}), *_block(filters, 1), _Spec("add_prev", {"tag": 1}), _Spec("relu")]


def _ares_down(filters: int) -> list[_Spec]:
    """``relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>``, input to output."""
    return [
        _Spec("tag", {"id": 1}),
        *_block(filters, 2),
        _Spec("tag", {"id": 2}),
        _Spec("skip", {"id": 1}),
        _pool("avg_pool", 2, 2),
        _Spec("add_prev", {"tag": 2}),
        _Spec("relu"),
    ]


def face_resnet_spec(input_size: int = 150) -> list[_Spec]:
    """``anet_type`` of ``dnn_face_recognition_ex.cpp`` without its loss layer, input to output."""
    specs: list[_Spec] = [
        _Spec("input", {"nr": input_size, "nc": input_size}),
        _con(32, 7, 2),
        _Spec("affine"),
        _Spec("relu"),
        _pool("max_pool", 3, 2),
    ]
    levels = [  # alevel4 .. alevel0, each input to output
        [_ares(32), _ares(32), _ares(32)],
        [_ares_down(64), _ares(64), _ares(64), _ares(64)],
        [_ares_down(128), _ares(128), _ares(128)],
        [_ares_down(256), _ares(256), _ares(256)],
        [_ares_down(256)],
    ]
    for level in levels:
        for residual in level:
            specs.extend(residual)
    specs.append(_pool("avg_pool", 0, 1))  # avg_pool_everything = avg_pool<0,0,1,1>
    specs.append(_Spec("fc", {"num_outputs": 128, "use_bias": 0}))  # fc_no_bias<128>
    return specs


# -- primitive reader --------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, message: str, offset: int | None = None) -> DlibDatError:
        return DlibDatError(message, self.pos if offset is None else offset, self.path)

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail(
                f"unexpected end of file reading {what}: needs {count} bytes, {len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self, size: int, signed: bool, what: str) -> int:
        start = self.pos
        control = self.take(1, what)[0]
        if control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x} for {what}", start)
        negative = bool(control & 0x80)
        count = control & 0x0F
        if negative and not signed:
            raise self.fail(f"negative value for unsigned {what}", start)
        if count == 0 or count > size:
            raise self.fail(f"bad integer byte count {count} for {what} (a {size}-byte type)", start)
        value = int.from_bytes(self.take(count, what), "little")
        return -value if negative else value

    def int_(self, what: str) -> int:
        return self.integer(_INT, True, what)

    def long(self, what: str) -> int:
        return self.integer(_LONG, True, what)

    def ulong(self, what: str) -> int:
        return self.integer(_ULONG, False, what)

    def uint(self, what: str) -> int:
        return self.integer(_UINT, False, what)

    def boolean(self, what: str) -> bool:
        start = self.pos
        char = self.take(1, what)
        if char not in (b"0", b"1"):
            raise self.fail(f"bad bool {char!r} for {what}", start)
        return char == b"1"

    def string(self, what: str) -> str:
        start = self.pos
        length = self.ulong(f"length of {what}")
        if length > 256:
            raise self.fail(f"implausible string length {length} for {what}", start)
        raw = self.take(length, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"non-ASCII {what} {raw!r}", start) from None

    def name(self, expected: str, what: str) -> None:
        start = self.pos
        found = self.string(f"{what} name")
        if found != expected:
            raise self.fail(f"expected {what} {expected!r}, found {found!r}", start)

    def real(self, what: str) -> float:
        start = self.pos
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail(f"{what} uses dlib's old text float format, which this reader does not support", start)
        mantissa = self.integer(_INT64, True, f"mantissa of {what}")
        exponent = self.integer(_INT16, True, f"exponent of {what}")
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent >= _FLOAT_INF:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def float32(self, what: str) -> float:
        """A float stored from a C++ ``float``, rounded to float32 as dlib's ``convert_to_T<float>`` does."""
        return float(np.float32(self.real(what)))

    def dims(self, what: str) -> tuple[int, int, int, int]:
        dims = (
            self.long(f"num_samples of {what}"),
            self.long(f"k of {what}"),
            self.long(f"nr of {what}"),
            self.long(f"nc of {what}"),
        )
        if any(d < 0 for d in dims):
            raise self.fail(f"negative dimension in {what}: {dims}")
        return dims

    def tensor(self, what: str) -> FloatArray:
        start = self.pos
        version = self.int_(f"version of tensor {what}")
        shape = self.dims(f"tensor {what}")
        size = math.prod(shape)
        if version == 2:
            values = np.frombuffer(self.take(4 * size, f"values of tensor {what}"), dtype="<f4")
            return values.astype(np.float32).reshape(shape)
        if version == 1:
            return np.array([self.float32(f"value {i} of tensor {what}") for i in range(size)], np.float32).reshape(
                shape
            )
        raise self.fail(f"unknown tensor version {version} for {what}", start)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        start = self.pos
        version = self.int_(f"version of alias tensor {what}")
        if version != 1:
            raise self.fail(f"unknown alias_tensor version {version} for {what}", start)
        return self.dims(f"alias tensor {what}")


# -- layer details -----------------------------------------------------------------------------------


def _check(reader: _Reader, what: str, found: int, expected: Mapping[str, int], key: str, offset: int) -> None:
    if key in expected and expected[key] != found:
        raise reader.fail(f"{what}: expected {key}={expected[key]}, found {found}", offset)


def _check_all(reader: _Reader, what: str, attrs: dict[str, int], spec: _Spec, at: int) -> None:
    """Each of ``attrs`` that the spec fixes must have the spec's value."""
    for key, value in attrs.items():
        _check(reader, what, value, spec.attrs, key, at)


def _read_input(reader: _Reader, spec: _Spec, index: int) -> LayerRecord:
    start = reader.pos
    reader.name("input_rgb_image_sized", "input layer")
    mean = np.array([reader.float32(f"avg_{c} of the input layer") for c in ("red", "green", "blue")], np.float32)
    nr = reader.ulong("NR of the input layer")
    nc = reader.ulong("NC of the input layer")
    _check_all(reader, f"layer {index} (input)", {"nr": nr, "nc": nc}, spec, start)
    return LayerRecord("input", {"mean": mean}, {"nr": nr, "nc": nc})


def _read_con(reader: _Reader, spec: _Spec, index: int) -> LayerRecord:
    what = f"layer {index} (con)"
    start = reader.pos
    version = reader.string(f"{what} version")
    if version not in ("con_4", "con_5", "con_6"):
        raise reader.fail(f"{what}: expected version con_4, con_5 or con_6, found {version!r}", start)
    params = reader.tensor(f"params of {what}").reshape(-1)
    at = reader.pos
    attrs = {"num_filters": reader.long(f"num_filters of {what}"), **_read_window(reader, what)}
    _check_all(reader, what, attrs, spec, at)
    at = reader.pos
    filters = reader.alias(f"filters of {what}")
    bias_dims = reader.alias(f"biases of {what}")
    for multiplier in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        reader.real(f"{multiplier}_multiplier of {what}")
    use_bias = True
    if version in ("con_5", "con_6"):
        use_bias = reader.boolean(f"use_bias of {what}")
    if version == "con_6" and reader.boolean(f"use_relu of {what}"):
        raise reader.fail(f"{what}: fused relu (use_relu) is not supported")
    n, channels, nr, nc = filters
    if (n, nr, nc) != (attrs["num_filters"], attrs["nr"], attrs["nc"]):
        raise reader.fail(f"{what}: filter dimensions {filters} disagree with {attrs}", at)
    weight_count = math.prod(filters)
    bias_count = n if use_bias else 0
    if params.size != weight_count + bias_count:
        raise reader.fail(f"{what}: {params.size} parameters for filters {filters} and {bias_count} biases", at)
    if use_bias and math.prod(bias_dims) != n:
        raise reader.fail(f"{what}: bias dimensions {bias_dims} for {n} filters", at)
    arrays = {"weights": params[:weight_count].reshape(filters)}
    if use_bias:
        arrays["bias"] = params[weight_count:]
    return LayerRecord("con", arrays, {**attrs, "channels": channels, "use_bias": int(use_bias)})


def _read_affine(reader: _Reader, spec: _Spec, index: int) -> LayerRecord:
    what = f"layer {index} (affine)"
    start = reader.pos
    version = reader.string(f"{what} version")
    if version != "affine_":
        raise reader.fail(
            f"{what}: expected version 'affine_', found {version!r} (batch-norm layers not supported)", start
        )
    params = reader.tensor(f"params of {what}").reshape(-1)
    at = reader.pos
    gamma_dims = reader.alias(f"gamma of {what}")
    beta_dims = reader.alias(f"beta of {what}")
    mode = reader.int_(f"mode of {what}")
    size = math.prod(gamma_dims)
    if gamma_dims != beta_dims or params.size != 2 * size:
        raise reader.fail(f"{what}: {params.size} parameters for gamma {gamma_dims} and beta {beta_dims}", at)
    return LayerRecord("affine", {"gamma": params[:size], "beta": params[size:]}, {"mode": mode})


def _read_pool(reader: _Reader, spec: _Spec, index: int) -> LayerRecord:
    what = f"layer {index} ({spec.kind})"
    reader.name(f"{spec.kind}_2", what)
    at = reader.pos
    attrs = _read_window(reader, what)
    _check_all(reader, what, attrs, spec, at)
    return LayerRecord(spec.kind, {}, attrs)


def _read_window(reader: _Reader, what: str) -> dict[str, int]:
    """A convolution's or pooling's window, as dlib writes it: rows and columns (long), then strides and
    paddings (int), y before x."""
    return {
        "nr": reader.long(f"nr of {what}"),
        "nc": reader.long(f"nc of {what}"),
        "stride_y": reader.int_(f"stride_y of {what}"),
        "stride_x": reader.int_(f"stride_x of {what}"),
        "padding_y": reader.int_(f"padding_y of {what}"),
        "padding_x": reader.int_(f"padding_x of {what}"),
    }


def _read_fc(reader: _Reader, spec: _Spec, index: int) -> LayerRecord:
    what = f"layer {index} (fc)"
    reader.name("fc_2", what)
    at = reader.pos
    num_outputs = reader.ulong(f"num_outputs of {what}")
    num_inputs = reader.ulong(f"num_inputs of {what}")
    _check(reader, what, num_outputs, spec.attrs, "num_outputs", at)
    params = reader.tensor(f"params of {what}").reshape(-1)
    at = reader.pos
    weights_dims = reader.alias(f"weights of {what}")
    reader.alias(f"biases of {what}")
    bias_mode = reader.int_(f"bias mode of {what}")
    if bias_mode not in (FC_HAS_BIAS, FC_NO_BIAS):
        raise reader.fail(f"{what}: unknown bias mode {bias_mode}", at)
    use_bias = int(bias_mode == FC_HAS_BIAS)
    _check(reader, what, use_bias, spec.attrs, "use_bias", at)
    for multiplier in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        reader.real(f"{multiplier}_multiplier of {what}")
    if weights_dims[:2] != (num_inputs, num_outputs) or params.size != (num_inputs + use_bias) * num_outputs:
        raise reader.fail(f"{what}: {params.size} parameters, weights {weights_dims}, {num_inputs}x{num_outputs}", at)
    matrix = params.reshape(num_inputs + use_bias, num_outputs)
    arrays = {"weights": matrix[:num_inputs]}
    if use_bias:
        arrays["bias"] = matrix[num_inputs]
    return LayerRecord("fc", arrays, {"num_inputs": num_inputs, "num_outputs": num_outputs, "use_bias": use_bias})


def _read_details(reader: _Reader, spec: _Spec, index: int) -> LayerRecord:
    if spec.kind == "con":
        return _read_con(reader, spec, index)
    if spec.kind == "affine":
        return _read_affine(reader, spec, index)
    if spec.kind in ("max_pool", "avg_pool"):
        return _read_pool(reader, spec, index)
    if spec.kind == "fc":
        return _read_fc(reader, spec, index)
    if spec.kind == "relu":
        reader.name("relu_", f"layer {index} (relu)")
        return LayerRecord("relu")
    if spec.kind == "add_prev":
        reader.name("add_prev_", f"layer {index} (add_prev)")
        return LayerRecord("add_prev", {}, dict(spec.attrs))
    raise reader.fail(f"layer {index}: no reader for {spec.kind!r}")


def _read_bookkeeping(reader: _Reader, index: int, over_input: bool, version: int) -> None:
    """What ``add_layer`` writes after its details: state flags and scratch tensors, ignored here."""
    what = f"layer {index}"
    reader.boolean(f"this_layer_setup_called of {what}")
    reader.boolean(f"gradient_input_is_stale of {what}")
    reader.boolean(f"get_output_and_gradient_input_disabled of {what}")
    reader.tensor(f"x_grad of {what}")
    reader.tensor(f"cached_output of {what}")
    if over_input:
        reader.tensor(f"grad_final of {what}")
        if version >= 3:
            reader.uint(f"sample_expansion_factor of {what}")
    else:
        reader.tensor(f"params_grad of {what}")


# -- the network -------------------------------------------------------------------------------------


def parse_network(data: bytes, spec: list[_Spec] | None = None, path: str = "") -> DlibNetwork:
    """Read ``loss_metric<...>`` serialized by dlib from ``data``, checking it against ``spec`` (input to output;
    default :func:`face_resnet_spec`)."""
    specs = face_resnet_spec() if spec is None else spec
    if not specs or specs[0].kind != "input":
        raise ValueError("the spec must start with the input layer")
    reader = _Reader(data, path)

    start = reader.pos
    loss_version = reader.int_("add_loss_layer version")
    if loss_version != 1:
        raise reader.fail(f"expected add_loss_layer version 1, found {loss_version}", start)
    start = reader.pos
    loss_name = reader.string("loss layer version")
    if loss_name != "loss_metric_2":
        raise reader.fail(f"expected loss layer 'loss_metric_2', found {loss_name!r}", start)
    margin = reader.float32("margin of loss_metric_")
    dist_thresh = reader.float32("dist_thresh of loss_metric_")

    # Versions, output end first (each wrapper writes its version before its subnetwork).
    versions: dict[int, int] = {}
    for index in range(len(specs) - 1, 0, -1):
        kind = specs[index].kind
        start = reader.pos
        version = reader.int_(f"version of layer {index} ({kind})")
        if kind in ("tag", "skip"):
            allowed: tuple[int, ...] = (1,)
        elif index == 1:
            allowed = (2, 3)  # add_layer whose subnetwork is the input layer
        else:
            allowed = (2,)
        if version not in allowed:
            raise reader.fail(
                f"layer {index} ({kind}) has wrapper version {version}, expected one of {allowed}: "
                "the file does not hold the network type expected",
                start,
            )
        versions[index] = version

    layers = [_read_input(reader, specs[0], 0)]
    for index in range(1, len(specs)):
        layer_spec = specs[index]
        if layer_spec.kind in ("tag", "skip"):
            layers.append(LayerRecord(layer_spec.kind, {}, dict(layer_spec.attrs)))
            continue
        layers.append(_read_details(reader, layer_spec, index))
        _read_bookkeeping(reader, index, index == 1, versions[index])

    if reader.pos != len(data):
        raise reader.fail(f"{len(data) - reader.pos} unexpected bytes after the network")
    return DlibNetwork(layers, margin, dist_thresh)


def read_dat(path: str | Path) -> DlibNetwork:
    """Parse dlib's ``dlib_face_recognition_resnet_model_v1.dat`` at ``path``."""
    return parse_network(Path(path).read_bytes(), path=str(path))
