"""Ingest workers start without re-running the parent's main module (facesearch.engine.lean_spawn)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import FIXTURES

MAIN = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    with open(sys.argv[1], "a") as marks:  # one line each time this module runs
        marks.write(__name__ + "\\n")

    from facesearch.engine.ingest import run_tasks, task_for
    from facesearch.core.settings import Settings

    if __name__ == "__main__":
        settings = Settings(embedder="dlib", detection_proposals=False)
        tasks = [task_for(Path(path), settings, workers=2) for path in sys.argv[2:]]
        for outcome in run_tasks(tasks, workers=2):
            assert outcome.error is None and outcome.image is not None, outcome.error
            print(outcome.path.name, len(outcome.image.faces))
    """
)


def test_workers_do_not_re_run_the_parents_main_module(tmp_path: Path) -> None:
    """With multiprocessing's plain spawn each worker would run this script again as ``__mp_main__`` (the
    console script's imports cost a worker 1.2 s of its start); lean workers only run the tasks."""
    script, marks = tmp_path / "main_module.py", tmp_path / "marks.txt"
    script.write_text(MAIN)
    images = sorted((FIXTURES / "identities").iterdir())[:4]
    assert len(images) == 4
    done = subprocess.run(
        [sys.executable, str(script), str(marks), *map(str, images)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(line.split()[0] for line in done.stdout.splitlines()) == sorted(p.name for p in images)
    assert marks.read_text().splitlines() == ["__main__"]
