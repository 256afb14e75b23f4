"""What every command shares: the settings, the actor, and the common options."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path

import click

from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import Actor

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
PURPOSE_OPTION = click.option(
    "--purpose", help="Purpose or case reference, written to the audit log (default: $FACESEARCH_PURPOSE)."
)
EXISTING_FILE = click.Path(exists=False, dir_okay=False, path_type=Path)


@dataclass
class CliState:
    settings: Settings

    def engine(self) -> Engine:
        return Engine.open(self.settings)

    @property
    def actor(self) -> Actor:
        return Actor(self.settings.actor or getpass.getuser())


pass_state = click.make_pass_decorator(CliState)
