"""`ray up ray-cluster.yaml` on two real hosts (network namespaces with their own sshd), end to end.

The head starts alone (``min_workers: 0``); a job submitted to the worker's partition waits
(PartitionConfig), the scheduler passes its demand to Ray's autoscaler, which starts the worker
over ssh; the job runs there; the scheduler withdraws its request once nothing waits and retires
the worker's keeper once it has been idle for KEEPER_IDLE_TIMEOUT_S, so the autoscaler stops the
idle worker (its raylet; Ray's log monitor stays there until `ray stop`); `ray down` ends the head
(conductor up exits), and nothing is left running in either host.  docs/CLUSTER.md keeps these commands.
"""

from __future__ import annotations

import re
import time

import pytest
import redis
from sqlalchemy import create_engine, text

from tests.cluster import ray_up
from tests.cluster.hosts import Host, Hosts
from tests.conftest import REDIS_TEST_URL
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: How long the autoscaler waits before it stops an idle worker (Ray's default is 5 minutes).
IDLE_TIMEOUT_MINUTES = 0.1
#: How long the worker's keeper may have nothing to do before the scheduler retires it (Ray counts
#: a node holding any actor as busy, so until then the autoscaler cannot call the worker idle).
KEEPER_IDLE_TIMEOUT_S = 10


def ray_processes(host: Host) -> list[str]:
    """The command lines of what runs in ``host`` besides its sshd and ssh sessions."""
    found = []
    for pid in host.pids():
        try:
            cmdline = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()
        except OSError:
            continue
        if cmdline and not cmdline.startswith(("sshd", "/usr/sbin/sshd", "bash --login", "sh -c")) and pid != host.sshd_pid:
            found.append(f"{pid} {cmdline[:300]}")
    return found


def monitor_log(head: Host) -> str:
    """The head autoscaler's log (its status every few seconds, the nodes it starts and stops)."""
    logs = sorted((head.ray_tmpdir / "ray").glob("session_*/logs/monitor.log"))
    return logs[-1].read_text() if logs else ""


def ray_logs(head: Host) -> str:
    """Every log of the cluster's Ray session (the hosts share it: the worker's logs lie under the
    head's RAY_TMPDIR too), the scheduler actor's included."""
    found = []
    for path in sorted((head.ray_tmpdir / "ray").glob("session_*/logs/*")):
        if path.is_file() and path.suffix in (".out", ".err", ".log"):
            found.append(path.read_text(errors="replace"))
    return "\n".join(found)


def request_withdrawn(head: Host) -> bool:
    """Whether the head autoscaler's last status says that no request_resources() stands."""
    last = monitor_log(head).rsplit("From request_resources:", 1)
    return len(last) == 2 and last[1].lstrip().startswith("(none)")


def test_ray_up_starts_the_worker_on_demand_runs_the_job_there_and_ray_down_ends_it(
        hosts: Hosts, forwarded: dict[str, str]) -> None:
    head, worker = hosts.hosts
    namespace = f"clustertest-{hosts.tag}"
    ray_up.prepare_home(head, "batch")
    ray_up.prepare_home(worker, "w")
    (head.home / "conductor" / "app.properties").write_text("\n".join([
        f"DATABASE_URL={forwarded['database_from_hosts']}", f"REDIS_URL={forwarded['redis_from_hosts']}",
        f"RAY_NAMESPACE={namespace}", f"STATE_DIR={head.home}/conductor/state", "NODE_NAME=head",
        "PARTITION_BATCH=Label=batch Default=YES", "PARTITION_W=Label=w", "KILL_WAIT_S=2",
        f"KEEPER_IDLE_TIMEOUT_S={KEEPER_IDLE_TIMEOUT_S}", ""]))
    config = hosts.root / "cluster.yaml"
    ray_up.write_cluster_yaml(hosts, config, min_workers=0, idle_timeout_minutes=IDLE_TIMEOUT_MINUTES)
    engine = create_engine(forwarded["database"])
    try:
        token = ray_up.ray_cli(hosts, "get-auth-token", "--generate", timeout_s=60)
        assert token.returncode == 0, token.stderr
        started = time.monotonic()
        up = ray_up.ray_cli(hosts, "up", "-y", "--no-config-cache", str(config), timeout_s=300)
        (hosts.root / "ray-up.log").write_text(up.stdout + up.stderr)
        assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
        print(f"ray up: {time.monotonic() - started:.0f} s")

        # conductor up on the head (started by head_start_ray_commands) answers; only the head is up.
        wait_for(lambda: hosts.ssh(head, "cd ~/conductor && conductor partitions").returncode == 0, 120,
                 interval_s=1, message="conductor up on the head")
        assert ray_processes(worker) == [], "min_workers: 0, yet the worker runs Ray before any demand"

        # A job for the worker's partition: it waits until the autoscaler has started the worker.
        work = hosts.root / "work"
        work.mkdir()
        (work / "where.sh").write_text("#!/bin/bash\necho \"ran on $(hostname -I)\"\n")

        def run_on_worker() -> tuple[int, dict]:
            """Submit where.sh to the worker's partition; its id and its row once it ended there."""
            submitted = hosts.ssh(head, f"cd ~/conductor && conductor submit -p w -D {work} {work}/where.sh")
            assert submitted.returncode == 0, submitted.stderr
            job_id = int(re.findall(r"\d+", submitted.stdout)[-1])
            asked = time.monotonic()

            def job_row() -> dict | None:
                with engine.connect() as connection:
                    row = connection.execute(text("SELECT state, node_name, reason FROM jobs WHERE id = :id"),
                                             {"id": job_id}).mappings().first()
                return dict(row) if row and row["state"] not in ("PENDING", "RUNNING") else None

            ended = wait_for(job_row, 240, interval_s=1, message=f"job {job_id} to end on the worker")
            print(f"worker started and job {job_id} ran: {time.monotonic() - asked:.0f} s after submit")
            assert ended["state"] == "COMPLETED", ended
            output = (work / f"slurm-{job_id}.out").read_text()
            assert worker.address in output.split() and head.address not in output.split(), output
            return job_id, ended

        job_id, ended = run_on_worker()
        with engine.connect() as connection:
            allocated = connection.execute(text("SELECT node_name, released FROM resource_allocations "
                                                "WHERE job_id = :id"), {"id": job_id}).all()
            recorded = {row[0] for row in connection.execute(text("SELECT name FROM nodes"))}
        assert [tuple(row) for row in allocated] == [(ended["node_name"], True)] and ended["node_name"] != "head"
        assert ended["node_name"] in recorded  # the worker's Ray node, named by its address
        assert worker.address in ended["node_name"]

        # Idle: the scheduler withdraws its request (the autoscaler's status shows none left),
        # HOLD_S (30 s) after the job stopped waiting; until then it stands.
        assert not request_withdrawn(head), "the request was gone before the job had ended"
        idle_since = time.monotonic()
        wait_for(lambda: request_withdrawn(head), 90, interval_s=2, message="the autoscaler request to be withdrawn")
        print(f"request withdrawn: {time.monotonic() - idle_since:.0f} s after the job")

        # The scheduler retires the worker's keeper KEEPER_IDLE_TIMEOUT_S after the job; with the
        # request withdrawn too, the autoscaler (v1) finds the worker idle for idle_timeout_minutes
        # and drains it through the GCS (DrainNode): its raylet shuts down, and its agents and
        # workers with it.
        wait_for(lambda: not any("raylet" in line for line in ray_processes(worker)), 120, interval_s=1,
                 message="the autoscaler to stop the idle worker's raylet")
        print(f"worker's raylet stopped: {time.monotonic() - idle_since:.0f} s after the job")
        assert f"Terminating the node with id {worker.address} and ip {worker.address}. (idle)" in monitor_log(head)
        # Ray 2.60 leaves one process behind: the log monitor that `ray start` started beside the
        # raylet (python -u .../ray/_private/log_monitor.py), whose loop has no exit condition (it
        # neither watches the raylet nor stops when it cannot publish). It stays until `ray stop`
        # on the host, as docs/CLUSTER.md says.  Wait a little, in case anything else is stopping.
        time.sleep(5)
        left = ray_processes(worker)
        print(f"left on the worker: {left}")
        assert left and all("ray/_private/log_monitor.py" in line for line in left), left
        assert "retired conductor-keeper-" in ray_logs(head), "the worker stopped, yet its keeper was not retired?"

        # On demand again: a second job starts the worker once more (worker_start_ray_commands'
        # `ray stop` ends the log monitor left there first), and runs there.
        _, again = run_on_worker()
        assert worker.address in again["node_name"], again
        assert not set(left) & set(ray_processes(worker)), "the log monitor of the first start is still there"

        down = ray_up.ray_cli(hosts, "down", "-y", str(config), timeout_s=120)
        (hosts.root / "ray-down.log").write_text(down.stdout + down.stderr)
        assert down.returncode == 0, (down.stdout + down.stderr)[-3000:]
        # conductor up notices its Ray is gone and exits; the head is empty.
        wait_for(lambda: not ray_processes(head), 90, interval_s=1, message="the head to be empty after ray down")
        # `ray down` stops Ray on the head only (the local provider's "terminate" of a worker only
        # marks it so): the worker's Ray, busy a moment ago, stays until `ray stop` there.
        assert ray_processes(worker), "the worker's Ray was stopped by ray down after all: update docs/CLUSTER.md"
        stopped = hosts.ssh(worker, "ray stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        wait_for(lambda: not ray_processes(worker), 30, interval_s=0.5, message="the worker to be empty after ray stop")
    finally:
        engine.dispose()
        client = redis.Redis.from_url(REDIS_TEST_URL)
        for key in client.scan_iter(f"conductor:{namespace}*"):
            client.delete(key)
