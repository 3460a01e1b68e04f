"""Slurm's commands over a real ``conductor up``: what tools pass, what they read back, the exit codes."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.acceptance.slurm_up import SlurmUp, start
from tests.helpers import wait_for

pytestmark = pytest.mark.slow  # one real `conductor up` for the module (about 40 s in all)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmUp]:
    yield from start(tmp_path_factory.mktemp("slurm-commands"))


def _submit(slurm: SlurmUp, *args: str, cwd: Path | None = None, input_text: str | None = None) -> int:
    result = slurm.run("sbatch", "--parsable", *args, cwd=cwd, input_text=input_text)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def _state(slurm: SlurmUp, job: str) -> str:
    result = slurm.run("sacct", "-j", job, "-X", "-n", "-P", "--format=State")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _ended(slurm: SlurmUp, job: str, timeout_s: float = 60) -> str:
    return wait_for(lambda: (lambda s: s if s and s not in ("PENDING", "RUNNING") else None)(_state(slurm, job)),
                    timeout_s, interval_s=0.3)


# -- sbatch -----------------------------------------------------------------------------------

def test_sbatch_prints_submitted_batch_job_and_the_job_sees_sbatchs_environment(slurm: SlurmUp,
                                                                               tmp_path: Path) -> None:
    script = tmp_path / "env.sh"
    script.write_text("#!/bin/bash\n#SBATCH -J envtest -c 2 --mem=100\n#SBATCH --ntasks-per-node=1\n"
                      "env | grep -E '^(SLURM|ENVIRONMENT)' | sort\n")
    result = slurm.run("sbatch", str(script), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    job = re.fullmatch(r"Submitted batch job (\d+)\n", result.stdout).group(1)  # submitit's and Parsl's regex
    assert _ended(slurm, job) == "COMPLETED"
    env = dict(line.split("=", 1) for line in (tmp_path / f"slurm-{job}.out").read_text().splitlines())
    expected = {"SLURM_JOB_ID": job, "SLURM_JOBID": job, "SLURM_JOB_NAME": "envtest", "SLURM_CPUS_PER_TASK": "2",
                "SLURM_CPUS_ON_NODE": "2", "SLURM_MEM_PER_NODE": "100", "SLURM_NTASKS": "1",
                "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NODELIST": "vm", "SLURM_NODELIST": "vm",
                "SLURM_JOB_NUM_NODES": "1", "SLURM_SUBMIT_DIR": str(tmp_path), "SLURM_PROCID": "0",
                "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURMD_NODENAME": "vm", "SLURM_CLUSTER_NAME": "conductor",
                "SLURM_JOB_PARTITION": "default", "ENVIRONMENT": "BATCH", "SLURM_TASKS_PER_NODE": "1"}
    assert {key: env.get(key) for key in expected} == expected
    assert int(env["SLURM_TASK_PID"]) > 1 and env["SLURM_SUBMIT_HOST"]
    for absent in ("SLURM_MEM_PER_CPU", "SLURM_ARRAY_JOB_ID", "SLURM_RESTART_COUNT", "SLURM_EXPORT_ENV"):
        assert absent not in env


def test_sbatch_wrap_stdin_and_wait(slurm: SlurmUp, tmp_path: Path) -> None:
    wrapped = _submit(slurm, "--wrap", "echo wrapped", cwd=tmp_path)
    stdin = _submit(slurm, "-J", "fromstdin", cwd=tmp_path, input_text="#!/bin/sh\necho from stdin\n")
    for job in (wrapped, stdin):
        assert _ended(slurm, str(job)) == "COMPLETED"
    assert (tmp_path / f"slurm-{wrapped}.out").read_text() == "wrapped\n"
    assert (tmp_path / f"slurm-{stdin}.out").read_text() == "from stdin\n"
    waited = slurm.run("sbatch", "-W", "--wrap", "exit 3", cwd=tmp_path)
    assert waited.returncode == 3 and waited.stdout.startswith("Submitted batch job ")


def test_sbatch_refusals_are_sbatchs(slurm: SlurmUp, tmp_path: Path) -> None:
    (tmp_path / "plain.sh").write_text("echo no interpreter\n")
    no_shebang = slurm.run("sbatch", "plain.sh", cwd=tmp_path)
    assert no_shebang.returncode == 1
    assert no_shebang.stderr.startswith("sbatch: error: This does not look like a batch script.")
    bogus = slurm.run("sbatch", "--bogus", "--wrap", "true", cwd=tmp_path)
    assert (bogus.returncode, bogus.stderr.splitlines()[0]) == (255, "sbatch: unrecognized option '--bogus'")
    (tmp_path / "bad.sh").write_text("#!/bin/bash\n#SBATCH -J ok\n#SBATCH --time=soon\ntrue\n")
    bad_line = slurm.run("sbatch", "bad.sh", cwd=tmp_path)
    assert bad_line.returncode == 255 and "bad.sh:3: #SBATCH --time=soon:" in bad_line.stderr
    missing = slurm.run("sbatch", "nothere.sh", cwd=tmp_path)
    assert missing.returncode == 1 and "sbatch: error: Unable to open file nothere.sh" in missing.stderr


def test_options_conductor_cannot_honour_are_accepted_with_one_warning(slurm: SlurmUp, tmp_path: Path) -> None:
    result = slurm.run("sbatch", "--qos=high", "--mail-type=END", "--mail-user=a@b", "-C", "skylake",
                       "--comment", "rule all", "--wrap", "true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["sbatch: warning: --qos, --mail-type, --mail-user, --constraint: "
                                          "accepted but not honoured by conductor (the job runs without them)"]
    job = result.stdout.split()[-1]
    shown = slurm.run("squeue", "-h", "-t", "all", "-j", job, "-o", "%i|%k")
    assert shown.stdout.strip() == f"{job}|rule all"


# -- squeue -----------------------------------------------------------------------------------

def test_squeue_formats_filters_and_unknown_ids(slurm: SlurmUp, tmp_path: Path) -> None:
    held = _submit(slurm, "-H", "-J", "heldjob", "-t", "10", "--wrap", "true", cwd=tmp_path)
    default = slurm.run("squeue").stdout.splitlines()
    assert default[0].split() == ["JOBID", "PARTITION", "NAME", "USER", "ST", "TIME", "NODES", "NODELIST(REASON)"]
    assert f"{held:>18}   default  heldjob" in "\n".join(default) and "(JobHeldUser)" in default[-1]
    assert slurm.run("squeue", "-h", "-j", str(held), "-o", "%i %t %l %j").stdout == f"{held} PD 10:00 heldjob\n"
    assert slurm.run("squeue", "--noheader", "--format=%i|%T", "--states=all", "--name", "heldjob").stdout == \
        f"{held}|PENDING\n"
    long = slurm.run("squeue", "-h", "-j", str(held), "-O", "JobID:10,State:.10,Name").stdout
    assert long == f"{held:<10}   PENDINGheldjob             \n"
    assert slurm.run("squeue", "-h", "-u", "nobody-here").stdout == ""
    unknown = slurm.run("squeue", "-j", "999999")
    assert (unknown.returncode, unknown.stderr) == (1, "slurm_load_jobs error: Invalid job id specified\n")
    bad = slurm.run("squeue", "-t", "FOO")
    assert bad.returncode == 1 and bad.stderr.startswith("squeue: error: Invalid job state specified: FOO")
    slurm.run("scancel", str(held))


def test_squeue_json_lists_the_jobs(slurm: SlurmUp, tmp_path: Path) -> None:
    import json

    held = _submit(slurm, "-H", "--wrap", "true", cwd=tmp_path)
    jobs = json.loads(slurm.run("squeue", "--json").stdout)["jobs"]
    assert held in [job["job_id"] for job in jobs]
    slurm.run("scancel", str(held))


# -- sacct ------------------------------------------------------------------------------------

def test_sacct_rows_of_jobs_steps_and_array_tasks(slurm: SlurmUp, tmp_path: Path) -> None:
    array = _submit(slurm, "--array=0-2", "--wrap", "exit $SLURM_ARRAY_TASK_ID", cwd=tmp_path)
    wait_for(lambda: all(s not in ("PENDING", "RUNNING") for s in _state(slurm, str(array)).split()), 60,
             interval_s=0.3)
    rows = slurm.run("sacct", "-j", str(array), "-X", "-P", "--format=JobID,JobName,State,ExitCode,NodeList")
    assert rows.stdout.splitlines() == ["JobID|JobName|State|ExitCode|NodeList",
                                        f"{array}_0|wrap|COMPLETED|0:0|vm", f"{array}_1|wrap|FAILED|1:0|vm",
                                        f"{array}_2|wrap|FAILED|2:0|vm"]
    one = slurm.run("sacct", "-j", f"{array}_1", "-n", "-p", "-o", "JobID,State")
    assert one.stdout.splitlines() == [f"{array}_1|FAILED|", f"{array}_1.batch|FAILED|"]
    # submitit's call: header and rows with '|', steps after each job
    submitit = slurm.run("sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", str(array))
    assert submitit.stdout.splitlines()[:3] == ["JobID|State|NodeList", f"{array}_0|COMPLETED|vm",
                                                f"{array}_0.batch|COMPLETED|vm"]
    fixed = slurm.run("sacct", "-j", f"{array}_2", "-X").stdout.splitlines()
    assert fixed[0].split() == ["JobID", "JobName", "Partition", "Account", "AllocCPUS", "State", "ExitCode"]
    assert set(fixed[1]) <= {"-", " "} and fixed[2].split() == [f"{array}_2", "wrap", "default", "1", "FAILED",
                                                                 "2:0"]
    parsl = slurm.run("sacct", "-X", "--noheader", "--format=jobid,state%20", "--job", f"{array}_0")
    assert parsl.stdout.split() == [f"{array}_0", "COMPLETED"]
    step = slurm.run("sacct", "-n", "-P", "-o", "JobID,State", "-j", f"{array}_1.batch,{array}_2.0")
    assert step.stdout.splitlines() == [f"{array}_1.batch|FAILED"]  # no step 0: nothing ran under srun


def test_sacct_snakemake_query_by_name_and_window(slurm: SlurmUp, tmp_path: Path) -> None:
    job = _submit(slurm, "--job-name", "run-uuid-1", "--wrap", "true", cwd=tmp_path)
    _ended(slurm, str(job))
    start = time.strftime("%Y-%m-%dT%H:00", time.localtime(time.time() - 2 * 86400))
    result = slurm.run("sacct", "-X", "--parsable2", "--clusters", "all", "--noheader", "--format=JobIdRaw,State",
                       "--starttime", start, "--endtime", "now", "--name", "run-uuid-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{job}|COMPLETED\n"
    bad = slurm.run("sacct", "--format=JobID,Bogus")
    assert bad.returncode == 1 and 'Invalid field requested: "Bogus"' in bad.stderr


# -- scancel ----------------------------------------------------------------------------------

def test_scancel_ids_tasks_filters_and_its_exit_codes(slurm: SlurmUp, tmp_path: Path) -> None:
    array = _submit(slurm, "-H", "--array=1-3", "--wrap", "true", cwd=tmp_path)
    assert slurm.run("scancel", f"{array}_2").returncode == 0
    assert slurm.run("squeue", "-h", "-j", str(array), "-o", "%i").stdout.split() == [f"{array}_1", f"{array}_3"]
    assert slurm.run("scancel", "-n", "wrap", "-t", "PENDING").returncode == 0
    assert slurm.run("squeue", "-h", "-j", str(array), "-o", "%i").stdout == ""
    assert slurm.run("scancel", "999999").returncode == 0  # a plain unknown id is ignored
    signalled = slurm.run("scancel", "-s", "USR1", "999999")
    assert (signalled.returncode, signalled.stderr) == (
        1, "scancel: error: Kill job error on job id 999999: Invalid job id specified\n")
    assert slurm.run("scancel").stderr == "scancel: error: No job identification provided\n"
    assert slurm.run("scancel", "abc").stderr == "scancel: error: Invalid job id abc\n"


def test_scancel_of_a_running_job_cancels_it(slurm: SlurmUp, tmp_path: Path) -> None:
    job = _submit(slurm, "--wrap", "sleep 60", cwd=tmp_path)
    wait_for(lambda: _state(slurm, str(job)) == "RUNNING", 60, interval_s=0.3)
    assert slurm.run("scancel", str(job)).returncode == 0
    assert _ended(slurm, str(job), 30) == "CANCELLED"


# -- scontrol ---------------------------------------------------------------------------------

def test_scontrol_show_hold_release_update(slurm: SlurmUp, tmp_path: Path) -> None:
    job = str(_submit(slurm, "-H", "-t", "30", "-J", "shown", "--comment", "note", "--wrap", "true", cwd=tmp_path))
    record = slurm.run("scontrol", "show", "job", job).stdout
    assert record.startswith(f"JobId={job} JobName=shown\n   UserId=")
    for part in ("JobState=PENDING Reason=JobHeldUser", "Priority=0 ", "TimeLimit=00:30:00", "Comment=note",
                 "Command=(null)", f"StdOut={tmp_path}/slurm-{job}.out", "NumNodes=1 NumCPUs=1 NumTasks=1"):
        assert part in record, part
    one_line = slurm.run("scontrol", "show", "job", "-o", job).stdout
    assert one_line.count("\n") == 1 and one_line.startswith(f"JobId={job} JobName=shown UserId=")
    update = slurm.run("scontrol", "update", f"JobId={job}", "TimeLimit=10", "Nice=5")
    assert update.returncode == 0, update.stderr
    assert "TimeLimit=00:10:00" in slurm.run("scontrol", "show", "job", job).stdout
    unsupported = slurm.run("scontrol", "update", f"JobId={job}", "Foo=1")
    assert (unsupported.returncode, unsupported.stderr) == (
        1, "Update of this parameter is not supported: Foo=1\nRequest aborted\n")
    assert slurm.run("scontrol", "release", job).returncode == 0
    assert _ended(slurm, job) == "COMPLETED"
    assert slurm.run("scontrol", "hold", "999999").stderr == (
        "Invalid job id specified for job 999999\nslurm_suspend error: Invalid job id specified\n")
    assert slurm.run("scontrol", "show", "job", "999999").stderr == "slurm_load_jobs error: Invalid job id specified\n"
    assert slurm.run("scontrol", "bogus").stderr == "invalid keyword: bogus\n"


def test_scontrol_show_hostnames_node_partition_and_config(slurm: SlurmUp) -> None:
    assert slurm.run("scontrol", "show", "hostnames", "node[01-03],gpu[1,5-6]").stdout.split() == [
        "node01", "node02", "node03", "gpu1", "gpu5", "gpu6"]
    assert slurm.run("scontrol", "show", "hostlist", "a1,a2,a3").stdout == "a[1-3]\n"
    node = slurm.run("scontrol", "show", "node", "vm").stdout
    assert node.startswith("NodeName=vm ") and "CPUTot=8" in node and "Partitions=default" in node
    assert slurm.run("scontrol", "show", "node", "vmx").stderr == "Node vmx not found\n"
    assert slurm.run("scontrol", "show", "partition").stdout.startswith("PartitionName=default\n")
    assert "MinJobAge               = 300 sec" in slurm.run("scontrol", "show", "config").stdout


def test_sinfo(slurm: SlurmUp) -> None:
    default = slurm.run("sinfo").stdout.splitlines()
    assert default[0].split() == ["PARTITION", "AVAIL", "TIMELIMIT", "NODES", "STATE", "NODELIST"]
    assert default[1].split()[:4] == ["default*", "up", "infinite", "1"] and default[1].endswith(" vm")
    assert slurm.run("sinfo", "-h", "-o", "%P").stdout == "default*\n"
    assert slurm.run("sinfo", "-h", "-o", "%P|%a|%D|%N|%c|%m").stdout == "default*|up|1|vm|8|16384\n"
    assert slurm.run("sinfo", "-N", "-h").stdout.split()[:3] == ["vm", "1", "default*"]


# -- srun -------------------------------------------------------------------------------------

def test_srun_runs_the_step_tasks_inside_a_batch_job_and_refuses_outside(slurm: SlurmUp, tmp_path: Path) -> None:
    job = _submit(slurm, "--wrap", "srun -n 2 --output=step-%t.out sh -c 'echo task $SLURM_PROCID of $SLURM_NTASKS'",
                  cwd=tmp_path)
    assert _ended(slurm, str(job)) == "COMPLETED"
    assert [(tmp_path / f"step-{i}.out").read_text() for i in (0, 1)] == ["task 0 of 2\n", "task 1 of 2\n"]
    failing = _submit(slurm, "--wrap", "srun sh -c 'exit 4'", cwd=tmp_path)
    assert _ended(slurm, str(failing)) == "FAILED"
    assert slurm.run("sacct", "-j", str(failing), "-X", "-n", "-P", "-o", "ExitCode").stdout == "4:0\n"
    outside = slurm.run("srun", "hostname")
    assert outside.returncode == 1 and outside.stderr.startswith("srun: error: conductor's srun runs job steps")
