"""The fused recipe's scale (``vision/recipes.py``, FUSED_SCALE): the factor that puts the 0.6 match threshold of
``dlib4view+facenet2view-v1`` at the false-match rate 0.6 gives dlib's four-view templates, chosen out of fold.

The faces are those ``bench/template_fusion.py`` reads (both pipelines' caches, FaceNet over the chip and its mirror).
The identities are dealt into 5 folds; for each fold, dlib's false-match rate at 0.6 and the fused distance at that
rate are found on the pairs of the other folds' faces, and the held-out fold's pairs are scored at that scale: its
false-match rate and true-accept rate beside dlib's at 0.6. The scale to ship is fitted on every pair.

    PYTHONPATH=src python -m bench.recipe_threshold [--json bench/results/recipe-threshold.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.identification import FMRS
from bench.template_fusion import distances, identity_folds, load_dataset, unit
from bench.verify_accuracy import default_dev_dir, tar_at_far
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD
from facesearch.vision.recipes import FUSED_DLIB_WEIGHT

Floats = npt.NDArray[np.float64]


def fused_templates(dlib: npt.NDArray[np.float32], facenet: npt.NDArray[np.float32], weight: float) -> Floats:
    """As ``vision/recipes.py`` makes them (before FUSED_SCALE): ``weight`` is dlib's share."""
    return np.hstack([np.sqrt(weight) * unit(dlib), np.sqrt(1 - weight) * unit(facenet)]).astype(np.float64)


def scale_for(dlib: Floats, fused: Floats, threshold: float) -> tuple[float, float]:
    """(dlib's false-match rate at ``threshold``, the scale that gives the fused distances that rate there)."""
    fmr = float(np.mean(dlib <= threshold))
    return fmr, threshold / float(np.quantile(fused, fmr))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    data = load_dataset(args.data, facenet_views=2)
    dlib_matrix = distances(data.dlib)
    fused_matrix = distances(fused_templates(data.dlib, data.facenet, FUSED_DLIB_WEIGHT).astype(np.float32))
    folds = identity_folds(data.labels)
    same_person = data.labels[:, None] == data.labels[None, :]
    upper = np.triu(np.ones_like(same_person), k=1)
    threshold = DEFAULT_MATCH_THRESHOLD
    rows = []
    for fold in range(int(folds.max()) + 1):
        held = folds == fold
        train = upper & ~held[:, None] & ~held[None, :]
        test = upper & held[:, None] & held[None, :]
        fmr, scale = scale_for(dlib_matrix[train & ~same_person], fused_matrix[train & ~same_person], threshold)
        scaled = fused_matrix * scale
        rows.append(
            {
                "fold": fold,
                "dlib_fmr_train": fmr,
                "scale": scale,
                "held_out_pairs": int(test.sum()),
                "dlib_fmr": float(np.mean(dlib_matrix[test & ~same_person] <= threshold)),
                "fused_fmr": float(np.mean(scaled[test & ~same_person] <= threshold)),
                "dlib_tar": float(np.mean(dlib_matrix[test & same_person] <= threshold)),
                "fused_tar": float(np.mean(scaled[test & same_person] <= threshold)),
            }
        )
    fmr, scale = scale_for(dlib_matrix[upper & ~same_person], fused_matrix[upper & ~same_person], threshold)
    pairs = upper.astype(bool)
    tars = {
        name: [tar_at_far(matrix[pairs], same_person[pairs], far).tar for far in FMRS]
        for name, matrix in (("dlib-4view-v1", dlib_matrix), ("dlib4view+facenet2view-v1", fused_matrix))
    }
    result = {"faces": len(data.files), "dlib_fmr_at_threshold": fmr, "scale": scale, "folds": rows, "tar": tars}
    print(f"{len(data.files)} faces; dlib four views at {threshold}: FMR {fmr:.2e}; fused scale {scale:.4f}")
    print("fold  scale   FMR dlib / fused (held out)   TAR dlib / fused (held out)")
    for row in rows:
        print(
            f"{row['fold']:>4}  {row['scale']:.4f}  {row['dlib_fmr']:.2e} / {row['fused_fmr']:.2e}"
            f"              {row['dlib_tar']:.4f} / {row['fused_tar']:.4f}"
        )
    for name, values in tars.items():
        figures = " ".join(f"{v:.3f}" if v is not None else "-" for v in values)
        print(f"{name}: TAR at FMR {', '.join(f'{f:g}' for f in FMRS)}: {figures}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
