"""People on the dev set: grouping real LFW identities through the product's own path (ingest, cluster, browse).

A sample of LFW identities with 2+ photos (every SAMPLE_EVERY-th by name, at most MAX_PHOTOS photos each) is
ingested into a collection whose purpose allows grouping and clustered with ``People.cluster``. Then a sample
of the one-photo identities (every SAMPLE_EVERY-th) is ingested into the same collection and clustered again,
incrementally (new faces join existing people or stay apart) and then in full: most people in a real archive
appear once, and a stranger must not be put into someone's person. Each photo's largest face carries its
identity; BCubed precision and recall are scored over those faces, a face kept out of people (low quality)
counting as a person of its own. ``bench/cluster_quality.py`` reports the full set.

The default recipe (dlib's four views fused with FaceNet's two in 8 bits) is held to the target itself: precision
>= 0.98 with recall >= 0.90, both on the people with 2+ photos and with the one-photo people. dlib's four-view
templates alone, which do not reach it, are held to floors under what they measured.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from conftest import ACTOR, require_dev_data
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.people.algorithms import bcubed
from facesearch.people.service import People
from facesearch.safeguards.governance import CollectionSpec
from facesearch.store.catalog.browse import MAX_PAGE, Browser, FaceSummary, Page

SAMPLE_EVERY = 6
MAX_PHOTOS = 8
T = TypeVar("T")
MIN_PRECISION = 0.98
MIN_RECALL_REPEATED = 0.85
MIN_RECALL_EVERY = 0.88
"""Floors under what this sample measured with dlib's four-view templates: the people with 2+ photos
alone (546 faces of 151 people) precision 0.993, recall 0.867; with 198 one-photo people added (744 faces of
349 people) 0.990 / 0.902 grouped incrementally and 0.990 / 0.901 in full (with the fixed lone-face bars before
the local-scale ones: 0.990 / 0.838, 0.988 / 0.881 and 0.985 / 0.879, under these floors). A change that merges
people or splits them noticeably more fails here."""
TARGET_PRECISION, TARGET_RECALL = 0.98, 0.90
"""What the default recipe must reach at every step: it measured 1.000 / 0.923 for the people with 2+ photos alone,
0.992 / 0.943 with the one-photo people grouped incrementally and 0.992 / 0.941 regrouped in full. (FaceNet in 32
bits, ``dlib4view+facenet2view-v1``, measured 1.000 / 0.923, 0.991 / 0.943 and 0.991 / 0.941 on the same sample.)"""
FOUR_VIEWS = "dlib-4view-v1"


def sampled_photos(dev: Path, repeated: bool, every: int = SAMPLE_EVERY) -> list[Path]:
    """Every ``every``-th LFW identity with 2+ photos (``repeated``) or with one photo, by name."""
    with (dev / "identities.csv").open(newline="") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if (int(r["n_images"]) >= 2) == repeated and r["sources"] == "lfw_muxspace"
        ]
    names = sorted(row["identity"] for row in rows)[::every]
    return [photo for name in names for photo in sorted((dev / name).glob("*.jpg"))[:MAX_PHOTOS]]


def every_item(page_at: Callable[[int], Page[T]]) -> list[T]:
    """All items of a paged listing, ``page_at(offset)`` giving each page."""
    items: list[T] = []
    while True:
        page = page_at(len(items))
        items += page.items
        if len(items) >= page.total:
            return items


def grouping_quality(engine: Engine, collection: str) -> tuple[float, float, int, str]:
    """BCubed precision and recall of the collection's people over each photo's largest face, the number
    of faces scored, and the figures in words."""
    browser = Browser(engine.catalog)
    images = every_item(lambda offset: browser.images(collection, offset, MAX_PAGE))
    identity_of = {image.id: Path(image.source).parent.name for image in images}
    largest: dict[int, FaceSummary] = {}
    for face in every_item(lambda offset: browser.faces(collection, offset, MAX_PAGE)):
        held = largest.get(face.image_id)
        if held is None or face.box.area > held.box.area:
            largest[face.image_id] = face
    truth = [identity_of[image_id] for image_id in largest]
    predicted = [f"person {f.person_id}" if f.person_id else f"alone {f.id}" for f in largest.values()]
    precision, recall = bcubed(truth, predicted)
    words = f"precision {precision:.3f}, recall {recall:.3f} on {len(truth)} faces of {len(set(truth))} people"
    return precision, recall, len(truth), words


def grouped_in_steps(engine: Engine, dev: Path, every: int = SAMPLE_EVERY) -> list[tuple[str, float, float, str]]:
    """The sample's 2+ photo people (every ``every``-th) ingested and grouped, then its one-photo people ingested
    and grouped incrementally, then in full: (step, precision, recall, figures in words) after each."""
    repeated, once = sampled_photos(dev, True, every), sampled_photos(dev, False, every)
    spec = CollectionSpec.parse(
        "archive", "Photo archive grouped into people", "consent", "explicit-consent", "5y", people_allowed=True
    )
    engine.create_collection(spec, ACTOR)
    people = People(engine)
    engine.ingest("archive", repeated, ACTOR)
    people.cluster("archive", ACTOR)
    precision, recall, faces, words = grouping_quality(engine, "archive")
    print(f"2+ photos: {words}")
    assert faces >= 0.99 * len(repeated), f"faces found in only {faces} of {len(repeated)} photos"
    steps = [("2+ photos", precision, recall, words)]

    # One-photo people join the archive: grouped incrementally, then in full, strangers stay apart.
    engine.ingest("archive", once, ACTOR)
    for full in (False, True):
        report = people.cluster("archive", ACTOR, full=full)
        precision, recall, faces, words = grouping_quality(engine, "archive")
        step = f"with one-photo people, {'full' if full else 'incremental'}"
        print(f"{step}: {words}")
        assert faces >= 0.99 * (len(repeated) + len(once)), f"faces found in only {faces} photos"
        assert people.faces_alone("archive") >= 0.9 * len(once), report
        steps.append((step, precision, recall, words))
    return steps


def test_people_on_dev_identities_reach_the_target(engine: Engine) -> None:
    for step, precision, recall, words in grouped_in_steps(engine, require_dev_data()):
        assert precision >= TARGET_PRECISION and recall >= TARGET_RECALL, f"{step}: {words}"


def test_people_of_dlib_four_views_keep_their_measured_floors(settings: Settings) -> None:
    dev = require_dev_data()
    with Engine.init(settings.replace(template_recipe=FOUR_VIEWS)) as engine:
        for step, precision, recall, words in grouped_in_steps(engine, dev):
            floor = MIN_RECALL_REPEATED if step == "2+ photos" else MIN_RECALL_EVERY
            assert precision >= MIN_PRECISION and recall >= floor, f"{step}: {words}"
