"""Access reports on dev-set identities (skips without the dev set).

An access report must list exactly the images whose faces match the probe under the engine's rule
(distance at or under the threshold), across every collection, with nothing cut off. That is checked
against a brute-force comparison of independently computed templates. Whether "matching" equals "the
same person" is the model's accuracy, reported here as identity precision and recall: at the default
threshold dlib confuses some of these grayscale LFW crops, so a person answering a request should
review the report (it shows each match's distance) before sending it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from conftest import ACTOR, news_spec, require_dev_data
from facesearch.accountability.rights import SubjectRights
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD
from facesearch.engine.engine import Engine
from facesearch.vision.api import embed_faces

pytestmark = pytest.mark.devset
IDENTITIES = 12
"""The first identities (by name) with at least four photos; each one's first photo is the probe."""
MIN_PRECISION = 0.85
"""Identity precision of the reports at the match threshold, a floor under what this sample measured: 40 of 43
faces reported were the person's with one-view templates (0.930), 40 of 45 with four-view templates (0.889:
two more faces of Alec Baldwin's look-alikes within 0.6). Over all 5.5 million different-person pairs of the
dev set's LFW faces the two kinds of template have the same false-match rate at 0.6 (``vision/templates.py``)."""


def chosen_identities(dev: Path) -> dict[str, list[Path]]:
    with (dev / "identities.csv").open(newline="") as handle:
        names = sorted(row["identity"] for row in csv.DictReader(handle) if int(row["n_images"]) >= 4)
    return {name: sorted(p for p in (dev / name).iterdir() if p.is_file())[:5] for name in names[:IDENTITIES]}


def largest_face(path: Path) -> np.ndarray | None:
    faces = embed_faces(path)
    return max(faces, key=lambda f: f.detection.box.area).embedding if faces else None


def test_access_reports_are_exact_across_collections_and_mostly_the_right_person(engine: Engine) -> None:
    people = chosen_identities(require_dev_data())
    engine.create_collection(news_spec("news"), ACTOR)
    engine.create_collection(news_spec("archive"), ACTOR)
    gallery = [path for paths in people.values() for path in paths[1:]]
    engine.ingest("news", gallery[0::2], ACTOR, workers=2)
    engine.ingest("archive", gallery[1::2], ACTOR, workers=2)
    templates = {path.name: largest_face(path) for path in gallery}

    rights = SubjectRights(engine)
    true_positive = false_positive = false_negative = 0
    for identity, paths in people.items():
        probe = largest_face(paths[0])
        assert probe is not None
        held = {Path(h.source).name for h in rights.access(paths[0], ACTOR, f"SAR {identity}").held}
        within = {
            name for name, template in templates.items()
            if template is not None and float(np.linalg.norm(template - probe)) <= DEFAULT_MATCH_THRESHOLD + 1e-4
        }  # fmt: skip
        assert held == within, f"{identity}: report differs from the brute-force set within the threshold"
        mine = {path.name for path in paths[1:] if templates[path.name] is not None}
        true_positive += len(held & mine)
        false_positive += len(held - mine)
        false_negative += len(mine - held)
    precision = true_positive / (true_positive + false_positive)
    recall = true_positive / (true_positive + false_negative)
    figures = f"identity precision {precision:.3f}, recall {recall:.3f} over {IDENTITIES} people"
    print(figures)
    assert precision >= MIN_PRECISION and recall >= 0.9, figures
