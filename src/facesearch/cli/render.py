"""Turning results into aligned text tables or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from facesearch.core.results import to_plain


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table: one line per row, columns padded, greppable."""
    cells = [[str(h) for h in headers]] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def emit(result: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(to_plain(result), indent=2, ensure_ascii=False) if as_json else text)


def likelihood(value: float | None) -> str:
    """A calibrated same-person score as a person reads it: a percentage, "-" when there is none."""
    if value is None:
        return "-"
    return ">99%" if value > 0.99 else "<1%" if value < 0.01 else f"{value:.0%}"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
