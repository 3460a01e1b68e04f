"""SchedMD's official Python client (``slurmrestapi`` 25.11, generated from Slurm 25.11's OpenAPI
specification) against conductor's slurmrestd routes v0.0.43 and v0.0.44, over real HTTP.

With a token: a real ``conductor up`` (AUTH=token, its own Ray), where the job runs to the end.
Without one: the API over a real service (AUTH=none), without a scheduler, so that jobs stay pending.
The client parses every answer into its pydantic models (``job_state`` against Slurm's list of
states, numbers as ``{set, infinite, number}``), so a shape it does not accept fails the call; each
test then checks what it got back.
"""

from __future__ import annotations

import getpass
import importlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from api.app import create_app
from conductor.config import Settings
from conductor.service import JobService
from tests.acceptance.slurm_up import CONDUCTOR, SlurmUp, start
from tests.helpers import node, wait_for

VERSIONS = ["v0.0.43", "v0.0.44"]


def _client_package() -> Any:
    """The client (the test extras install it): skips without it, and fails in CI."""
    try:
        return importlib.import_module("slurmrestapi")
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"slurmrestapi is not installed: {exc}")
        pytest.skip("slurmrestapi is not installed")


class Client:
    """One version's calls of the official client: ``submit``, ``job``, ``jobs``, ``cancel``, ``ping``."""

    def __init__(self, url: str, version: str, *, user: str | None = None, token: str | None = None) -> None:
        self.package = _client_package()
        from slurmrestapi.api.slurm_api import SlurmApi

        config = self.package.Configuration(host=url)
        if token is not None:
            config.api_key["user"], config.api_key["token"] = user or "", token
        self.api = SlurmApi(self.package.ApiClient(config))
        self.tag = version.replace(".", "")  # v0.0.44 -> v0044, as the client names its methods and models

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.api, f"slurm_{self.tag}_{name}")(*args, **kwargs)

    def _model(self, name: str) -> Any:
        return getattr(self.package.models, f"V{self.tag[1:]}{name}")

    def submit(self, **job: Any) -> Any:
        number = self._model("Uint32NoValStruct")
        if "time_limit" in job:
            job["time_limit"] = number(set=True, infinite=False, number=job["time_limit"])
        desc = self._model("JobDescMsg")(environment=["PATH=/usr/bin:/bin"], **job)
        return self._call("post_job_submit", self._model("JobSubmitReq")(job=desc))

    def job(self, job_id: int) -> Any:
        (found,) = self._call("get_job", str(job_id)).jobs
        return found

    def jobs(self) -> Any:
        return self._call("get_jobs")

    def cancel(self, job_id: int) -> Any:
        return self._call("delete_job", str(job_id))

    def ping(self) -> Any:
        return self._call("get_ping")


# -- AUTH=token: a real `conductor up` ---------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SlurmUp, str]]:
    _client_package()
    for up in start(tmp_path_factory.mktemp("slurmrestapi"), cpus=4, namespace="acceptance-restapi", AUTH="token"):
        # as the service runs as root here, only an admin token may run jobs as root (the test user)
        made = subprocess.run([CONDUCTOR, "token", "create", "--user", getpass.getuser(), "--admin"], env=up.env,
                              capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        yield up, made.stdout.strip()


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_with_a_token_the_client_submits_polls_lists_and_cancels(secured: tuple[SlurmUp, str], version: str,
                                                                 tmp_path: Path) -> None:
    up, token = secured
    user = getpass.getuser()
    client = Client(up.url, version, user=user, token=token)
    exceptions = client.package.exceptions
    with pytest.raises(exceptions.UnauthorizedException) as refused:
        Client(up.url, version).ping()  # slurmrestd answers nobody without a token, ping/ included
    assert refused.value.status == 401 and "vm" not in (refused.value.body or "")
    assert [(p.hostname, p.pinged, p.responding) for p in client.ping().pings] == [("vm", "UP", True)]

    ran = client.submit(name="restapi-run", current_working_directory=str(tmp_path), time_limit=5,
                        script="#!/bin/bash\necho from-the-client\nexit 3\n")
    assert ran.errors == [] and ran.step_id == "batch" and ran.job_id > 0
    held = client.submit(name="restapi-held", current_working_directory=str(tmp_path), hold=True,
                         script="#!/bin/bash\ntrue\n")
    waiting = client.submit(name="restapi-later", current_working_directory=str(tmp_path),
                            begin_time=client._model("Uint64NoValStruct")(set=True, number=int(time.time()) + 3600),
                            script="#!/bin/bash\ntrue\n")

    ended = wait_for(lambda: (lambda j: j if j.job_state[0] not in ("PENDING", "RUNNING") else None)(
        client.job(ran.job_id)), 90, interval_s=0.5)
    assert (ended.job_id, ended.name, ended.user_name, ended.job_state) == (ran.job_id, "restapi-run", user,
                                                                            ["FAILED"])
    assert ended.exit_code.status == ["ERROR"] and ended.exit_code.return_code.number == 3
    assert ended.start_time.set and ended.end_time.number >= ended.start_time.number > 0
    assert ended.priority.number > 0 and ended.time_limit.number == 5  # ran by its priority, not held
    assert (Path(ended.standard_output).read_text(), ended.standard_error) == ("from-the-client\n",
                                                                             ended.standard_output)

    pending = client.job(waiting.job_id)
    assert pending.job_state == ["PENDING"] and pending.state_reason == "BeginTime" and pending.priority.number > 0
    on_hold = client.job(held.job_id)
    assert on_hold.job_state == ["PENDING"] and on_hold.hold is True and on_hold.priority.number == 0

    listed = client.jobs()
    assert {ran.job_id, held.job_id, waiting.job_id} <= {job.job_id for job in listed.jobs}
    assert listed.last_update.set is True and listed.meta.plugin.data_parser == f"data_parser/{version}"

    for job_id in (held.job_id, waiting.job_id):
        (status,) = client.cancel(job_id).status
        assert (status.job_id.number, status.error.code) == (job_id, 0)
        assert client.job(job_id).job_state == ["CANCELLED"]


# -- AUTH=none: the API over a real service, no scheduler --------------------------------------


@pytest.fixture(scope="module")
def open_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """conductor's API (AUTH=none, SQLite) served by uvicorn on a port of its own; one 8-CPU node recorded."""
    _client_package()
    import uvicorn

    settings = Settings(state_dir=tmp_path_factory.mktemp("slurmrestapi-open"), node_name="vm")
    service = JobService.from_settings(settings)
    service.repository.replace_nodes([node("n1", 8, 16384, 0, {}, ray_node_id="ray-n1")])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, service=service), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_without_a_token_the_client_submits_polls_lists_and_cancels(open_api: str, version: str,
                                                                    tmp_path: Path) -> None:
    client = Client(open_api, version)
    (ping,) = client.ping().pings
    assert (ping.hostname, ping.responding) == ("vm", True)

    submitted = client.submit(name="open", current_working_directory=str(tmp_path), time_limit=10,
                              standard_output="out-%j.txt", script="#!/bin/bash\ntrue\n")
    assert submitted.errors == [] and submitted.warnings == [] and submitted.step_id == "batch"
    job = client.job(submitted.job_id)
    assert (job.job_id, job.name, job.job_state, job.time_limit.number) == (submitted.job_id, "open", ["PENDING"], 10)
    assert job.priority.number > 0 and job.hold is False
    output = str(tmp_path / f"out-{submitted.job_id}.txt")
    assert (job.standard_output, job.standard_error, job.standard_input) == (output, output, "/dev/null")
    if version == "v0.0.44":
        assert job.step_id.job_id.number == submitted.job_id
    assert submitted.job_id in [j.job_id for j in client.jobs().jobs]

    (status,) = client.cancel(submitted.job_id).status
    assert (status.job_id.number, status.error.code, status.step_id) == (submitted.job_id, 0, str(submitted.job_id))
    cancelled = client.job(submitted.job_id)
    assert cancelled.job_state == ["CANCELLED"] and cancelled.exit_code.status == ["SUCCESS"]
    assert cancelled.end_time.set is True

    with pytest.raises(client.package.exceptions.NotFoundException) as unknown:
        client.job(999999)
    assert unknown.value.status == 404
