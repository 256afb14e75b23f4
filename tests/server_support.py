"""A gallery on disk with a key per role, and a real ``facesearch serve`` process over it, for the tests
that talk to the service over HTTP (the CompreFace client, the browser)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from fastapi.testclient import TestClient

from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import Actor
from facesearch.safeguards.governance import CollectionSpec
from facesearch.safeguards.vault import generate_master_key
from facesearch.server.app import create_app
from facesearch.store.keys import KeyStore

FIXTURES = Path(__file__).parent / "fixtures"
ADMIN = Actor("dpo@newsroom.example")
SEARCH_PURPOSE = "Newsroom fact checks of people named in reader requests"
CONSENT_ATTESTATION = "signed consent forms held by HR, policy P-12"
STARTUP_SECONDS = 90
# A collection allowed to group faces into people, as the people tests create it over the API.
FAMILY = {
    "name": "family",
    "purpose": "Our own family photo archive, grouped by person",
    "lawful_basis": "consent",
    "biometric_condition": "explicit-consent",
    "retention": "10y",
    "people_allowed": True,
}
Client = Callable[..., TestClient]
"""Opens the gallery with some settings changed (``search_rate_per_minute=3``) and gives a test client over it."""


@dataclass(frozen=True)
class Gallery:
    data_dir: Path
    master_key_file: Path
    keys: dict[str, str]
    """Token per role: admin, ingest (news and subjects), search, auditor, rights, recognition (subjects)."""

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, workers=1, master_key_file=str(self.master_key_file))


def subjects_spec() -> CollectionSpec:
    return CollectionSpec.parse(
        name="subjects",
        purpose="Recognise staff who enrolled at the front desk with consent",
        lawful_basis="consent",
        biometric_condition="explicit-consent",
        retention="1y",
    )


def news_spec() -> CollectionSpec:
    return CollectionSpec.parse(
        name="news",
        purpose="Find archive photos of people named in reader requests",
        lawful_basis="legitimate-interests",
        biometric_condition="substantial-public-interest",
        retention="2y",
    )


def prepare_gallery(
    root: Path, ingest: bool = True, hold_out: tuple[str, ...] = (), template_recipe: str = ""
) -> Gallery:
    """A data folder with the collections 'news' (the fixture identities but those named in ``hold_out``,
    when ``ingest``) and 'subjects', of ``template_recipe`` (empty: the default)."""
    key_file = root / "master.key"
    key_file.write_text(generate_master_key())
    key_file.chmod(0o600)
    gallery = Gallery(root / "data", key_file, {})
    with Engine.init(gallery.settings.replace(template_recipe=template_recipe)) as engine:
        engine.create_collection(news_spec(), ADMIN)
        engine.create_collection(subjects_spec(), ADMIN)
        if ingest:
            photos = [p for p in sorted((FIXTURES / "identities").iterdir()) if p.name not in hold_out]
            engine.ingest("news", photos, ADMIN, workers=1)
        store = KeyStore(engine.catalog)
        made = {
            "admin": store.create("ops", "admin", ADMIN),
            "ingest": store.create("archive-bot", "ingest", ADMIN, collections=["news", "subjects"]),
            "search": store.create("fact-check desk", "search", ADMIN, purpose=SEARCH_PURPOSE),
            "auditor": store.create("internal audit", "auditor", ADMIN),
            "rights": store.create("privacy desk", "rights", ADMIN),
            "recognition": store.create(
                "front desk", "recognition", ADMIN, collections=["subjects"], consent_attestation=CONSENT_ATTESTATION
            ),
        }
    gallery.keys.update({role: token for role, (_, token) in made.items()})
    return gallery


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def live_server(gallery: Gallery, **env: str) -> Iterator[str]:
    """``facesearch serve`` in its own process on a free port; yields its base URL."""
    port = free_port()
    environment = {
        **os.environ,
        "FACESEARCH_MASTER_KEY_FILE": str(gallery.master_key_file),
        "FACESEARCH_WORKERS": "1",
        **env,
    }
    environment.pop("FACESEARCH_MASTER_KEY", None)
    command = [sys.executable, "-m", "facesearch.cli.main", "--data-dir", str(gallery.data_dir)]
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(base, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_ready(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"facesearch serve exited with {process.returncode}:\n{output}")
        try:
            if httpx2.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"facesearch serve did not become ready within {STARTUP_SECONDS} s")


def key(gallery: Gallery, role: str) -> dict[str, str]:
    """The header that presents the gallery's key of ``role``."""
    return {"X-API-Key": gallery.keys[role]}


def clients_over(gallery: Gallery) -> Iterator[Client]:
    """For a fixture: test clients over engines opened on the gallery with settings changed, closed at the end."""
    opened: list[tuple[Engine, TestClient]] = []

    def start(**changes: object) -> TestClient:
        engine = Engine.open(gallery.settings.replace(**changes))
        client = TestClient(create_app(engine))
        opened.append((engine, client))
        return client

    yield start
    for engine, client in opened:
        client.close()
        engine.close()
