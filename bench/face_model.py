"""Synthetic faces that behave like real ones, for benchmarks at sizes no photo set reaches.

A person is a centre drawn from the real between-person distribution; each photo of them is the centre
plus a draw from the real within-person distribution. Both are full-covariance Gaussians fitted to the
dev set's LFW templates (bench/results/cluster-cache-1view.json, written by ``bench/cluster_quality.py
--template-views 1``), so the synthetic data has the real spread of same-person and different-person
distances *and* the real shape: dlib's templates vary along a few dozen directions much more than along the
rest, which is what lets an inverted-file index find neighbours by probing few cells. (Isotropic noise with
the same mean distances is far harder for any index, and unlike any face model.)

The fitted models are committed (a mean and two 128x128 covariance factors each, no template of any person)
so that tests and benches run without the dev set: bench/face_model.npz models dlib's one-view templates (the
tests use it, and every search figure in bench/README.md before 2026-11-26's last section was measured on
it); bench/face_model-4view.npz models the default four-view templates (``facesearch/vision/templates.py``), fitted
on bench/results/cluster-cache-4view.json (``bench/cluster_quality.py --template-views 4``): a person's faces
lie about 5 % closer together there, at the same spread of different people.

    python -m bench.face_model                      # refit the one-view model; real vs synthetic distances
    python -m bench.face_model --template-views 4   # the four-view model
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MODEL = Path(__file__).with_name("face_model.npz")
MODELS = {1: MODEL, 4: Path(__file__).with_name("face_model-4view.npz")}
"""The fitted model of each template recipe, by the number of views averaged into a template."""
CACHES = {views: Path(f"bench/results/cluster-cache-{views}view.json") for views in MODELS}
DIMENSION = 128
FACES_PER_PERSON = 5
PERSON_SPREAD = 0.18
"""Log-normal sigma of how much each person varies between photos (lighting, age, pose differ more for
some people than others); chosen so that the synthetic same-person distances spread like the real ones
(``python -m bench.face_model`` prints both)."""

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FaceModel:
    mean: Matrix
    between: Matrix
    """Square-root factor of the covariance of person centres."""
    within: Matrix
    """Square-root factor of the covariance of a person's photos around their centre."""

    @classmethod
    def fit(cls, by_person: list[Matrix]) -> FaceModel:
        people = [np.asarray(v, dtype=np.float64) for v in by_person if len(v) >= 2]
        centres = np.stack([v.mean(axis=0) for v in people])
        residuals = np.concatenate([(v - v.mean(axis=0)) * np.sqrt(len(v) / (len(v) - 1)) for v in people])
        within = np.cov(residuals, rowvar=False)
        # A centre estimated from n photos carries within/n of their noise: take it out of the spread.
        noise = within * float(np.mean([1.0 / len(v) for v in people]))
        between = _nearest_psd(np.cov(centres, rowvar=False) - noise)
        return cls(centres.mean(axis=0), _factor(between), _factor(within))

    @classmethod
    def load(cls, path: Path = MODEL) -> FaceModel:
        with np.load(path) as data:
            return cls(data["mean"], data["between"], data["within"])

    def save(self, path: Path = MODEL) -> None:
        np.savez_compressed(path, mean=self.mean, between=self.between, within=self.within)

    def faces(
        self, count: int, seed: int = 0, per_person: int = FACES_PER_PERSON
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``count`` templates of ``count // per_person`` people (labels say whose), generated in chunks."""
        rng = np.random.default_rng(seed)
        people = max(1, count // per_person)
        centres = self.mean + rng.standard_normal((people, DIMENSION)) @ self.between.T
        labels = np.arange(count, dtype=np.int64) % people
        # E[scale^2] = 1: the average person varies as the fitted covariance says.
        scale = np.exp(rng.normal(0.0, PERSON_SPREAD, size=people) - PERSON_SPREAD**2)
        vectors = np.empty((count, DIMENSION), dtype=np.float32)
        chunk = 1_000_000
        for start in range(0, count, chunk):
            stop = min(count, start + chunk)
            noise = rng.standard_normal((stop - start, DIMENSION)) @ self.within.T
            vectors[start:stop] = centres[labels[start:stop]] + noise * scale[labels[start:stop], None]
        return vectors, labels

    def probes(
        self, vectors: npt.NDArray[np.float32], count: int, seed: int = 1
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """New photos of people in ``vectors`` (another photo of someone in the gallery, not a copy of a
        gallery photo), and the gallery photo each was made from (its label is the probe's person)."""
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(vectors), size=count, replace=False).astype(np.int64)
        noise = rng.standard_normal((count, DIMENSION)) @ self.within.T
        return (vectors[chosen].astype(np.float64) + noise / np.sqrt(2)).astype(np.float32), chosen


def _factor(covariance: Matrix) -> Matrix:
    values, vectors = np.linalg.eigh(covariance)
    factor: Matrix = vectors * np.sqrt(np.clip(values, 0.0, None))
    return factor


def _nearest_psd(matrix: Matrix) -> Matrix:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    fixed: Matrix = (vectors * np.clip(values, 1e-12, None)) @ vectors.T
    return fixed


def real_templates(cache: Path) -> list[Matrix]:
    images = json.loads(cache.read_text())["images"]
    by_person: dict[str, list[list[float]]] = {}
    for key, item in images.items():
        if item["embedding"] is not None:
            by_person.setdefault(key.split("/")[0], []).append(item["embedding"])
    return [np.asarray(v) for v in by_person.values()]


def distances(by_person: list[Matrix], seed: int = 0) -> tuple[Matrix, Matrix]:
    """Same-person distances (first two photos) and as many different-person ones."""
    same = np.array([np.linalg.norm(v[0] - v[1]) for v in by_person if len(v) >= 2])
    rng = np.random.default_rng(seed)
    firsts = [v[0] for v in by_person]
    pairs = rng.integers(0, len(firsts), size=(len(same), 2))
    different = np.array([np.linalg.norm(firsts[a] - firsts[b]) for a, b in pairs if a != b])
    return same, different


def describe(values: Matrix) -> str:
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return " ".join(f"{v:.3f}" for v in q)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template-views", type=int, choices=sorted(MODELS), default=1, help="the recipe modelled")
    views = parser.parse_args(argv).template_views
    cache, path = CACHES[views], MODELS[views]
    if not cache.exists():
        print(
            f"{cache} is missing: run 'python -m bench.cluster_quality --template-views {views}' first",
            file=sys.stderr,
        )
        return 2
    real = real_templates(cache)
    model = FaceModel.fit(real)
    model.save(path)
    vectors, labels = model.faces(5000, per_person=5)
    synthetic = [vectors[labels == p] for p in range(1000)]
    print(f"fitted on {sum(len(v) for v in real)} templates of {len(real)} people; saved {path}")
    print("distance quantiles (5%, 25%, 50%, 75%, 95%)")
    for name, group in (("real", real), ("synthetic", synthetic)):
        same, different = distances(group)
        print(f"  {name:9} same person {describe(same)} | different people {describe(different)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
