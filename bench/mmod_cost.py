"""Would dlib's CNN (mmod) face detector be practical on ONNX Runtime? Its cost, against HOG, side by side.

dlib's ``mmod_human_face_detector.dat`` is, per dlib's ``dnn_mmod_face_detection_ex.cpp``::

    downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, input>>>>>>>>>
    rcon5       = relu<affine<con5<45, ...>>>
    net_type    = loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>

(con5d: 5x5 stride 2, no padding; con5: 5x5 stride 1, padding 2). Its cost depends on the layer shapes, not on
the weights' values, so this builds the same convolutions with random weights (affine layers fold into them)
and times them on every level of the 5/6 pyramid that dlib scans, with one and two threads, against dlib's HOG
detector at upsample 0 and 1 on the same sizes. mmod finds faces from about 40 px at upsample 0, like HOG at
upsample 1, so those two are the fair pair.

    python -m bench.mmod_cost
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import dlib
import numpy as np
import numpy.typing as npt
from onnx import TensorProto, helper, numpy_helper

from facesearch.vision.models.onnx_resnet import onnxruntime_module

SIZES = ((350, 350), (480, 640), (960, 1280))
PYRAMID_STEP = 5 / 6
SMALLEST_LEVEL = 40
REPEATS = 3
# (input channels, output channels, kernel, stride, padding, relu after)
LAYERS = (
    (3, 16, 5, 2, 0, True),
    (16, 32, 5, 2, 0, True),
    (32, 32, 5, 2, 0, True),
    (32, 45, 5, 1, 2, True),
    (45, 45, 5, 1, 2, True),
    (45, 45, 5, 1, 2, True),
    (45, 1, 9, 1, 4, False),
)


def mmod_graph() -> bytes:
    random = np.random.default_rng(0)
    nodes, weights = [], []
    current = "input"
    for index, (cin, cout, kernel, stride, padding, relu) in enumerate(LAYERS):
        name = f"conv{index}"
        weight = (random.standard_normal((cout, cin, kernel, kernel)) * 0.05).astype(np.float32)
        weights += [
            numpy_helper.from_array(weight, f"{name}_w"),
            numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}_b"),
        ]
        nodes.append(
            helper.make_node(
                "Conv",
                [current, f"{name}_w", f"{name}_b"],
                [name],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[padding] * 4,
            )
        )
        current = name
        if relu:
            nodes.append(helper.make_node("Relu", [name], [f"{name}_relu"]))
            current = f"{name}_relu"
    graph = helper.make_graph(
        nodes,
        "mmod",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, None)],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return bytes(model.SerializeToString())


def pyramid(height: int, width: int) -> list[tuple[int, int]]:
    levels, scale = [], 1.0
    while min(height, width) * scale >= SMALLEST_LEVEL:
        levels.append((int(height * scale), int(width * scale)))
        scale *= PYRAMID_STEP
    return levels


def milliseconds(work: Callable[[], object]) -> float:
    work()
    started = time.perf_counter()
    for _ in range(REPEATS):
        work()
    return (time.perf_counter() - started) / REPEATS * 1000


def run_levels(session: Any, levels: list[npt.NDArray[np.float32]]) -> None:
    for level in levels:
        session.run(None, {"input": level})


def main() -> int:
    ort = onnxruntime_module()
    graph = mmod_graph()
    sessions = {}
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        sessions[threads] = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    hog = dlib.get_frontal_face_detector()
    random = np.random.default_rng(1)
    print("| image | mmod levels | mmod on ONNX, 1 thread | 2 threads | HOG upsample 0 | HOG upsample 1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for height, width in SIZES:
        levels = [random.standard_normal((1, 3, h, w)).astype(np.float32) for h, w in pyramid(height, width)]
        pixels: npt.NDArray[np.uint8] = random.integers(0, 255, (height, width, 3), dtype=np.uint8)
        cells = [milliseconds(partial(run_levels, sessions[threads], levels)) for threads in (1, 2)]
        cells += [milliseconds(partial(hog.run, pixels, upsample, 0.0)) for upsample in (0, 1)]
        print(f"| {width}x{height} | {len(levels)} | " + " | ".join(f"{ms:.0f} ms" for ms in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
