"""``GET /api/jobs/{id}/output/follow`` (Server-Sent Events) against a real uvicorn, and ``conductor logs -f``.

The server serves ``create_app`` on SQLite in a thread of the test process; the tests move jobs
through the same database with the repository and write their output files themselves (no Ray).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.routes import stream
from conductor import jobs
from conductor.auth import TokenStore
from conductor.service import JobService
from tests.helpers import allocation, api_answers, free_port, spec, wait_for

CONDUCTOR = str(Path(sys.executable).with_name("conductor"))
COMPLETED = {"state": "COMPLETED", "exit_code": "0:0"}


class Api:
    """The running server, its URL, and a service on the same database."""

    def __init__(self, url: str, service: JobService, directory: Path, app: FastAPI) -> None:
        self.url, self.service, self.directory, self.app = url, service, directory, app

    def submit(self, user: str = "tester", **fields: object) -> int:
        return self.service.submit(spec("#!/bin/bash\ntrue\n", user=user, working_dir=str(self.directory),
                                        **fields)).id

    def start(self, job_id: int) -> None:
        assert self.service.repository.start_jobs([allocation(job_id, 1, 0)]) == {job_id}

    def finish(self, job_id: int, state: jobs.JobState = jobs.JobState.COMPLETED, exit_code: int = 0) -> None:
        reason = jobs.Reason.NONE if state is jobs.JobState.COMPLETED else jobs.Reason.NON_ZERO_EXIT
        assert self.service.repository.finish_job(job_id, jobs.Ending(state, reason, exit_code=exit_code))

    def out(self, job_id: int) -> Path:
        return self.directory / f"slurm-{job_id}.out"

    def follow(self, job_id: int, query: str = "", **headers: str):  # noqa: ANN201 - httpx's stream context
        return httpx.stream("GET", f"{self.url}/api/jobs/{job_id}/output/follow?{query}", headers=headers,
                            timeout=httpx.Timeout(10.0))


@pytest.fixture
def serve(settings_factory: Callable, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Start the API on SQLite (settings overrides as keywords); stopped after the test."""
    started: list[tuple[uvicorn.Server, threading.Thread, JobService]] = []

    def start(follow: stream.FollowTiming | None = None, **overrides: object) -> Api:
        settings = settings_factory("sqlite-embedded", node_name="n1", **overrides)
        service = JobService.from_settings(settings)
        port = free_port()
        app = create_app(settings, service=service, follow=follow)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread, service))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: api_answers(url), 30, interval_s=0.05)
        directory = tmp_path / "work"
        directory.mkdir(exist_ok=True)
        return Api(url, service, directory, app)

    yield start
    for server, thread, service in started:
        server.should_exit = True
        thread.join(timeout=10)
        service.close()


def _events(response: httpx.Response) -> Iterator[dict]:
    """The response's events as {"event", "id", "data"} (data JSON-decoded); comments as {"comment"}."""
    fields: dict = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        elif fields:
            yield {"event": fields.get("event", "message"), "id": fields.get("id"),
                   "data": json.loads(fields["data"])}
            fields = {}


def _next(events: Iterator[dict]) -> dict:
    """The next event that is not a comment."""
    return next(event for event in events if "comment" not in event)


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def test_follow_sends_the_file_then_appends_then_the_final_state(serve: Callable[..., Api]) -> None:
    api = serve()
    job_id = api.submit()
    api.start(job_id)
    api.out(job_id).write_bytes(b"first\n")
    with api.follow(job_id) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
        assert next(events) == {"event": "message", "id": "6", "data": "first\n"}
        _append(api.out(job_id), b"second\r50%\r100%\n")  # a bare \r survives (the data are JSON strings)
        assert next(events) == {"event": "message", "id": "22", "data": "second\r50%\r100%\n"}
        _append(api.out(job_id), b"last\n")
        api.finish(job_id)  # output written before the end is sent before the end event
        assert list(events) == [{"event": "message", "id": "27", "data": "last\n"},
                                {"event": "end", "id": "27", "data": COMPLETED}]


def test_a_pending_job_is_followed_from_its_start_and_keepalives_fill_silences(serve: Callable[..., Api]) -> None:
    api = serve(follow=stream.FollowTiming(keepalive_s=0.3))
    job_id = api.submit()
    api.out(job_id).write_bytes(b"stale, from before the job\n")  # not its output until it starts
    with api.follow(job_id, "stream=stderr") as response:  # stderr: the stdout file (no -e)
        events = _events(response)
        assert next(events) == {"comment": "keepalive"}  # nothing else came first
        api.out(job_id).write_bytes(b"running\n")
        api.start(job_id)
        assert _next(events) == {"event": "message", "id": "8", "data": "running\n"}
        api.finish(job_id, jobs.JobState.FAILED, exit_code=3)
        assert _next(events) == {"event": "end", "id": "8", "data": {"state": "FAILED", "exit_code": "3:0"}}
        assert list(events) == []


def test_resume_with_last_event_id(serve: Callable[..., Api]) -> None:
    api = serve()
    job_id = api.submit()
    api.start(job_id)
    api.out(job_id).write_bytes("hello\nwörld\n".encode())
    api.finish(job_id)
    with api.follow(job_id, "offset=0", **{"Last-Event-ID": "6"}) as response:  # the header wins
        assert list(_events(response)) == [{"event": "message", "id": "13", "data": "wörld\n"},
                                           {"event": "end", "id": "13", "data": COMPLETED}]
    with api.follow(job_id, "offset=13") as response:
        assert list(_events(response)) == [{"event": "end", "id": "13", "data": COMPLETED}]


def test_a_character_written_in_two_pieces_arrives_whole(serve: Callable[..., Api]) -> None:
    api = serve()
    job_id = api.submit()
    api.start(job_id)
    api.out(job_id).write_bytes(b"caf\xc3")
    with api.follow(job_id) as response:
        events = _events(response)
        assert next(events) == {"event": "message", "id": "3", "data": "caf"}
        time.sleep(3 * api.app.state.follow.poll_s)  # the half character is seen and held back meanwhile
        _append(api.out(job_id), b"\xa9 \xe2\x82")
        assert next(events) == {"event": "message", "id": "6", "data": "é "}
        api.finish(job_id)  # an end that never came is replaced once the job is over
        assert list(events) == [{"event": "message", "id": "8", "data": "\ufffd"},
                                {"event": "end", "id": "8", "data": COMPLETED}]


def test_a_file_started_again_is_sent_from_its_start(serve: Callable[..., Api]) -> None:
    api = serve()
    job_id = api.submit()
    api.start(job_id)
    api.out(job_id).write_bytes(b"first run\n")
    with api.follow(job_id) as response:
        events = _events(response)
        assert next(events)["id"] == "10"
        api.out(job_id).write_bytes(b"again\n")  # requeued: the file was truncated and written anew
        assert next(events) == {"event": "truncated", "id": "0", "data": {"size": 6}}
        assert next(events) == {"event": "message", "id": "6", "data": "again\n"}


def test_the_server_stops_following_when_the_client_goes(serve: Callable[..., Api]) -> None:
    api = serve(follow=stream.FollowTiming(job_poll_s=0.1))
    job_id = api.submit()
    api.start(job_id)
    followers = api.app.state.followers
    with api.follow(job_id) as first, api.follow(job_id) as second:
        assert (first.status_code, second.status_code) == (200, 200)
        wait_for(lambda: followers.active == 2, 5, interval_s=0.05, message="two followers")
    wait_for(lambda: followers.active == 0, 5, interval_s=0.05, message="no follower left once the clients went")


def test_errors_are_json_and_another_users_job_is_not_found(serve: Callable[..., Api]) -> None:
    api = serve(auth="token")
    tokens = TokenStore(api.service.repository.engine)
    alice, bob = tokens.create("alice"), tokens.create("bob")
    job_id = api.submit(user="alice")
    api.start(job_id)
    api.finish(job_id)
    for token, status in ((None, 401), (bob, 404), (alice, 200)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with api.follow(job_id, **headers) as response:
            assert response.status_code == status
            if status != 200:
                response.read()
                assert response.headers["content-type"] == "application/json"
                assert response.json()["error"]["status"] == status
            else:
                assert list(_events(response)) == [{"event": "end", "id": "0", "data": COMPLETED}]
    headers = {"Authorization": f"Bearer {alice}"}
    missing = httpx.get(f"{api.url}/api/jobs/999/output/follow", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "job 999 does not exist"
    for query, field in (("stream=stdin", "stream"), ("offset=-1", "offset")):
        bad = httpx.get(f"{api.url}/api/jobs/{job_id}/output/follow?{query}", headers=headers)
        assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == field


def test_openapi_documents_the_event_stream(serve: Callable[..., Api]) -> None:
    api = serve()
    operation = httpx.get(f"{api.url}/openapi.json").json()["paths"]["/api/jobs/{job_id}/output/follow"]["get"]
    assert operation["summary"] and "Last-Event-ID" in operation["description"]
    assert "event: end" in operation["responses"]["200"]["content"]["text/event-stream"]["example"]
    assert {"404", "422"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {"job_id", "stream", "offset", "Last-Event-ID"}
    assert all(p.get("description") for p in operation["parameters"])


def test_logs_follow_prints_the_bytes_of_the_file(serve: Callable[..., Api]) -> None:
    api = serve()
    job_id = api.submit()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(CONDUCTOR_URL=api.url, CONDUCTOR_STATE_DIR=str(api.directory))
    follower = subprocess.Popen([CONDUCTOR, "logs", str(job_id), "-f"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    printed = bytearray()
    reader = threading.Thread(target=lambda: [printed.extend(chunk) for chunk in iter(
        lambda: os.read(follower.stdout.fileno(), 4096), b"")], daemon=True)
    reader.start()
    try:
        api.start(job_id)
        api.out(job_id).write_bytes("10%\r100%\r\nwö".encode()[:-1])
        wait_for(lambda: bytes(printed) == b"10%\r100%\r\nw", 15, interval_s=0.05)
        _append(api.out(job_id), "wö".encode()[-1:] + b"rld\n")
        wait_for(lambda: bytes(printed).endswith("wörld\n".encode()), 5, interval_s=0.05)
        api.out(job_id).write_bytes(b"again\n")  # requeued: the file is read again from its start
        wait_for(lambda: bytes(printed).endswith(b"again\n"), 5, interval_s=0.05)
        assert follower.poll() is None  # still following: the job runs
        api.finish(job_id)
        follower.wait(timeout=10)
        reader.join(timeout=5)
    finally:
        if follower.poll() is None:
            follower.kill()
    stderr = follower.stderr.read().decode()
    assert follower.returncode == 0, stderr
    assert bytes(printed) == "10%\r100%\r\nwörld\nagain\n".encode()
    assert stderr == f"conductor: note: job {job_id}'s stdout was truncated; reading it from the start\n"
