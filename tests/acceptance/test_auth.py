"""Tokens and who may do what: AUTH=token on the native and the Slurm routes, and the bind-address rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from conductor.auth import TokenStore
from conductor.config import Settings
from conductor.exceptions import ConfigError
from conductor.service import JobService
from tests.helpers import node

CONDUCTOR = str(Path(sys.executable).with_name("conductor"))


def _body(**job: object) -> dict:
    return {"job": {"name": "j", "current_working_directory": "/tmp", **job}, "script": "#!/bin/bash\ntrue\n"}


@pytest.fixture
def secured(settings_factory, backend) -> Iterator[dict]:
    settings = settings_factory(backend, auth="token")
    service = JobService.from_settings(settings)
    service.repository.replace_nodes([node("n1", 32, 65536, 0, {}, ray_node_id="ray-n1")])
    store = TokenStore(service.repository.engine)
    tokens = {"alice": store.create("alice", accounts=["physics"]), "bob": store.create("bob"),
              "root": store.create("root", admin=True)}
    with TestClient(create_app(settings, service=service)) as client:
        yield {"client": client, "tokens": tokens, "service": service, "store": store}
    service.close()


def _as(secured: dict, user: str) -> dict:
    return {"Authorization": f"Bearer {secured['tokens'][user]}"}


def test_requests_without_a_valid_token_are_401(secured: dict) -> None:
    client = secured["client"]
    for headers in ({}, {"Authorization": "Bearer cdt_wrong"}, {"Authorization": "Basic xyz"}):
        response = client.post("/api/jobs/submit", json=_body(), headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthenticated"
    assert client.get("/api/jobs").status_code == 401
    assert secured["service"].repository.ids_in_state(__import__("conductor.jobs").jobs.JobState.PENDING) == []


def test_a_user_submits_as_themselves_and_charges_only_their_accounts(secured: dict) -> None:
    client = secured["client"]
    response = client.post("/api/jobs/submit", json=_body(account="physics", user="bob"), headers=_as(secured, "alice"))
    assert response.status_code == 200, response.text
    assert response.json()["job"]["user"] == "alice"  # the token decides, not the body
    refused = client.post("/api/jobs/submit", json=_body(account="chemistry"), headers=_as(secured, "alice"))
    assert refused.status_code == 403
    assert refused.json()["error"]["fields"] == [
        {"field": "job.account", "reason": "alice may not charge 'chemistry' (allowed: physics)"}]
    assert client.post("/api/jobs/submit", json=_body(priority=5), headers=_as(secured, "alice")).status_code == 403
    assert client.post("/api/jobs/submit", json=_body(priority=5), headers=_as(secured, "root")).status_code == 200


def test_users_see_and_touch_only_their_own_jobs(secured: dict) -> None:
    client = secured["client"]
    alices = client.post("/api/jobs/submit", json=_body(), headers=_as(secured, "alice")).json()["job_id"]
    bobs = client.post("/api/jobs/submit", json=_body(), headers=_as(secured, "bob")).json()["job_id"]
    assert client.get(f"/api/jobs/{alices}", headers=_as(secured, "bob")).status_code == 404
    assert client.get(f"/api/jobs/{alices}/output", headers=_as(secured, "bob")).status_code == 404
    assert client.post(f"/api/jobs/{alices}/cancel", headers=_as(secured, "bob")).status_code == 404
    listed = client.get("/api/jobs", headers=_as(secured, "bob")).json()["jobs"]
    assert [job["job_id"] for job in listed] == [bobs]
    everyone = client.get("/api/jobs", headers=_as(secured, "root")).json()["jobs"]
    assert sorted(job["job_id"] for job in everyone) == sorted([alices, bobs])
    assert client.post(f"/api/jobs/{alices}/cancel", headers=_as(secured, "alice")).json()["cancelled"] == [alices]


def test_only_an_admin_holds_as_admin_and_releases_it(secured: dict) -> None:
    client = secured["client"]
    job = client.post("/api/jobs/submit", json=_body(), headers=_as(secured, "alice")).json()["job_id"]
    assert client.post(f"/api/jobs/{job}/hold?admin=true", headers=_as(secured, "alice")).status_code == 403
    assert client.post(f"/api/jobs/{job}/hold?admin=true", headers=_as(secured, "root")).json()["held"] == [job]
    assert client.get(f"/api/jobs/{job}", headers=_as(secured, "alice")).json()["reason"] == "JobHeldAdmin"
    assert client.post(f"/api/jobs/{job}/release", headers=_as(secured, "alice")).status_code == 403
    assert client.post(f"/api/jobs/{job}/release", headers=_as(secured, "root")).json()["released"] == [job]


def test_slurm_routes_take_slurms_header_pair(secured: dict) -> None:
    client = secured["client"]
    slurm = {"X-SLURM-USER-NAME": "alice", "X-SLURM-USER-TOKEN": secured["tokens"]["alice"]}
    body = {"job": {"name": "s", "current_working_directory": "/tmp", "environment": ["A=1"],
                    "script": "#!/bin/bash\ntrue\n"}}
    submitted = client.post("/slurm/v0.0.42/job/submit", json=body, headers=slurm)
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["job_id"]
    assert client.get(f"/slurm/v0.0.42/job/{job_id}", headers=slurm).json()["jobs"][0]["user_name"] == "alice"
    impostor = {"X-SLURM-USER-NAME": "bob", "X-SLURM-USER-TOKEN": secured["tokens"]["alice"]}
    assert client.post("/slurm/v0.0.42/job/submit", json=body, headers=impostor).status_code == 401
    bob = {"X-SLURM-USER-NAME": "bob", "X-SLURM-USER-TOKEN": secured["tokens"]["bob"]}
    assert client.get(f"/slurm/v0.0.42/job/{job_id}", headers=bob).status_code == 404
    assert client.delete(f"/slurm/v0.0.42/job/{job_id}", headers=bob).status_code == 404
    assert job_id not in [j["job_id"] for j in client.get("/slurm/v0.0.42/jobs/", headers=bob).json()["jobs"]]


def test_tokens_are_stored_hashed_and_can_be_revoked(secured: dict) -> None:
    engine = secured["service"].repository.engine
    with engine.connect() as connection:
        stored = [row[0] for row in connection.execute(text("SELECT token_sha256 FROM api_tokens"))]
    assert stored and not any(token in stored for token in secured["tokens"].values())
    assert secured["store"].revoke_all("bob") == 1
    assert secured["client"].get("/api/jobs", headers=_as(secured, "bob")).status_code == 401


def test_no_authentication_means_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AUTH=none"):
        Settings(state_dir=tmp_path, api_host="0.0.0.0").check_bind_address()
    Settings(state_dir=tmp_path, api_host="0.0.0.0", auth="token").check_bind_address()
    Settings(state_dir=tmp_path).check_bind_address()
    env = {"CONDUCTOR_STATE_DIR": str(tmp_path), "CONDUCTOR_API_HOST": "0.0.0.0", "PATH": "/usr/bin:/bin"}
    refused = subprocess.run([CONDUCTOR, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert refused.stderr.startswith("conductor: error: API_HOST=0.0.0.0 would expose the API")


def test_the_cli_sends_its_token(tmp_path: Path) -> None:
    import os
    import socket
    import threading

    import uvicorn

    from tests.helpers import wait_for

    settings = Settings(state_dir=tmp_path, auth="token")
    service = JobService.from_settings(settings)
    token = TokenStore(service.repository.engine).create("carol")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30)
        (tmp_path / "job.sh").write_text("#!/bin/bash\ntrue\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
        env.update(CONDUCTOR_URL=f"http://127.0.0.1:{port}", CONDUCTOR_STATE_DIR=str(tmp_path))
        run = lambda extra: subprocess.run([CONDUCTOR, "submit", "--parsable", "job.sh"], env={**env, **extra},  # noqa: E731
                                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
        anonymous = run({})
        assert anonymous.returncode == 1
        assert anonymous.stderr.strip() == "conductor: error: a valid token is required: Authorization: Bearer <token>"
        signed = run({"CONDUCTOR_TOKEN": token})
        assert signed.returncode == 0, signed.stderr
        assert service.get(int(signed.stdout)).spec.user == "carol"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.close()


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.42"])
def test_slurm_job_list_needs_a_valid_token_even_when_there_are_no_jobs(secured: dict, version: str) -> None:
    client = secured["client"]
    for headers in ({}, {"X-SLURM-USER-NAME": "alice", "X-SLURM-USER-TOKEN": "cdt_wrong"}):
        response = client.get(f"/slurm/{version}/jobs/", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["errors"][0]["source"] == "authentication"
    mine = {"X-SLURM-USER-NAME": "alice", "X-SLURM-USER-TOKEN": secured["tokens"]["alice"]}
    assert client.get(f"/slurm/{version}/jobs/", headers=mine).json()["jobs"] == []


@pytest.mark.parametrize("version", ["v0.0.39", "v0.0.44"])
def test_slurm_ping_needs_a_valid_token_and_names_no_host_without_one(secured: dict, version: str) -> None:
    client = secured["client"]
    for headers in ({}, {"X-SLURM-USER-NAME": "alice", "X-SLURM-USER-TOKEN": "cdt_wrong"}):
        response = client.get(f"/slurm/{version}/ping/", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["errors"][0]["source"] == "authentication"
        assert "pings" not in response.json() and "testnode" not in response.text  # the host name stays unsaid
    mine = {"X-SLURM-USER-NAME": "alice", "X-SLURM-USER-TOKEN": secured["tokens"]["alice"]}
    (ping,) = client.get(f"/slurm/{version}/ping/", headers=mine).json()["pings"]
    assert (ping["hostname"], ping["pinged"]) == ("testnode", "UP")
