"""The reference docs cannot drift from the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from facesearch.cli.docs import render
from facesearch.core.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_generated_from_the_current_help() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == render(), (
        "docs/cli.md is out of date: run 'python -m facesearch.cli.docs > docs/cli.md'"
    )


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    missing = [f.name for f in dataclasses.fields(Settings) if f"`{ENV_PREFIX}{f.name.upper()}`" not in text]
    assert not missing, f"settings missing from docs/settings.md: {missing}"


def test_readme_quick_start_has_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./run demo" in readme and "./run test" in readme
    assert "./run test" in (ROOT / ".ci" / "run").read_text()
