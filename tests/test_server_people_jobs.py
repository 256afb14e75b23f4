"""Grouping into people as a background job over HTTP: it answers at once, says which step it is at (waiting
while another change runs), and ends with the same report as the synchronous call; only the key that started a
job sees it; a failure carries the error body, a bug none of its traceback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from facesearch.core.errors import NotFoundError
from facesearch.engine.engine import Engine
from facesearch.people.service import CLUSTER_STEPS
from facesearch.server.app import create_app
from facesearch.server.jobs import WAITING, Job, Jobs
from server_support import FAMILY, FIXTURES, prepare_gallery

JOBS = "/v1/collections/family/people/cluster/jobs"


def wait_for(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(url, headers=headers).json()
        if job["state"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job still running after 60 s: {job}")


def test_grouping_runs_as_a_job_with_its_progress(tmp_path: Path) -> None:
    gallery = prepare_gallery(tmp_path, ingest=False)
    with Engine.open(gallery.settings) as engine, TestClient(create_app(engine)) as client:
        admin = {"X-API-Key": gallery.keys["admin"]}
        assert client.post("/v1/collections", json=FAMILY, headers=admin).status_code == 201

        def ingest_key(owner: str) -> dict[str, str]:
            made = client.post(
                "/v1/keys", json={"owner": owner, "role": "ingest", "collections": ["family"]}, headers=admin
            )
            return {"X-API-Key": made.json()["token"]}

        ingest, other = ingest_key("importer"), ingest_key("second importer")
        photos = sorted((FIXTURES / "identities").iterdir())
        uploads = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in photos]
        assert client.post("/v1/collections/family/images", files=uploads, headers=ingest).status_code == 200

        # While another change holds the write lock, the job has started and says it is waiting.
        service = client.app.state.service  # type: ignore[attr-defined]
        with service.writing():
            started = client.post(JOBS, json={"full": True}, headers=ingest)
            assert started.status_code == 202, started.json()
            job = started.json()
            assert (job["state"], job["stage"], job["step"], job["steps"]) == (
                "running",
                WAITING,
                0,
                len(CLUSTER_STEPS),
            )
            again = client.post(JOBS, json={"full": True}, headers=ingest).json()
            assert again["id"] == job["id"]  # the same key's running job, not a second one
            time.sleep(0.2)
            assert client.get(f"{JOBS}/{job['id']}", headers=ingest).json()["state"] == "running"
        done = wait_for(client, f"{JOBS}/{job['id']}", ingest)
        assert (done["state"], done["stage"], done["step"], done["error"]) == ("done", "done", 4, None)
        report = done["result"]
        assert report["collection"] == "family" and report["full"] is True
        assert report["faces"] + report["low_quality"] == len(photos)
        people = client.get("/v1/collections/family/people", headers={"X-API-Key": gallery.keys["search"]}).json()
        assert len(people["items"]) == report["people"] and report["people"] >= 4

        # Another key does not see it; a job id under another collection is not found either.
        hidden = client.get(f"{JOBS}/{job['id']}", headers=other)
        assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found")
        elsewhere = client.get(f"/v1/collections/news/people/cluster/jobs/{job['id']}", headers=ingest)
        assert elsewhere.status_code == 404
        # A collection the purpose of which does not allow it is refused at once, not in a job.
        news = client.post(
            "/v1/collections/news/people/cluster/jobs", json={}, headers={"X-API-Key": gallery.keys["ingest"]}
        )
        assert (news.status_code, news.json()["code"]) == (403, "refused")
        actions = client.get("/v1/audit", params={"action": "people"}, headers={"X-API-Key": gallery.keys["auditor"]})
        assert [e["details"]["change"] for e in actions.json()["items"]] == ["cluster-full"]


def test_a_failed_job_carries_the_error_and_a_bug_no_traceback() -> None:
    jobs = Jobs()

    def missing(progress: object) -> None:
        raise NotFoundError("no collection 'gone'")

    def bug(progress: object) -> None:
        raise ZeroDivisionError("secret detail")

    def finished(job: Job) -> Job:
        deadline = time.monotonic() + 10
        while job.state == "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        return jobs.get(job.id, 1)

    failed = finished(jobs.start(1, "test", "gone", ("one",), missing))
    assert (failed.state, failed.error) == (
        "failed",
        {"status": 404, "code": "not_found", "message": "no collection 'gone'"},
    )
    crashed = finished(jobs.start(1, "test", "x", ("one",), bug)).view()
    assert crashed["state"] == "failed" and crashed["error"]["status"] == 500
    assert "secret" not in str(crashed) and "ZeroDivision" not in str(crashed)
