"""FaceNet in 8-bit integers: the 32-bit graph of ``onnx_facenet.py`` quantised by ONNX Runtime's own tools, with
activation ranges shipped beside this module, so every machine builds the same graph and no photo is needed.

Weights become signed 8 bits per output channel and activations unsigned 8 bits (QDQ format: convolutions and the
dense layer), each activation's range being the one ``quantisation/facenet-keras-2024-int8-v1.json`` records.
Those ranges were read by ``bench/facenet_int8.py`` from 150 dev LFW chips (seeded) at their 99.999th percentile;
built from them, the graph is byte for byte the one that bench measured (2.4x less CPU per chip than 32 bits, the
cosine between a chip's two templates 0.99 at the median; ``bench/README.md``, "FaceNet in 8 bits").

The graph is cached beside the 32-bit one as ``facenet-keras-2024-<sha256 of the .h5>-b<builder>-int8-<sha256 of the
ranges>.onnx`` with its checksum, and is built (about 7 s) when missing or altered.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from facesearch.vision.models.cache import is_intact, sha256_file, store_checked
from facesearch.vision.models.facenet_h5 import check_sha256, model_path
from facesearch.vision.models.onnx_facenet import BUILDER_VERSION, cached_model_path, ensure_onnx_model

RANGES = Path(__file__).with_name("quantisation") / "facenet-keras-2024-int8-v1.json"
PERCENTILE = 99.999
"""The percentile the shipped ranges were read at (ONNX Runtime checks that a cache matches its method)."""
QUANTISED_OPS = ("Conv", "MatMul", "Gemm")


def cached_int8_path(float_graph: Path) -> Path:
    """Where the 8-bit form of the cached 32-bit graph ``float_graph`` is cached, beside it."""
    stem = float_graph.name.removesuffix(f"-b{BUILDER_VERSION}.onnx")
    return float_graph.with_name(f"{stem}-b{BUILDER_VERSION}-int8-{sha256_file(RANGES)[:12]}.onnx")


def ensure_int8_model(h5_path: Path | None = None, cache_dir: Path | None = None) -> Path:
    """The cached 8-bit graph, quantised from the cached 32-bit graph when it is missing or its checksum does not
    match. The ``.h5`` is checked every time; the 32-bit graph (91 MB to checksum) only when it is needed."""
    source = model_path() if h5_path is None else Path(h5_path)
    path = cached_int8_path(cached_model_path(check_sha256(source), cache_dir))
    if not is_intact(path):
        float_graph = ensure_onnx_model(source, cache_dir)
        with tempfile.TemporaryDirectory(prefix="facesearch-int8-") as work:
            target = Path(work) / "int8.onnx"
            quantise(float_graph, target)
            store_checked(path, target.read_bytes())
    return path


def quantise(float_graph: Path, target: Path, chips: Any = None) -> None:
    """``float_graph`` in 8 bits, written to ``target``, with the shipped activation ranges; or, given ``chips``
    (an ONNX Runtime ``CalibrationDataReader``) and no ranges file, with ranges read from those chips, which are
    then written to RANGES (``bench/facenet_int8.py`` makes them so)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_name(target.stem + ".prepared.onnx")
    quant_pre_process(str(float_graph), str(prepared), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(prepared),
            str(target),
            chips,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.Percentile,
            op_types_to_quantize=list(QUANTISED_OPS),
            extra_options={"CalibPercentile": PERCENTILE},
            calibration_cache_path=str(RANGES),  # read when it is there, else written from ``chips``
        )
    finally:
        prepared.unlink(missing_ok=True)
