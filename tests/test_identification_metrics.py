"""The identification benchmark's measures (bench/identification.py) on small galleries whose answers are known."""

from __future__ import annotations

import numpy as np
from bench.identification import Faces, closed_set, open_set, split, verification


def gallery() -> Faces:
    """Three people with three photos each, far apart (photos 0.1 from their centre); two one-photo people."""
    centres = np.eye(8, dtype=np.float32)[:5] * 3
    vectors, labels = [], []
    for person in range(3):
        for photo in range(3):
            offset = np.zeros(8, dtype=np.float32)
            offset[5 + photo] = 0.1
            vectors.append(centres[person] + offset)
            labels.append(f"p{person}")
    vectors += [centres[3], centres[4]]
    labels += ["single-a", "single-b"]
    multi = np.array([label.startswith("p") for label in labels])
    return Faces(np.vstack(vectors), np.array(labels), multi)


def test_the_first_photo_of_each_person_is_enrolled_and_the_rest_are_probes() -> None:
    parts = split(gallery())
    assert parts.enrolled.tolist() == [0, 3, 6]
    assert parts.probes.tolist() == [1, 2, 4, 5, 7, 8]
    assert parts.mates.tolist() == [0, 0, 1, 1, 2, 2]
    assert parts.distractors.tolist() == [9, 10]


def test_well_separated_people_are_found_first_and_verified() -> None:
    faces = gallery()
    assert closed_set(faces, split(faces), ranks=(1,)) == {1: 1.0}
    (check,) = verification(faces, fmrs=(0.1,))
    assert (check.same_pairs, check.different_pairs) == (9, 27)
    assert check.tar == 1.0


def test_a_mate_farther_than_a_stranger_is_a_miss() -> None:
    faces = gallery()
    vectors = faces.vectors.copy()
    vectors[1] = vectors[9] + 0.01  # one probe of p0 now sits on a one-photo stranger
    moved = Faces(vectors, faces.labels, faces.multi)
    parts = split(moved)
    (row,) = open_set(moved, parts, np.zeros((0, 8), np.float32), fpirs=(0.5,))
    assert row.false_positives_allowed == 3
    assert row.fnir is not None and abs(row.fnir - 1 / 6) < 1e-9


def test_synthetic_distractors_count_in_the_gallery() -> None:
    faces = gallery()
    parts = split(faces)
    near_every_probe = faces.vectors[parts.probes] + 0.001
    (row,) = open_set(faces, parts, near_every_probe, fpirs=(0.5,))
    assert row.gallery == 3 + 2 + len(near_every_probe)
    assert row.fnir == 1.0  # each probe's nearest face is now a stranger
