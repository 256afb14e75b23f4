"""A page showing each person as a face, for a person to review the grouping."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from facesearch.cli.html_report import STYLE, face_thumbnail
from facesearch.store.catalog.people import PersonInfo


def render_people_page(people: Sequence[PersonInfo], title: str, notes: Sequence[str] = ()) -> str:
    """Each person as their representative face, after ``notes`` (one paragraph each)."""
    figures = []
    for person in people:
        face = person.representative
        source = face_thumbnail(Path(face.image_path), face.box) if face else ""
        image = f"<img src='{source}' alt='face of person {person.id}'>" if source else "<p>(no image)</p>"
        caption = f"#{person.id} {html.escape(person.name or 'unnamed')}<br>{person.face_count} face(s)"
        figures.append(f"<figure>{image}<figcaption>{caption}</figcaption></figure>")
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{''.join(f'<p>{html.escape(note)}</p>' for note in notes)}"
        f"<div class='grid'>{''.join(figures)}</div></body></html>"
    )


def write_people_page(people: Sequence[PersonInfo], target: Path, title: str, notes: Sequence[str] = ()) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_people_page(people, title, notes))
