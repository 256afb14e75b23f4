"""The OpenAPI schema tells the truth: Schemathesis sends a few generated requests to every operation, once
with each role's real key, and checks each answer against what the schema documents (status, content type,
body, headers), and that none is a server error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, checks
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema

from facesearch.engine.engine import Engine
from facesearch.safeguards.roles import Role
from facesearch.server.app import create_app
from server_support import FIXTURES, Gallery, prepare_gallery

EXAMPLES = 4
"""Generated requests per operation and role, valid and invalid together."""
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("schema"), ingest=False)


@pytest.fixture(scope="module")
def app(gallery: Gallery) -> Iterator[FastAPI]:
    """The service over a gallery holding two photos (ids 1 and 2, their faces too), so that some generated
    requests find something and their answers (JPEGs included) are checked as well."""
    with Engine.open(gallery.settings.replace(search_rate_per_minute=100_000)) as engine:
        app = create_app(engine)
        with TestClient(app) as client:
            photos = [FIXTURES / "identities" / name for name in ("obama__1.jpg", "bbt_penny__1.png")]
            sent = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in photos]
            added = client.post(
                "/v1/collections/news/images", files=sent, headers={"X-API-Key": gallery.keys["ingest"]}
            )
            assert added.status_code == 200, added.json()
        yield app


@pytest.fixture(scope="module")
def api_schema(app: FastAPI) -> BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def problems_for(api_schema: BaseSchema, token: str) -> dict[str, str]:
    """Every operation fed a few generated requests (valid and invalid, seeded) with ``token``; what failed."""
    found: dict[str, str] = {}
    for loaded in api_schema.get_all_operations():
        assert isinstance(loaded, Ok), loaded  # the schema itself is valid
        operation = loaded.ok()
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @given(strategy)
        @seed(20)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.generate],
        )
        def run(case: Case[Any]) -> None:
            case.call_and_validate(headers={"X-API-Key": token}, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as failure:  # collected, reported together below
            found[operation.label] = _summary(failure)
    return found


@pytest.mark.parametrize("role", [role.value for role in Role])
def test_every_operation_answers_as_documented(api_schema: BaseSchema, gallery: Gallery, role: str) -> None:
    problems = problems_for(api_schema, gallery.keys[role])
    assert not problems, "\n".join(f"{label}: {found}" for label, found in sorted(problems.items()))


def _summary(failure: BaseException) -> str:
    """The failure's first lines that say what was received and what is documented."""
    lines = [line.strip() for line in str(failure).splitlines() if line.strip()]
    for inner in getattr(failure, "exceptions", ()):
        lines += [line.strip() for line in str(inner).splitlines() if line.strip()]
    return " | ".join(dict.fromkeys(lines))[:600]
