"""Who a job's script runs as on its node, and how it is started as them.  Standard library only.

With ``run_as`` set (the service is root and AUTH=token), the script runs as that Unix account:
Popen drops the child to its uid, primary gid and every group (initgroups) before exec, so no
code of the job runs as root.  A small ``/bin/sh`` step (``OPEN_AS_USER``), already that user,
then enters the working directory and opens the output files before it execs the script: the
user's own rights decide what may be written (a root-squashing NFS sees the user too), and the
Ray worker's identity never changes.  The exec keeps the pid, so the script is still the
leader of its own session and process group, as without a switch.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from dataclasses import dataclass


class LaunchError(Exception):
    """The script cannot be started on this node (the message says why); the job fails at launch."""


@dataclass(frozen=True)
class Identity:
    """A Unix account as this node's password database has it."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  #: every group the account is in (initgroups), its primary group too
    home: str
    shell: str

    def environment(self) -> dict[str, str]:
        """HOME, USER, LOGNAME and SHELL of the account, as login(1) sets them."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name, "SHELL": self.shell}


def unix_identity(name: str) -> Identity:
    """The account ``name`` from the password and group databases; KeyError when there is none."""
    entry = pwd.getpwnam(name)
    return Identity(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid,
                    groups=tuple(os.getgrouplist(entry.pw_name, entry.pw_gid)), home=entry.pw_dir,
                    shell=entry.pw_shell or "/bin/sh")


def may_enter(identity: Identity, path: str) -> bool:
    """Whether ``identity`` may enter the directory ``path`` (chdir into it), judged on this host.

    From the mode bits of every directory on the way, along the path as written and along where its
    links lead.  ACLs and security modules are not read: the launch, made as the user, decides last.
    """
    if identity.uid == 0:
        return os.path.isdir(path)
    for directory in _directories_on_the_way(path):
        try:
            info = os.stat(directory)
        except OSError:
            return False
        if not stat.S_ISDIR(info.st_mode) or not _may_search(identity, info):
            return False
    return True


def _directories_on_the_way(path: str) -> list[str]:
    """Each directory from / down to ``path``, lexically and resolved (each once, in order)."""
    found: dict[str, None] = {}
    for walked in (os.path.normpath(path), os.path.realpath(path)):
        parts = walked.strip("/").split("/")
        found.update(dict.fromkeys(["/"] + ["/" + "/".join(parts[:n]) for n in range(1, len(parts) + 1) if parts[0]]))
    return list(found)


def _may_search(identity: Identity, info: os.stat_result) -> bool:
    """The kernel's rule for the execute (search) bit: owner's bits, else group's, else others'."""
    if info.st_uid == identity.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in identity.groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def of_job(run_as: str, *, node: str) -> Identity | None:
    """Who the script runs as: None for the worker's own user, else ``run_as`` resolved on this node.

    Raises LaunchError when the account does not exist here, or when this worker is not root and
    so cannot become it: a job never runs as anyone but the account recorded for it.
    """
    if not run_as:
        return None
    try:
        identity = unix_identity(run_as)
    except KeyError:
        raise LaunchError(f"user {run_as} has no Unix account on node {node}") from None
    if os.geteuid() not in (0, identity.uid):
        raise LaunchError(f"conductor runs as uid {os.geteuid()} on node {node}, not as root, so it cannot "
                          f"run the job as {identity.name}")
    return identity


def job_umask(environment: dict[str, str]) -> int:
    """The umask the job's files are created with: SLURM_UMASK (octal, as sbatch sends it), else 0022."""
    try:
        return int(environment["SLURM_UMASK"], 8) & 0o777
    except (KeyError, ValueError):
        return 0o022


def hand_over(identity: Identity, spool: str, script_path: str) -> None:
    """Give the spool directory (0700) and its script to the job's user: readable by them only (and root)."""
    if os.geteuid() == 0:
        os.chown(script_path, identity.uid, identity.gid)
        os.chown(spool, identity.uid, identity.gid)


#: The step between the identity switch and the script, run by /bin/sh as the job's user:
#: $1 working directory, $2 stdout file, $3 stderr file, $4 "a" (append) or "t" (truncate), then
#: the command.  Both files are checked before either is opened, so a refused one creates nothing.
#: Whatever it writes to fd 2 (then the launch pipe) is a launch failure; the pipe closes unwritten
#: once fd 2 is the job's stderr.
OPEN_AS_USER = r"""
may_write() {
  if [ -e "$1" ] || [ -L "$1" ]; then [ -w "$1" ]; return; fi
  case $1 in */*) d=${1%/*}; d=${d:-/} ;; *) d=. ;; esac
  [ -d "$d" ] && [ -w "$d" ] && [ -x "$d" ]
}
cd -- "$1" 2>/dev/null || { echo "cannot enter the working directory $1"; exit 126; } >&2
may_write "$2" || { echo "cannot write the stdout file $2"; exit 126; } >&2
[ "$3" = "$2" ] || may_write "$3" || { echo "cannot write the stderr file $3"; exit 126; } >&2
if [ "$4" = a ]; then exec >>"$2"; else exec >"$2"; fi
if [ "$3" = "$2" ]; then exec 2>&1; elif [ "$4" = a ]; then exec 2>>"$3"; else exec 2>"$3"; fi
shift 4
exec "$@"
"""
#: $0 of the launch step, which /bin/sh puts before its own error messages.
LAUNCH_NAME = "conductor-launch"


def popen_as(identity: Identity, argv: list[str], *, working_dir: str, stdout_path: str, stderr_path: str,
             append: bool, env: dict[str, str], umask: int) -> tuple[subprocess.Popen, int]:
    """Start ``argv`` as ``identity`` in a new session; (process, read end of its launch pipe).

    Read the pipe with ``launch_failure`` before supervising the process.
    """
    status_read, status_write = os.pipe2(os.O_CLOEXEC)
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", OPEN_AS_USER, LAUNCH_NAME, working_dir, stdout_path, stderr_path,
             "a" if append else "t", *argv],
            cwd="/", env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=status_write,
            start_new_session=True, close_fds=True, umask=umask, **switch_arguments(identity))
    except BaseException:
        os.close(status_read)
        raise
    finally:
        os.close(status_write)
    return process, status_read


def switch_arguments(identity: Identity) -> dict:
    """Popen's identity arguments: uid, primary gid and all groups; none when already that user."""
    if os.geteuid() != 0:  # of_job lets only our own account through
        return {}
    return {"user": identity.uid, "group": identity.gid, "extra_groups": list(identity.groups)}


def launch_failure(process: subprocess.Popen, status_read: int) -> str | None:
    """Wait for the launch step: None once the script is exec'd, else what it reported (it has exited)."""
    chunks = []
    try:
        while chunk := os.read(status_read, 4096):
            chunks.append(chunk)
    finally:
        os.close(status_read)
    if not chunks:
        return None
    process.wait()
    return b"".join(chunks).decode("utf-8", errors="replace").strip().removeprefix(f"{LAUNCH_NAME}: ")
