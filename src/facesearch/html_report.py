"""A self-contained HTML page of search results: each probe face and its matches as face thumbnails."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps

from facesearch.records import Box
from facesearch.results import SearchResult

THUMBNAIL_SIDE = 128
_STYLE = """
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
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    for probe_path, result in searches:
        for probe in result.results:
            parts.append(
                f"<h2>{html.escape(probe_path.name)}, face {probe.probe_face}: {len(probe.matches)} match(es) "
                f"within {result.threshold}</h2><div class='grid'>"
            )
            parts.append(_figure(probe_path, probe.box, "probe", "probe"))
            for match in probe.matches:
                caption = f"{match.distance:.3f} &middot; {html.escape(match.collection)}<br>" + html.escape(
                    Path(match.image_path).name
                )
                parts.append(_figure(Path(match.image_path), match.box, caption, "match"))
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure(path: Path, box: Box, caption: str, kind: str) -> str:
    source = face_thumbnail(path, box)
    image = f"<img src='{source}' alt='face in {html.escape(path.name)}'>" if source else "<p>(image missing)</p>"
    return f"<figure class='{kind}'>{image}<figcaption>{caption}</figcaption></figure>"
