"""Ingest (and reindex) progress on stderr, so stdout stays clean for tables and JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from facesearch.engine.ingest import Progress


class BarProgress(Progress):
    def __init__(self, label: str = "ingesting") -> None:
        self._bar: Any = None
        self._label = label

    def start(self, total: int) -> None:
        self._bar = click.progressbar(
            length=total, label=self._label, file=sys.stderr, show_pos=True, show_eta=True, width=30
        )
        self._bar.__enter__()

    def advance(self, path: Path) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
