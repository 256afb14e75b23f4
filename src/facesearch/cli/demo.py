"""The README's first command: index the committed sample photos and search them with the sample probes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from facesearch.cli.html_report import render_search_report
from facesearch.cli.progress import BarProgress
from facesearch.cli.render import likelihood
from facesearch.core.errors import ConflictError, InvalidValueError
from facesearch.core.results import SearchResult
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.engine.files import iter_image_files
from facesearch.safeguards.audit import Actor
from facesearch.safeguards.governance import CollectionSpec

DEMO_COLLECTION = CollectionSpec.parse(
    name="demo",
    purpose="Demonstrate facesearch on the committed, permissively licensed sample photos",
    lawful_basis="legitimate-interests",
    biometric_condition="archiving-research",
    retention="30d",
)


DEMO_PURPOSE = "demo: sample probes against the sample gallery"


def run_demo(
    settings: Settings,
    actor: Actor,
    samples: Path,
    report_path: Path,
    workers: int | None,
    echo: Callable[[str], None],
) -> None:
    gallery, probes = samples / "gallery", samples / "probes"
    if not gallery.is_dir() or not probes.is_dir():
        raise InvalidValueError(f"{samples} has no gallery/ and probes/ folders; run the demo from the repository root")
    with Engine.init(settings) as engine:
        with suppress(ConflictError):  # a second run reuses the collection; ingest skips what it holds
            engine.create_collection(DEMO_COLLECTION, actor)
        report = engine.ingest(DEMO_COLLECTION.name, [gallery], actor, workers=workers, progress=BarProgress())
        echo(
            f"indexed {samples / 'gallery'}: {report.images_added} new images, {report.faces_added} faces, "
            f"{report.skipped_already_indexed} already indexed, {len(report.failed)} failed"
        )
        searches: list[tuple[Path, SearchResult]] = []
        for probe in iter_image_files([probes]):
            result = engine.search(probe, actor, DEMO_PURPOSE, collections=[DEMO_COLLECTION.name])
            searches.append((probe, result))
            if result.operating_point:
                echo(f"\n{probe.name}: {result.operating_point.summary()}")
            for face in result.results:
                echo(f"\n{probe.name} (face {face.probe_face}): {len(face.matches)} match(es)")
                for match in face.matches:
                    echo(
                        f"  {match.distance:.3f}  {match.image_path}  box={match.box.as_list()}  "
                        f"same person {likelihood(match.same_person)}"
                    )
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(render_search_report(searches, "facesearch demo: sample probes against the sample gallery"))
    echo(f"\nHTML report with the matching faces: {report_path}")
    key_file = settings.master_key_file or "<your master key file>"
    echo(
        "\nBrowse it in the web UI:\n"
        f"  export FACESEARCH_DATA_DIR={settings.data_dir} FACESEARCH_MASTER_KEY_FILE={key_file}\n"
        "  .venv/bin/facesearch keys create --owner you --role search --purpose 'trying the demo'\n"
        "  .venv/bin/facesearch serve    # then sign in at http://127.0.0.1:8000/ui/ with that key"
    )
