"""Jobs run as the people who submit them (AUTH=token, service root), through the API and a real scheduler.

Two Unix accounts (alice and bob, with a random suffix) and a group are created for this module
with useradd and removed after it, whatever happens.  That needs root: CI runs as root, and
elsewhere these tests skip, saying so.  The AUTH=none test runs as whoever runs the suite.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from conductor import jobs
from conductor.auth import TokenStore, job_identity_mode
from conductor.config import Settings
from conductor.db.models import UserRow
from conductor.service import JobService
from tests.helpers import wait_for

pytestmark = pytest.mark.ray

CONDUCTOR = str(Path(sys.executable).with_name("conductor"))
WHO_AM_I = '#!/bin/bash\nid -u\nid -G\necho "$HOME $USER $LOGNAME"\nstat -c "%U %a" "$0"\n'
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="needs root and useradd: the tests create Unix users and run jobs as them (CI runs as root)")


@dataclass(frozen=True)
class Accounts:
    alice: str
    bob: str
    group: str  #: a supplementary group of alice's

    def home(self, name: str) -> Path:
        return Path(pwd.getpwnam(name).pw_dir)


def _quiet(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    """alice (in an extra group) and bob, with home directories; removed after the module."""
    suffix = uuid.uuid4().hex[:6]
    made = Accounts(alice=f"cdt-alice-{suffix}", bob=f"cdt-bob-{suffix}", group=f"cdt-grp-{suffix}")
    try:
        _quiet("groupadd", made.group)
        _quiet("useradd", "--create-home", "--user-group", "--groups", made.group, made.alice)
        _quiet("useradd", "--create-home", "--user-group", made.bob)
        yield made
    finally:
        for user in (made.alice, made.bob):
            subprocess.run(["userdel", "--remove", user], capture_output=True, timeout=60)
        subprocess.run(["groupdel", made.group], capture_output=True, timeout=60)


@dataclass
class Site:
    client: TestClient
    service: JobService
    store: TokenStore
    tokens: dict[str, str]

    def submit(self, who: str, script: str = WHO_AM_I, **job: object):  # noqa: ANN201 - an httpx Response
        return self.client.post("/api/jobs/submit", json={"job": {"name": "u", **job}, "script": script},
                                headers=self.auth(who))

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}

    def run(self, who: str, script: str = WHO_AM_I, **job: object) -> jobs.Job:
        """Submit, and wait for the job's end."""
        response = self.submit(who, script, **job)
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        wait_for(lambda: self.service.get(job_id).state.is_terminal(), 60, message=f"job {job_id} to end")
        return self.service.get(job_id)

    def output(self, who: str, job_id: int):  # noqa: ANN201 - an httpx Response
        return self.client.get(f"/api/jobs/{job_id}/output", headers=self.auth(who))


@pytest.fixture
def site(settings_factory: Callable[..., Settings], scheduler_factory: Callable) -> Iterator[Callable[..., Site]]:
    """The API over a service with a running scheduler (SQLite + embedded queue)."""
    with contextlib.ExitStack() as cleanup:

        def make(auth: str = "token", tokens: Callable[[TokenStore], dict[str, str]] = lambda store: {}) -> Site:
            settings = settings_factory("sqlite-embedded", auth=auth)
            service = JobService.from_settings(settings)
            cleanup.callback(service.close)
            scheduler_factory(settings)
            store = TokenStore(service.repository.engine)
            client = cleanup.enter_context(TestClient(create_app(settings, service=service)))
            return Site(client, service, store, tokens(store))

        yield make


@pytest.fixture
def secured(site: Callable[..., Site], accounts: Accounts) -> Site:
    """AUTH=token with tokens for alice, bob, and an admin whose own account is bob's."""
    return site("token", lambda store: {
        "alice": store.create(accounts.alice, require_unix_account=True),
        "bob": store.create(accounts.bob, require_unix_account=True),
        "admin": store.create("ops", admin=True, unix_user=accounts.bob, require_unix_account=True)})


def _lines(site: Site, who: str, job: jobs.Job) -> list[str]:
    response = site.output(who, job.id)
    assert response.status_code == 200, response.text
    return response.text.splitlines()


@needs_root
def test_a_job_runs_as_its_submitter_and_its_output_belongs_to_them(secured: Site, accounts: Accounts) -> None:
    home = accounts.home(accounts.alice)
    entry = pwd.getpwnam(accounts.alice)
    job = secured.run("alice", current_working_directory=str(home),
                      environment={"HOME": "/root", "USER": "root", "LOGNAME": "root"})
    assert (job.state, job.spec.run_as) == (jobs.JobState.COMPLETED, accounts.alice), job.reason
    uid, groups, names, script = _lines(secured, "alice", job)
    assert uid == str(entry.pw_uid)
    assert sorted(map(int, groups.split())) == sorted(set(os.getgrouplist(accounts.alice, entry.pw_gid)))
    assert pwd.getpwnam(accounts.alice).pw_gid in map(int, groups.split())
    assert len(groups.split()) == 2  # its own group and the extra one
    assert names == f"{home} {accounts.alice} {accounts.alice}"  # from the password database, not the request
    assert script == f"{accounts.alice} 700"  # the spooled script is the user's alone
    info = os.stat(job.stdout_path)
    assert (info.st_uid, info.st_gid, oct(info.st_mode & 0o777)) == (entry.pw_uid, entry.pw_gid, oct(0o644))
    assert secured.client.get(f"/api/jobs/{job.id}", headers=secured.auth("alice")).json()["run_as"] == accounts.alice


@needs_root
def test_bob_cannot_read_alices_job_or_output(secured: Site, accounts: Accounts) -> None:
    job = secured.run("alice", current_working_directory=str(accounts.home(accounts.alice)), environment={"K": "s3"})
    assert job.state is jobs.JobState.COMPLETED, job.reason
    for path in (f"/api/jobs/{job.id}", f"/api/jobs/{job.id}/output", f"/api/jobs/{job.id}/output/follow",
                 f"/api/jobs/{job.id}/output?stream=stderr", f"/slurm/v0.0.42/job/{job.id}"):
        assert secured.client.get(path, headers=secured.auth("bob")).status_code == 404, path
    listed = secured.client.get("/api/jobs", headers=secured.auth("bob")).json()["jobs"]
    slurm = secured.client.get("/slurm/v0.0.42/jobs/", headers=secured.auth("bob")).json()["jobs"]
    assert [j["job_id"] for j in listed + slurm] == []
    assert _lines(secured, "admin", job)[0] == str(pwd.getpwnam(accounts.alice).pw_uid)  # an admin may


@needs_root
def test_a_link_left_at_the_output_path_serves_nothing(secured: Site, accounts: Accounts, tmp_path: Path) -> None:
    secret = tmp_path / "secret"  # under pytest's root-only directory
    secret.write_text("TOP SECRET\n")
    home = accounts.home(accounts.alice)
    out = home / f"leak-{uuid.uuid4().hex[:6]}.out"
    job = secured.run("alice", f"#!/bin/bash\necho mine\nrm -f {out}\nln -s {secret} {out}\n",
                      current_working_directory=str(home), standard_output=str(out))
    assert job.state is jobs.JobState.COMPLETED, job.reason
    assert out.is_symlink()
    assert secured.output("alice", job.id).text == ""
    followed = secured.client.get(f"/api/jobs/{job.id}/output/follow", headers=secured.auth("alice")).text
    assert "SECRET" not in followed and "event: end" in followed


@needs_root
def test_an_output_file_the_user_cannot_write_fails_at_launch_and_creates_nothing(
        secured: Site, accounts: Accounts) -> None:
    home = accounts.home(accounts.alice)
    forbidden = Path(f"/root/conductor-{uuid.uuid4().hex[:8]}.out")
    job = secured.run("alice", current_working_directory=str(home), standard_output=str(forbidden))
    assert job.state is jobs.JobState.FAILED
    assert job.reason is jobs.Reason.LAUNCH_FAILED
    assert job.reason_message == f"cannot write the stdout file {forbidden} (as {accounts.alice} on node testnode)"
    assert not forbidden.exists()
    allowed = home / "fine.out"
    job = secured.run("alice", current_working_directory=str(home), standard_output=str(allowed),
                      standard_error=str(forbidden))
    assert job.state is jobs.JobState.FAILED and f"stderr file {forbidden}" in job.reason_message
    assert not forbidden.exists() and not allowed.exists()  # checked both before creating either


@needs_root
def test_a_working_directory_the_user_cannot_enter_is_refused_at_submit(
        secured: Site, accounts: Accounts, tmp_path: Path) -> None:
    assert os.stat("/root").st_mode & 0o001 == 0, "this test expects /root closed to other users"
    for directory in ("/root", str(tmp_path)):
        response = secured.submit("alice", current_working_directory=directory)
        assert response.status_code == 422, response.text
        reason = f"{directory} is not a directory that {accounts.alice} may enter"
        assert response.json()["error"]["fields"] == [{"field": "job.current_working_directory", "reason": reason}]
    assert secured.client.get("/api/jobs", headers=secured.auth("admin")).json()["jobs"] == []
    assert secured.submit("bob", current_working_directory=str(tmp_path)).status_code == 422
    assert secured.submit("admin", current_working_directory=str(tmp_path), run_as="root").status_code == 200


@needs_root
def test_only_an_admin_job_may_run_as_root(secured: Site, accounts: Accounts, tmp_path: Path) -> None:
    as_root = secured.run("admin", current_working_directory=str(tmp_path), run_as="root")
    assert (as_root.state, _lines(secured, "admin", as_root)[0]) == (jobs.JobState.COMPLETED, "0"), as_root.reason
    own = secured.run("admin", current_working_directory=str(accounts.home(accounts.bob)))
    assert _lines(secured, "admin", own)[0] == str(pwd.getpwnam(accounts.bob).pw_uid)  # its mapped account
    refused = secured.submit("alice", current_working_directory="/tmp", run_as="root")
    assert refused.status_code == 403
    assert refused.json()["error"]["fields"] == [
        {"field": "job.run_as", "reason": "only an admin may choose the Unix account a job runs as"}]


@needs_root
def test_a_user_without_an_account_on_the_node_fails_naming_node_and_user(site: Callable[..., Site]) -> None:
    ghost = f"cdt-ghost-{uuid.uuid4().hex[:6]}"
    secured = site("token", lambda store: {"ghost": store.create(ghost)})  # the store alone does not check
    job = secured.run("ghost", current_working_directory="/tmp")
    assert (job.state, job.reason, job.reason_message) == (
        jobs.JobState.FAILED, jobs.Reason.LAUNCH_FAILED, f"user {ghost} has no Unix account on node testnode")


def test_with_auth_none_jobs_run_as_the_services_user(site: Callable[..., Site], tmp_path: Path) -> None:
    trusted = site("none")
    job = trusted.run("anyone", "#!/bin/bash\nid -u\n", current_working_directory=str(tmp_path))
    assert (job.state, job.spec.run_as) == (jobs.JobState.COMPLETED, "")
    assert trusted.client.get(f"/api/jobs/{job.id}/output").text == f"{os.geteuid()}\n"
    refused = trusted.submit("anyone", current_working_directory=str(tmp_path), run_as="root")
    assert refused.status_code == 403
    assert refused.json()["error"]["fields"][0]["field"] == "job.run_as"
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert job_identity_mode(Settings(state_dir=tmp_path)) == f"{me}, the service's own user (AUTH=none)"


@needs_root
def test_the_banner_says_jobs_run_as_their_submitters(tmp_path: Path) -> None:
    assert job_identity_mode(Settings(state_dir=tmp_path, auth="token")) == (
        "each submitter's Unix account (AUTH=token, service is root)")


@needs_root
def test_token_create_needs_a_unix_account_or_a_mapping(accounts: Accounts, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(CONDUCTOR_STATE_DIR=str(tmp_path))

    def create(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CONDUCTOR, "token", "create", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    stranger = f"cdt-nobody-{uuid.uuid4().hex[:6]}"
    refused = create("--user", stranger)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == (f"conductor: error: {stranger!r} has no Unix account on this node; "
                                      "map it to one with --unix-user")
    mapped = create("--user", stranger, "--unix-user", accounts.alice)
    assert mapped.returncode == 0, mapped.stderr
    to_root = create("--user", "portal", "--unix-user", "root")
    assert to_root.returncode == 1 and "only an admin (--admin) may" in to_root.stderr
    service = JobService.from_settings(Settings(state_dir=tmp_path))
    try:
        with service.repository.engine.connect() as connection:
            rows = connection.execute(select(UserRow.name, UserRow.unix_user)).all()
        assert rows == [(stranger, accounts.alice)]  # and nothing of the refused ones
        caller = TokenStore(service.repository.engine).authenticate(mapped.stdout.strip())
        assert caller is not None and caller.unix_user == accounts.alice
    finally:
        service.close()
