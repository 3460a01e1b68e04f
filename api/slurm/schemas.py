"""Slurm's REST shapes as conductor serves them under ``/slurm/v0.0.*/``: meta, errors, job_info, responses.

Taken from SchedMD/slurm ``src/plugins/data_parser/v0.0.42/parsers.c`` (JOB_INFO,
PROCESS_EXIT_CODE_VERBOSE, OPENAPI_META, OPENAPI_ERROR, OPENAPI_WARNING, JOB_DESC_MSG); what
other versions do differently is ``api.slurm.versions``' data, applied here.  Plain dicts: they
are written to JSON as they are.  Pure: the request's parts that ``meta`` shows, and the job's
priority, are passed in by ``api.slurm.routes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from api.slurm import versions
from api.slurm.error_numbers import SLURM_SUCCESS, strerror
from api.slurm.versions import Version
from conductor import jobs
from conductor.signals import signal_name

CLUSTER_NAME = "conductor"
#: A batch job's standard input, as Slurm reports it.
STANDARD_INPUT = "/dev/null"
#: slurmctld keeps an ended job listed for MinJobAge (default 300 s); GET /jobs/ does the same.
MIN_JOB_AGE_S = 300

#: Every field of Slurm's job_desc_msg (v0.0.42 parsers.c JOB_DESC_MSG, plus a few v0.0.40/41
#: names and v0.0.44's step_id).  ``api.slurm.translate`` maps the ones conductor implements and warns about the rest.
SLURM_JOB_DESC_FIELDS = frozenset("""
    account account_gather_frequency admin_comment allocation_node_list allocation_node_port argv array
    batch_features begin_time flags burst_buffer clusters cluster_constraint comment contiguous container
    container_id core_specification thread_specification cpu_binding cpu_binding_flags cpu_frequency
    cpus_per_tres crontab deadline delay_boot dependency end_time environment rlimits excluded_nodes extra
    constraints group_id hetjob_group immediate job_id kill_on_node_fail licenses mail_type mail_user
    mcs_label memory_binding memory_binding_type memory_per_tres name network nice tasks open_mode
    reserve_ports overcommit partition distribution_plane_size power_flags prefer hold priority profile qos
    reboot required_nodes requeue reservation script shared site_factor spank_environment distribution
    time_limit time_minimum tres_bind tres_freq tres_per_job tres_per_node tres_per_socket tres_per_task
    user_id wait_all_nodes kill_warning_flags kill_warning_signal kill_warning_delay
    current_working_directory cpus_per_task minimum_cpus maximum_cpus nodes minimum_nodes maximum_nodes
    minimum_boards_per_node minimum_sockets_per_board sockets_per_node threads_per_core tasks_per_node
    tasks_per_socket tasks_per_core tasks_per_board ntasks_per_tres minimum_cpus_per_node memory_per_cpu
    memory_per_node temporary_disk_per_node selinux_context required_switches segment_size standard_error
    standard_input standard_output wait_for_switch wckey x11 x11_magic_cookie x11_target_host
    x11_target_port exclusive oversubscribe kill_on_invalid_dependency oom_kill_step resv_mpi_ports step_id
""".split())


class SlurmError(Exception):
    """A refusal in Slurm's error shape: HTTP status, Slurm's error number, description, source."""

    def __init__(self, status: int, error_number: int, description: str, source: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error_number = error_number
        self.description = description
        self.source = source
        self.headers = dict(headers) if headers else None


def source_path(path: str) -> str:
    """A dotted field path (``job.environment.0``) as Slurm's source (``#/job/environment/0``)."""
    return "#/" + path.replace(".", "/")


@dataclass
class Warnings:
    """Slurm's ``warnings``: what was accepted but ignored or read differently, each naming its field."""

    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, path: str, description: str) -> None:
        self.items.append({"description": description, "source": source_path(path)})


def no_val(number: int | None = None, *, infinite: bool = False) -> dict[str, Any]:
    """Slurm's ``{set, infinite, number}`` struct; None is "not set"."""
    return {"set": number is not None or infinite, "infinite": infinite, "number": 0 if number is None else number}


def timestamp(moment: datetime | None) -> dict[str, Any]:
    """A moment as Slurm's Unix-time number struct; None is "not set"."""
    return no_val(None if moment is None else int(moment.timestamp()))


def meta(version: Version, *, client: str, user: str) -> dict[str, Any]:
    """Slurm's openapi_meta; ``client`` is ``[host]:port`` (or ""), ``user`` the X-SLURM-USER-NAME given."""
    major, minor, micro = version.release_parts
    plugin = {"type": "openapi/slurmctld", "name": "Slurm OpenAPI slurmctld",
              "data_parser": f"data_parser/{version.name}", "accounting_storage": ""}
    if not version.structured:  # v0.0.39: "Slurm", its version parts numbers
        return {"plugin": plugin, "Slurm": {"version": {"major": int(major), "micro": int(micro), "minor": int(minor)},
                                            "release": version.release}}
    return {
        "plugin": plugin,
        "client": {"source": client, "user": user, "group": ""},
        "command": [],
        "slurm": {"version": {"major": major, "micro": micro, "minor": minor}, "release": version.release,
                  "cluster": CLUSTER_NAME},
    }


def error_content(meta_content: dict[str, Any], error: SlurmError, warnings: Warnings | None = None) -> dict[str, Any]:
    """Slurm's error body: ``{"errors": [{description, error_number, error, source}], "warnings", "meta"}``."""
    return {
        "errors": [{"description": error.description, "error_number": error.error_number,
                    "error": strerror(error.error_number), "source": error.source}],
        "warnings": warnings.items if warnings else [],
        "meta": meta_content,
    }


#: The submit response's step_id: the batch step (SLURM_BATCH_SCRIPT, as Slurm's STEP_ID dumper writes it).
BATCH_STEP = "batch"


def submit_response(version: Version, job_id: int) -> dict[str, Any]:
    """openapi_job_submit_response without meta, errors and warnings (v0.0.40/41 add ``result``)."""
    content: dict[str, Any] = {"job_id": job_id, "step_id": BATCH_STEP, "job_submit_user_msg": ""}
    if version.submit_result:
        content["result"] = {"job_id": job_id, "step_id": BATCH_STEP, "error_code": SLURM_SUCCESS,
                             "error": strerror(SLURM_SUCCESS), "job_submit_user_msg": ""}
    return content


def jobs_response(version: Version, infos: list[dict[str, Any]], now_s: int) -> dict[str, Any]:
    """openapi_job_info_resp without meta, errors and warnings (v0.0.39: only ``jobs``)."""
    if not version.structured:
        return {"jobs": infos}
    return {"jobs": infos, "last_backfill": no_val(now_s), "last_update": no_val(now_s)}


def kill_status(job: jobs.Job, error_number: int) -> dict[str, Any]:
    """One job of DELETE /job's ``status`` (KILL_JOBS_RESP_JOB)."""
    return {"error": {"string": strerror(error_number), "code": error_number, "message": ""},
            "step_id": job.display_id, "job_id": no_val(job.id), "federation": {"sibling": ""}}


def controller_ping(version: Version, hostname: str, up: bool, latency_us: int) -> dict[str, Any]:
    """One entry of GET /ping's ``pings`` (CONTROLLER_PING); conductor's controller is its database and queue."""
    ping: dict[str, Any] = {"hostname": hostname, "pinged": "UP" if up else "DOWN", "latency": latency_us,
                            "mode": "primary"}
    if version.structured:
        ping.update(responding=up, primary=True)
    return ping


def _exit_code(job: jobs.Job) -> dict[str, Any]:
    """Slurm's process_exit_code_verbose."""
    if not job.state.is_terminal():
        return {"status": ["PENDING"], "return_code": no_val(), "signal": {"id": no_val(), "name": ""}}
    if job.signal:
        return {"status": ["SIGNALED"], "return_code": no_val(job.exit_code or 0),
                "signal": {"id": no_val(job.signal), "name": signal_name(job.signal)}}
    code = job.exit_code or 0
    return {"status": ["SUCCESS" if code == 0 else "ERROR"], "return_code": no_val(code),
            "signal": {"id": no_val(), "name": ""}}


def _plain_exit_code(job: jobs.Job) -> int:
    """v0.0.39's exit code, one number: the return code, or 128 + the signal that ended the job."""
    if not job.state.is_terminal():
        return 0
    return 128 + job.signal if job.signal else (job.exit_code or 0)


#: job_info's times, which v0.0.39 writes as plain Unix numbers (0: not set).
_TIMES = ("submit_time", "eligible_time", "start_time", "end_time")


def job_info(job: jobs.Job, version: Version = versions.NEWEST, *, priority: int = 0,
             dependency_state: str | None = None) -> dict[str, Any]:
    """A conductor job as Slurm's job_info of ``version``.

    ``priority`` is the job's priority as Slurm reports it (0 while held: ``JobService.slurm_priorities``);
    ``dependency_state`` is what is left of its dependency, as Slurm shows it
    (``afterok:40_*(unfulfilled)``; "" once fulfilled).
    """
    spec = job.spec
    held = spec.hold is not None
    limit_min = None if spec.time_limit_s is None else math.ceil(spec.time_limit_s / 60)
    end_time = job.end_time
    if end_time is None and job.state is jobs.JobState.RUNNING and job.start_time and spec.time_limit_s:
        end_time = job.start_time + timedelta(seconds=spec.time_limit_s)  # Slurm: the expected end
    is_task = spec.array_job_id is not None and spec.array_task_id is not None
    reason = job.reason
    if held and job.state is jobs.JobState.PENDING and reason == jobs.Reason.NONE:
        # Slurm shows the hold at once; conductor records it at the scheduler's next pass.
        reason = jobs.Reason.HELD_ADMIN if spec.hold == "admin" else jobs.Reason.HELD_USER
    info: dict[str, Any] = {
        "job_id": job.id,
        "name": spec.name,
        "account": spec.account,
        "partition": spec.partition,
        "user_name": spec.user,
        "group_name": "",
        "cluster": CLUSTER_NAME,
        "job_state": [job.state.value],
        "state_reason": reason.value,
        "state_description": job.reason_message,
        "exit_code": _exit_code(job),
        "derived_exit_code": _exit_code(job),
        "batch_flag": True,
        "batch_host": job.node_name or "",
        "nodes": job.node_list or job.node_name or "",
        "node_count": no_val(spec.nodes),
        "cpus": no_val(spec.total.cpus),
        "tasks": no_val(spec.ntasks_per_node * spec.nodes),
        "tres_per_node": f"gres/gpu:{spec.gpus_per_node}" if spec.gpus_per_node else "",
        "cpus_per_task": no_val(spec.cpus_per_task),
        "tasks_per_node": no_val(spec.ntasks_per_node),
        "memory_per_node": no_val(spec.memory_per_node_mb),
        "memory_per_cpu": no_val(),
        "time_limit": no_val(limit_min) if limit_min is not None else no_val(infinite=True),
        "submit_time": timestamp(job.submit_time),
        "eligible_time": timestamp(spec.begin_time or job.submit_time),
        "start_time": timestamp(job.start_time),
        "end_time": timestamp(end_time),
        # Slurm's JOB_INFO_STD*: stderr goes to the output file unless given apart (the repository
        # expands it so), stdin is /dev/null for a batch job
        "standard_output": job.stdout_path,
        "standard_error": job.stderr_path or job.stdout_path,
        "standard_input": STANDARD_INPUT,
        "current_working_directory": spec.working_dir,
        "command": "",
        "priority": no_val(0 if held else priority),
        "nice": spec.nice,
        "hold": held,
        "requeue": spec.requeue,
        "restart_cnt": job.restart_count,
        "array_job_id": no_val(spec.array_job_id if is_task else 0),
        "array_task_id": no_val(spec.array_task_id) if is_task else no_val(),
        "array_max_tasks": no_val(spec.array_max_running or 0),
        "array_task_string": "",
        "dependency": dependency_state or "",
        "flags": [],
        "qos": "",
    }
    adds = version.job_info_adds
    if versions.EXPANDED_PATHS in adds:
        info.update(stdin_expanded=info["standard_input"], stdout_expanded=info["standard_output"],
                    stderr_expanded=info["standard_error"])
    if versions.LICENSES_ALLOCATED in adds:
        info["licenses_allocated"] = ""
    if versions.SEGMENT_SIZE in adds:
        info["segment_size"] = 0
    if versions.STEP_ID in adds:  # the job's own id; no step or SLUID of its own
        info["step_id"] = {"job_id": no_val(job.id), "step_het_component": no_val()}
    if versions.SUBMIT_LINE in adds:
        info["submit_line"] = ""  # Slurm records sbatch's command line; a REST submission has none
    if not version.structured:
        info["job_state"] = job.state.value
        info["exit_code"] = info["derived_exit_code"] = _plain_exit_code(job)
        for name in _TIMES:
            info[name] = info[name]["number"]
    return info
