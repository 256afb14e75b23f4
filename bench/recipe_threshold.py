"""A fused recipe's scale (``vision/recipes.py``, FUSED_SCALE and FUSED_INT8_SCALE): the factor that puts the 0.6
match threshold of ``--recipe`` at the false-match rate 0.6 gives dlib's four-view templates, chosen out of fold.

The faces are those ``bench/template_fusion.py`` reads (both pipelines' caches, FaceNet over the chip and its mirror);
with ``--partial``, those of them the mirror cache holds so far (``facenet_templates --mirror`` saves as it goes).
The identities are dealt into 5 folds; for each fold, dlib's false-match rate at 0.6 and the fused distance at that
rate are found on the pairs of the other folds' faces, and the held-out fold's pairs are scored at that scale: its
false-match rate and true-accept rate beside dlib's at 0.6. The scale to ship is fitted on every pair.

    PYTHONPATH=src python -m bench.recipe_threshold [--recipe R] [--json bench/results/recipe-threshold.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench import facenet_templates
from bench.identification import CACHE, FMRS
from bench.template_fusion import distances, identity_folds, load_dataset, unit
from bench.verify_accuracy import default_dev_dir, load_cache, tar_at_far
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD, Settings
from facesearch.vision.recipes import FUSED_DLIB_WEIGHT, RECIPES

Floats = npt.NDArray[np.float64]


def fused_templates(dlib: npt.NDArray[np.float32], facenet: npt.NDArray[np.float32], weight: float) -> Floats:
    """As ``vision/recipes.py`` makes them (before FUSED_SCALE): ``weight`` is dlib's share."""
    return np.hstack([np.sqrt(weight) * unit(dlib), np.sqrt(1 - weight) * unit(facenet)]).astype(np.float64)


def scale_for(dlib: Floats, fused: Floats, threshold: float) -> tuple[float, float]:
    """(dlib's false-match rate at ``threshold``, the scale that gives the fused distances that rate there)."""
    fmr = float(np.mean(dlib <= threshold))
    return fmr, threshold / float(np.quantile(fused, fmr))


def partial_dataset(
    dev: Path, caches: tuple[Path, Path]
) -> tuple[list[str], npt.NDArray[np.str_], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(files, labels, dlib templates, FaceNet two-view templates) of the faces every cache holds so far."""
    dlib_cache = load_cache(Path(CACHE.format(views=4)), Settings(template_views=4))
    first, mirrored = (facenet_templates.load_cache(path) for path in caches)
    files = [
        name
        for name in facenet_templates.lfw_files(dev)
        if first.get(name) is not None
        and mirrored.get(name) is not None
        and name in dlib_cache
        and dlib_cache[name].embedding is not None
    ]
    facenet = np.vstack([unit(np.vstack([first[n], mirrored[n]])).mean(axis=0) for n in files])  # type: ignore[list-item]
    dlib = np.vstack([dlib_cache[n].embedding for n in files]).astype(np.float32)  # type: ignore[misc]
    return files, np.array([n.split("/")[0] for n in files]), dlib, unit(facenet.astype(np.float32))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--partial", action="store_true", help="only the faces the mirror cache holds so far")
    fused_recipes = [name for name, recipe in RECIPES.items() if recipe.facenet_views]
    parser.add_argument("--recipe", choices=fused_recipes, default=fused_recipes[0])
    args = parser.parse_args(argv)
    caches = facenet_templates.recipe_caches(RECIPES[args.recipe])
    if args.partial:
        files, labels, dlib, facenet = partial_dataset(args.data, caches)
    else:
        data = load_dataset(args.data, facenet_views=2, facenet_caches=caches)
        files, labels, dlib, facenet = data.files, data.labels, data.dlib, data.facenet
    dlib_matrix = distances(dlib)
    fused_matrix = distances(fused_templates(dlib, facenet, FUSED_DLIB_WEIGHT).astype(np.float32))
    folds = identity_folds(labels)
    same_person = labels[:, None] == labels[None, :]
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
        for name, matrix in (("dlib-4view-v1", dlib_matrix), (args.recipe, fused_matrix))
    }
    result = {"faces": len(files), "dlib_fmr_at_threshold": fmr, "scale": scale, "folds": rows, "tar": tars}
    people = len(set(labels.tolist()))
    print(f"{len(files)} faces of {people} people; dlib four views at {threshold}: FMR {fmr:.2e}; scale {scale:.4f}")
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
