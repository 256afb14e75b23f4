"""The ONNX Runtime port of dlib's face-recognition ResNet: our reader of dlib's ``.dat`` format, the graph built
from it, its cache, and that it gives dlib's own templates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from conftest import FIXTURES
from facesearch.core.records import RGBImage
from facesearch.vision.alignment import face_chip
from facesearch.vision.models import onnx_resnet
from facesearch.vision.models.cache import default_cache_dir
from facesearch.vision.models.dlib_dat import DlibDatError, DlibNetwork, read_dat
from facesearch.vision.models.dlib_models import DlibFivePointLandmarks, DlibHogDetector, DlibResNetEmbedder
from facesearch.vision.models.onnx_resnet import (
    FastEmbedderUnavailableError,
    OnnxResNetEmbedder,
    cached_model_path,
    default_dat_path,
    load_fast_embedder,
)

DAT = default_dat_path()


@pytest.fixture(scope="module")
def network() -> DlibNetwork:
    return read_dat(DAT)


@pytest.fixture(scope="module")
def chips() -> list[RGBImage]:
    """Aligned chips of every face HOG finds in the identity fixtures, made as the pipeline makes them."""
    detector, landmarks = DlibHogDetector(), DlibFivePointLandmarks()
    found: list[RGBImage] = []
    for path in sorted((FIXTURES / "identities").iterdir()):
        if path.suffix.lower() not in {".jpg", ".png"}:
            continue
        pixels: RGBImage = np.asarray(Image.open(path).convert("RGB"))
        for box, _ in detector.detect(pixels, 1, 0.0):
            found.append(face_chip(pixels, box, landmarks.landmarks(pixels, box), 150, 0.25))
    assert len(found) >= 12
    return found


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_embedder(cache_dir: Path) -> OnnxResNetEmbedder:
    return OnnxResNetEmbedder(cache_dir=cache_dir)


def _distances(templates: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    diff = templates[:, None, :] - templates[None, :, :]
    result: npt.NDArray[np.float32] = np.sqrt((diff * diff).sum(axis=2))
    return result


# -- the parser ---------------------------------------------------------------------------------------


def test_parser_reads_the_whole_network(network: DlibNetwork) -> None:
    counts = {kind: network.count(kind) for kind in ("con", "affine", "relu", "add_prev", "max_pool", "avg_pool")}
    assert counts == {"con": 29, "affine": 29, "relu": 29, "add_prev": 14, "max_pool": 1, "avg_pool": 5}
    assert network.count("fc") == 1 and network.count("input") == 1
    assert network.count("skip") == 4  # one per ares_down
    assert network.count("tag") == 14 + 4  # tag1 in every residual block, tag2 in every ares_down

    first = network.layers[0]
    assert first.kind == "input" and (first.attrs["nr"], first.attrs["nc"]) == (150, 150)
    np.testing.assert_allclose(first.arrays["mean"], [122.782, 117.001, 104.298], atol=1e-4)

    con = network.layers[1]
    assert con.kind == "con" and con.arrays["weights"].shape == (32, 3, 7, 7) and con.arrays["bias"].shape == (32,)
    assert (con.attrs["stride_y"], con.attrs["padding_y"]) == (2, 0)
    convs = [layer for layer in network.layers if layer.kind == "con"]
    assert [c.attrs["num_filters"] for c in convs[-2:]] == [256, 256]
    assert all(np.isfinite(c.arrays["weights"]).all() for c in convs)

    fc = network.layers[-1]
    assert fc.kind == "fc" and fc.arrays["weights"].shape == (256, 128) and "bias" not in fc.arrays
    assert fc.attrs["use_bias"] == 0
    assert network.loss_dist_thresh == pytest.approx(0.6) and network.loss_margin == pytest.approx(0.04)


def test_truncated_file_fails_with_offset(tmp_path: Path) -> None:
    data = DAT.read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibDatError, match=r"unexpected end of file.*at byte offset \d+") as caught:
        read_dat(truncated)
    assert 0 < caught.value.offset <= len(data) // 2
    assert str(truncated) in str(caught.value)


def test_corrupted_file_fails_with_offset(tmp_path: Path) -> None:
    data = bytearray(DAT.read_bytes())
    position = data.index(b"con_4")
    data[position : position + 5] = b"con_9"
    corrupted = tmp_path / "corrupted.dat"
    corrupted.write_bytes(bytes(data))
    with pytest.raises(DlibDatError, match="con_9") as caught:
        read_dat(corrupted)
    assert caught.value.offset == position - 2  # the string's length prefix (1 control byte + 1 byte)

    other = tmp_path / "other.dat"
    other.write_bytes(b"\x01\x01\x01\x0dloss_multiclass_log_")
    with pytest.raises(DlibDatError, match="loss_metric_2"):
        read_dat(other)


def test_trailing_bytes_are_rejected(tmp_path: Path) -> None:
    padded = tmp_path / "padded.dat"
    padded.write_bytes(DAT.read_bytes() + b"\x00")
    with pytest.raises(DlibDatError, match="unexpected bytes after the network"):
        read_dat(padded)


def test_load_fast_embedder_reports_bad_weights(tmp_path: Path) -> None:
    broken = tmp_path / "broken.dat"
    broken.write_bytes(DAT.read_bytes()[:1000])
    with pytest.raises(FastEmbedderUnavailableError, match="cannot read the dlib model weights"):
        load_fast_embedder(dat_path=broken, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.onnx"))


# -- same templates as dlib ---------------------------------------------------------------------------


def test_onnx_templates_equal_dlibs(chips: list[RGBImage], onnx_embedder: OnnxResNetEmbedder) -> None:
    expected = DlibResNetEmbedder().embed(chips)
    got = onnx_embedder.embed(chips)
    assert got.shape == (len(chips), 128) and got.dtype == np.float32
    assert float(np.abs(got - expected).max()) < 1e-3
    assert float(np.abs(_distances(got) - _distances(expected)).max()) < 1e-3


def test_batches_do_not_change_templates(chips: list[RGBImage], cache_dir: Path) -> None:
    whole = OnnxResNetEmbedder(cache_dir=cache_dir, batch_size=32).embed(chips)
    small = OnnxResNetEmbedder(cache_dir=cache_dir, batch_size=5).embed(chips)
    single = np.concatenate([OnnxResNetEmbedder(cache_dir=cache_dir, batch_size=1).embed(chips[:2])])
    assert float(np.abs(whole - small).max()) < 1e-5
    assert float(np.abs(whole[:2] - single).max()) < 1e-5


def test_embedder_matches_dlibs_interface(onnx_embedder: OnnxResNetEmbedder) -> None:
    dlib_embedder = DlibResNetEmbedder
    for attribute in ("name", "dimension", "chip_size", "chip_padding"):
        assert getattr(onnx_embedder, attribute) == getattr(dlib_embedder, attribute)
    empty = onnx_embedder.embed([])
    assert empty.shape == (0, 128) and empty.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        onnx_embedder.embed([np.zeros((100, 100, 3), dtype=np.uint8)])
    assert onnx_embedder.providers[-1] == "CPUExecutionProvider"


# -- the cache ----------------------------------------------------------------------------------------


def test_cache_is_reused_and_rebuilt_when_altered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = load_fast_embedder(cache_dir=cache)
    model = cached_model_path(DAT, cache)
    assert first.model_path == model and model.is_file()
    original = model.read_bytes()

    def no_build(*_: object) -> bytes:
        raise AssertionError("the cached model should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(onnx_resnet, "build_onnx", no_build)
        second = load_fast_embedder(cache_dir=cache)
    assert second.model_path == model

    altered = bytearray(original)
    altered[len(altered) // 2] ^= 0xFF
    model.write_bytes(bytes(altered))
    builds: list[int] = []
    real_build = onnx_resnet.build_onnx

    def counting_build(network: DlibNetwork) -> bytes:
        builds.append(1)
        return real_build(network)

    monkeypatch.setattr(onnx_resnet, "build_onnx", counting_build)
    third = load_fast_embedder(cache_dir=cache)
    assert builds == [1]
    assert model.read_bytes() == original
    probe = [np.full((150, 150, 3), 128, dtype=np.uint8)]
    np.testing.assert_array_equal(first.embed(probe), third.embed(probe))


def test_default_cache_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "facesearch"
    assert cached_model_path(DAT).parent == tmp_path / "facesearch"
    assert cached_model_path(DAT).name.startswith("dlib-resnet-v1-")


def test_the_setting_picks_the_runtime_and_auto_falls_back_to_dlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from facesearch.core.errors import DataFolderError
    from facesearch.core.settings import EmbedderChoice
    from facesearch.vision.models import onnx_resnet
    from facesearch.vision.models.dlib_models import DlibResNetEmbedder
    from facesearch.vision.models.registry import ModelSet

    models = ModelSet()
    models.configure(EmbedderChoice("onnx", tmp_path))
    assert isinstance(models.embedder, OnnxResNetEmbedder)
    models.configure(EmbedderChoice("dlib", tmp_path))
    assert isinstance(models.embedder, DlibResNetEmbedder)

    def unavailable(**_: object) -> OnnxResNetEmbedder:
        raise onnx_resnet.FastEmbedderUnavailableError("onnxruntime is not installed")

    monkeypatch.setattr(onnx_resnet, "load_fast_embedder", unavailable)
    models.configure(EmbedderChoice("auto", tmp_path / "other"))
    with caplog.at_level("WARNING"):
        assert isinstance(models.embedder, DlibResNetEmbedder)
    assert "using dlib's" in caplog.text
    models.configure(EmbedderChoice("onnx", tmp_path / "third"))
    with pytest.raises(DataFolderError, match="FACESEARCH_EMBEDDER=dlib"):
        _ = models.embedder
