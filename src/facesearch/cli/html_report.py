"""A self-contained HTML page of search results: each probe face and its matches as face thumbnails."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

from facesearch.cli.render import likelihood
from facesearch.core.records import Box
from facesearch.core.results import SearchResult, to_plain

if TYPE_CHECKING:
    from facesearch.accountability.rights import AccessReport, HeldImage

THUMBNAIL_SIDE = 128
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
h2{margin-top:2rem} .grid{display:flex;flex-wrap:wrap;gap:.75rem}
figure{margin:0;width:140px;font-size:.8rem;word-break:break-all}
figure img{width:128px;height:128px;object-fit:cover;border-radius:6px;border:2px solid #ccc}
figure.probe img{border-color:#0a7}
"""


def face_thumbnail(path: Path, box: Box) -> str:
    """A data: URL of the face in ``box`` (with some margin), or an empty string if the file is gone."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError):
        return ""
    margin = round(0.2 * max(box.width, box.height))
    crop = image.crop((box.left - margin, box.top - margin, box.right + margin, box.bottom + margin))
    crop.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def render_search_report(searches: Sequence[tuple[Path, SearchResult]], title: str = "facesearch results") -> str:
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    for probe_path, result in searches:
        for probe in result.results:
            parts.append(
                f"<h2>{html.escape(probe_path.name)}, face {probe.probe_face}: {len(probe.matches)} match(es) "
                f"within {result.threshold}</h2>"
            )
            if result.operating_point:
                parts.append(f"<p class='operating-point'>{html.escape(result.operating_point.summary())}</p>")
            parts.append("<div class='grid'>")
            parts.append(_figure(probe_path, probe.box, "probe", "probe"))
            for match in probe.matches:
                caption = (
                    f"{match.distance:.3f} &middot; same person {likelihood(match.same_person)} &middot; "
                    f"{html.escape(match.collection)}<br>{html.escape(Path(match.image_path).name)}"
                )
                parts.append(_figure(Path(match.image_path), match.box, caption, "match"))
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_access_report(report: AccessReport) -> str:
    """The answer to a subject access request, readable by the person who asked."""
    review = ""
    if report.to_review:
        review = (
            "<h2>Possible matches to review</h2>"
            f"<p>{len(report.to_review)} more image(s) may show the person (distance over {report.threshold}, up to "
            f"{report.review_threshold}). Whoever answers the request looks at "
            "each and confirms those that do; an erasure takes the confirmed faces too.</p>"
            + _held_table(report.to_review)
        )
    if report.review_not_listed:
        review += f"<p>{report.review_not_listed} more possible match(es), further away, are not listed.</p>"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Subject access report</title>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<style>{STYLE} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.3rem;"
        "text-align:left;vertical-align:top}</style></head><body>"
        "<h1>Subject access report</h1>"
        f"<p>Request {html.escape(report.reference)}, answered {report.generated_at.isoformat(timespec='seconds')}. "
        f"{len(report.held)} image(s) held show the person in the photo provided (distance at most "
        f"{report.threshold}). The photo provided was used only to answer this request and was not stored.</p>"
        + _held_table(report.held)
        + review
        + "</body></html>"
    )


def _held_table(held_images: Sequence[HeldImage]) -> str:
    rows = []
    for held in held_images:
        thumbnail = face_thumbnail(Path(held.source), held.box)
        image = f"<img src='{thumbnail}' alt='face' width='96'>" if thumbnail else "(source image no longer available)"
        cells = [
            image,
            str(held.face_id),
            likelihood(held.same_person),
            html.escape(held.source),
            html.escape(held.collection),
            html.escape(held.purpose),
            html.escape(held.lawful_basis),
            held.ingested_at.date().isoformat(),
            held.delete_by.date().isoformat(),
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return (
        "<table><thead><tr><th>face</th><th>face id</th><th>same person</th><th>source image</th><th>collection</th>"
        "<th>purpose</th><th>lawful basis</th><th>held since</th><th>deleted by</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def write_access_report(report: AccessReport, folder: Path) -> tuple[Path, Path]:
    """``access-report.html`` and ``access-report.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    page, data = folder / "access-report.html", folder / "access-report.json"
    page.write_text(render_access_report(report))
    data.write_text(json.dumps(to_plain(report), indent=2, ensure_ascii=False))
    return page, data


def _figure(path: Path, box: Box, caption: str, kind: str) -> str:
    source = face_thumbnail(path, box)
    image = f"<img src='{source}' alt='face in {html.escape(path.name)}'>" if source else "<p>(image missing)</p>"
    return f"<figure class='{kind}'>{image}<figcaption>{caption}</figcaption></figure>"
