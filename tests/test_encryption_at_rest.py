"""Reading the data folder's files without the key finds no template in the clear."""

from __future__ import annotations

from pathlib import Path

from conftest import ACTOR, news_spec
from facesearch.engine.engine import Engine


def test_no_template_is_in_the_clear_in_any_file(engine: Engine, identity_files: dict[str, list[Path]]) -> None:
    engine.create_collection(news_spec(), ACTOR)
    engine.ingest("news", [path for paths in identity_files.values() for path in paths], ACTOR)
    collection_id = engine.catalog.collection_id("news")
    _, templates = engine.catalog.embeddings(collection_id, engine.cipher(collection_id).open_template)
    assert len(templates) >= 6
    engine.close()
    on_disk = b"".join(p.read_bytes() for p in engine.settings.data_dir.rglob("*") if p.is_file())
    for template in templates:
        raw = template.astype("<f4").tobytes()
        # No 32-byte stretch (8 consecutive values) of any template, let alone the whole of one.
        assert not any(raw[start : start + 32] in on_disk for start in range(0, len(raw) - 32, 32))
