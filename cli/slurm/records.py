"""scontrol's records: ``Key=Value`` pairs in lines, a job's, a node's and a partition's, as 22.05 prints
them, and the few ``show config`` lines tools read.  Pure but for the API reads of nodes and partitions."""

from __future__ import annotations

from datetime import datetime

from cli import render
from cli.slurm import common, fmt
from conductor import hostlist, units

Record = list[list[tuple[str, str]]]


def record(fields: Record, *, one_line: bool = False) -> str:
    """The first line, then each line indented three spaces (``-o``: all on one line), and a blank line."""
    lines = [" ".join(f"{key}={value}" for key, value in line) for line in fields if line]
    return " ".join(lines) if one_line else "\n   ".join(lines) + "\n"


def _limit(seconds: int | None) -> str:
    return "UNLIMITED" if seconds is None else units.format_duration_s(seconds)


def _id_fields(job: dict) -> list[tuple[str, str]]:
    fields = [("JobId", str(job["job_id"]))]
    if job.get("array_job_id") is not None:
        fields += [("ArrayJobId", str(job["array_job_id"])), ("ArrayTaskId", str(job["array_task_id"]))]
    return [*fields, ("JobName", job["name"])]


def _user(job: dict) -> str:
    return f"{job['user']}({fmt._uid(job['user'])})"


def _tres(job: dict) -> str:
    parts = [f"cpu={job['cpus']}", f"mem={fmt.min_memory(job)}", f"node={job.get('nodes', 1)}"]
    if job.get("gpus_per_node"):
        parts.append(f"gres/gpu={job['gpus_per_node'] * job.get('nodes', 1)}")
    return ",".join(parts + [f"billing={job['cpus']}"])


def job_fields(job: dict, at: datetime, *, details: bool = False) -> Record:
    """``scontrol show job``'s record of one job."""
    submit = fmt.slurm_time(job["submit_time"], "Unknown")
    start = fmt.slurm_time(job.get("start_time"), "Unknown")
    nodes = fmt.node_list(job) or "(null)"
    lines: Record = [
        _id_fields(job),
        [("UserId", _user(job)), ("GroupId", _user(job)), ("MCS_label", "N/A")],
        [("Priority", str(fmt.priority(job))), ("Nice", str(job["nice"])), ("Account", job["account"] or "(null)"),
         ("QOS", "normal")],
        [("JobState", job["state"]), ("Reason", job["reason"]), ("Dependency", render.dependency(job))],
        [("Requeue", "1" if job["requeue"] else "0"), ("Restarts", str(job["restart_count"])), ("BatchFlag", "1"),
         ("Reboot", "0"), ("ExitCode", job["exit_code"])],
        [("RunTime", render.sacct_elapsed(render.elapsed_s(job, at))), ("TimeLimit", _limit(job.get("time_limit_s"))),
         ("TimeMin", "N/A")],
        [("SubmitTime", submit), ("EligibleTime", fmt.slurm_time(job.get("begin_time"), submit))],
        [("AccrueTime", submit)],
        [("StartTime", start), ("EndTime", fmt.end_time(job, "Unknown")), ("Deadline", "N/A")],
        [("SuspendTime", "None"), ("SecsPreSuspend", "0"), ("LastSchedEval", start if job.get("start_time") else submit),
         ("Scheduler", "Main")],
        [("Partition", job["partition"]), ("AllocNode:Sid", f"{job.get('submit_host') or 'localhost'}:0")],
        [("ReqNodeList", "(null)"), ("ExcNodeList", "(null)")],
        [("NodeList", nodes)],
        [("BatchHost", job.get("node") or "(null)")],
        [("NumNodes", str(job.get("nodes", 1))), ("NumCPUs", str(job["cpus"])), ("NumTasks", str(job.get("ntasks", 1))),
         ("CPUs/Task", str(job["cpus_per_task"])), ("ReqB:S:C:T", "0:0:*:*")],
        [("TRES", _tres(job))],
        [("Socks/Node", "*"), ("NtasksPerN:B:S:C", f"{job['ntasks_per_node']}:0:*:*"), ("CoreSpec", "*")],
    ]
    if details:
        lines += [[("JOB_GRES", f"gpu:{job['gpus_per_node']}" if job.get("gpus_per_node") else "(null)")],
                  [("  Nodes", nodes), ("CPU_IDs", f"0-{job['cpus_per_task'] * job['ntasks_per_node'] - 1}"),
                   ("Mem", str(job["memory_per_node_mb"])), ("GRES", "")]]
    lines += [
        [("MinCPUsNode", str(job["cpus_per_task"] * job["ntasks_per_node"])),
         ("MinMemoryNode", fmt.min_memory(job)), ("MinTmpDiskNode", "0")],
        [("Features", "(null)"), ("DelayBoot", "00:00:00")],
        [("OverSubscribe", "NO" if job.get("exclusive") else "OK"), ("Contiguous", "0"), ("Licenses", "(null)"),
         ("Network", "(null)")],
        [("Command", job.get("command") or "(null)")],
        [("WorkDir", job["working_directory"])],
        [("Comment", job["comment"])] if job.get("comment") else [],
        [("StdErr", job["stderr_path"])],
        [("StdIn", "/dev/null")],
        [("StdOut", job["stdout_path"])],
        [("Power", "")],
    ]
    return lines


def _node_state(node: dict) -> str:
    cpus = node["cpus"]
    if node["state"] != "up":
        return "DOWN"
    if cpus["allocated"] == 0:
        return "IDLE"
    return "ALLOCATED" if cpus["free"] == 0 else "MIXED"


def node_state(node: dict) -> str:
    """sinfo's compact state of a node: idle, mix, alloc or down."""
    return {"IDLE": "idle", "MIXED": "mix", "ALLOCATED": "alloc", "DOWN": "down"}[_node_state(node)]


def node_partitions(api) -> dict[str, list[str]]:  # noqa: ANN001 - an ApiClient
    """Node name -> the partitions that cover it."""
    covering: dict[str, list[str]] = {}
    for partition in api.partitions():
        for name in partition["nodes"]:
            covering.setdefault(name, []).append(partition["name"])
    return covering


def node_records(api) -> list[Record]:  # noqa: ANN001
    partitions = node_partitions(api)
    found = []
    for node in api.nodes():
        cpus, memory = node["cpus"], node["memory_mb"]
        found.append([
            [("NodeName", node["name"]), ("Arch", "x86_64"), ("CoresPerSocket", "1")],
            [("CPUAlloc", str(cpus["allocated"])), ("CPUTot", str(cpus["total"])), ("CPULoad", "N/A")],
            [("AvailableFeatures", "(null)")], [("ActiveFeatures", "(null)")],
            [("Gres", f"gpu:{node['gpus']}" if node["gpus"] else "(null)")],
            [("NodeAddr", node["name"]), ("NodeHostName", node["name"])],
            [("RealMemory", str(memory["total"])), ("AllocMem", str(memory["allocated"])), ("FreeMem", "N/A"),
             ("Sockets", str(cpus["total"])), ("Boards", "1")],
            [("State", _node_state(node)), ("ThreadsPerCore", "1"), ("TmpDisk", "0"), ("Weight", "1"),
             ("Owner", "N/A"), ("MCS_label", "N/A")],
            [("Partitions", ",".join(partitions.get(node["name"], [])) or "(null)")],
            [("CfgTRES", f"cpu={cpus['total']},mem={units.format_memory_mb(memory['total'])},billing={cpus['total']}"
              + (f",gres/gpu={node['gpus']}" if node["gpus"] else ""))],
            [("AllocTRES", f"cpu={cpus['allocated']},mem={units.format_memory_mb(memory['allocated'])}"
              if cpus["allocated"] else "")],
        ])
    return found


def partition_records(api) -> list[Record]:  # noqa: ANN001
    found = []
    for partition in api.partitions():
        cpus, memory = partition["cpus"], partition["memory_mb"]
        found.append([
            [("PartitionName", partition["name"])],
            [("AllowGroups", "ALL"), ("AllowAccounts", "ALL"), ("AllowQos", "ALL")],
            [("AllocNodes", "ALL"), ("Default", "YES" if partition.get("default") else "NO"), ("QoS", "N/A")],
            [("DefaultTime", _limit(partition.get("default_time_s")) if partition.get("default_time_s") else "NONE"),
             ("DisableRootJobs", "NO"), ("ExclusiveUser", "NO"), ("GraceTime", "0"), ("Hidden", "NO")],
            [("MaxNodes", str(partition.get("max_nodes") or "UNLIMITED")), ("MaxTime", _limit(partition.get("max_time_s"))),
             ("MinNodes", "0"), ("LLN", "NO"), ("MaxCPUsPerNode", "UNLIMITED")],
            [("Nodes", hostlist.compress(partition["nodes"]) or "(null)")],
            [("PriorityJobFactor", str(partition.get("priority_job_factor", 1))), ("PriorityTier", "1"),
             ("RootOnly", "NO"), ("ReqResv", "NO"), ("OverSubscribe", "NO")],
            [("OverTimeLimit", "NONE"), ("PreemptMode", "OFF")],
            [("State", partition["state"].upper()), ("TotalCPUs", str(cpus["total"])),
             ("TotalNodes", str(len(partition["nodes"]))), ("SelectTypeParameters", "NONE")],
            [("JobDefaults", "(null)")],
            [("DefMemPerNode", "UNLIMITED"), ("MaxMemPerNode", "UNLIMITED")],
            [("TRES", f"cpu={cpus['total']},mem={units.format_memory_mb(memory['total'])},"
                      f"node={len(partition['nodes'])},billing={cpus['total']}")],
        ])
    return found


def config_text() -> str:
    """The ``show config`` lines tools read (Snakemake's executor reads MinJobAge)."""
    from conductor.config import load_settings

    settings = load_settings()
    values = [("ClusterName", settings.cluster_name), ("FirstJobId", str(settings.first_job_id)),
              ("JobFileAppend", "0"), ("KillWait", f"{int(settings.kill_wait_s)} sec"), ("MaxArraySize", "1001"),
              ("MinJobAge", f"{common.MIN_JOB_AGE_S} sec"), ("SchedulerType", "sched/backfill"),
              ("SelectType", "select/cons_tres"), ("SLURM_VERSION", "22.05.8")]
    stamp = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    return f"Configuration data as of {stamp}\n" + "\n".join(f"{key:<24}= {value}" for key, value in values)
