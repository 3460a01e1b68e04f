"""Test hosts on this machine: one network namespace each, joined by a bridge, each with its own sshd.

A host is what `ray up` needs of a machine: an address it can SSH to as root with a key, a home
directory of its own (``~/conductor-venv``, ``~/conductor-partition``, ``~/.ray``), and a temporary
directory of its own (``RAY_TMPDIR``, so each host's Ray keeps its sessions and its
``ray_current_cluster`` file apart).  Each host's sshd runs in the host's network namespace and in
a mount namespace of its own where the host's home directory is bind-mounted on /root (ssh
expands ``~`` from the password database, not from HOME); otherwise the hosts share this
machine's file system (as a cluster shares NFS) and its process table.  sshd gives each session
its host's RAY_TMPDIR (``SetEnv``).

The root namespace has the bridge's first address, so a host reaches services of this machine
through it (the tests forward PostgreSQL and Redis there).  Everything made here is removed by
``Hosts.close``: processes by id (every process in a host's namespace, found through
/proc/<pid>/ns/net, and the sshd), then the namespaces and the bridge.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
#: The private subnets tried for the bridge: 10.213.<n>.0/24.
SUBNET_PREFIX = "10.213"
#: Seconds a process in a host gets between SIGTERM and SIGKILL at clean-up.
KILL_GRACE_S = 3.0
REPO = Path(__file__).resolve().parents[2]


def missing_tools() -> str:
    """Why test hosts cannot be made here ("" when they can)."""
    if os.geteuid() != 0:
        return "test hosts need root (network namespaces, sshd)"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen", "rsync", "socat"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make test installs it as root)"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed (apt-get install openssh-server; make test does it as root)"
    return ""


def run(*args: str, check: bool = True, timeout_s: float = 20) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout_s)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def netns_inode(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def pids_in_netns(inode: int) -> list[int]:
    """Every process whose network namespace is ``inode``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if netns_inode(entry) == inode:
                    found.append(int(entry))
            except OSError:  # gone meanwhile, or a kernel thread
                pass
    return found


@dataclass
class Host:
    """One test host: its namespace, address, home, temporary directory and sshd."""

    name: str
    netns: str
    address: str
    home: Path
    #: Its RAY_TMPDIR: short, as Ray's Unix sockets in it must have paths under 108 bytes.
    ray_tmpdir: Path = Path()
    sshd_pid: int = 0
    netns_ino: int = 0

    def pids(self) -> list[int]:
        """Every process running in this host now (its sshd included)."""
        return pids_in_netns(self.netns_ino) if self.netns_ino else []



@dataclass
class Hosts:
    """The bridge and the hosts on it; ``close`` removes all of it."""

    root: Path
    tag: str
    bridge: str
    gateway: str
    key: Path
    hosts: list[Host] = field(default_factory=list)
    _links: list[str] = field(default_factory=list)

    def ssh(self, host: Host, command: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
        """Run ``command`` on ``host`` as root over ssh, in a login shell (as `ray exec` does)."""
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{host.address}",
             f"bash --login -c {_quote(command)}"], capture_output=True, text=True, timeout=timeout_s)

    def close(self) -> list[str]:
        """Kill every process of every host (by id), remove namespaces, links and the bridge.

        Returns what it had to kill besides the sshds: processes left running in a host."""
        leftovers = []
        for host in self.hosts:
            pids = [pid for pid in host.pids() if pid != host.sshd_pid]
            leftovers += [f"{host.name}: {pid} {_cmdline(pid)}" for pid in pids]
            _kill_all(pids + ([host.sshd_pid] if host.sshd_pid else []))
        for host in self.hosts:
            run("ip", "netns", "del", host.netns, check=False)
        for link in [*self._links, self.bridge]:
            run("ip", "link", "del", link, check=False)
        for host in self.hosts:
            shutil.rmtree(host.ray_tmpdir, ignore_errors=True)
        return leftovers


def make_hosts(root: Path, names: list[str]) -> Hosts:
    """A bridge with the root namespace at .1 and one host per name at .2, .3, ...; each runs sshd.

    On any failure what was made so far is removed before the error is raised."""
    tag = uuid.uuid4().hex[:5]
    subnet = _free_subnet()
    hosts = Hosts(root=root, tag=tag, bridge=f"cth{tag}br", gateway=f"{subnet}.1", key=root / "client" / "id_ed25519")
    try:
        _make_bridge(hosts, subnet)
        hosts.key.parent.mkdir(parents=True)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "conductor-test", "-f", str(hosts.key))
        for index, name in enumerate(names):
            host = Host(name, f"cth-{tag}-{name}", f"{subnet}.{index + 2}", root / name,
                        Path(tempfile.gettempdir()) / f"cth-{tag}-{name}")
            hosts.hosts.append(host)
            _make_namespace(hosts, host, index)
            _start_sshd(hosts, host)
    except BaseException:
        hosts.close()
        raise
    return hosts


def _free_subnet() -> str:
    used = run("ip", "-4", "-o", "addr").stdout
    for n in range(10, 250):
        subnet = f"{SUBNET_PREFIX}.{(n + os.getpid()) % 240 + 10}"
        if f" {subnet}." not in used:
            return subnet
    raise RuntimeError(f"no free {SUBNET_PREFIX}.x.0/24 subnet")


def _make_bridge(hosts: Hosts, subnet: str) -> None:
    run("ip", "link", "add", hosts.bridge, "type", "bridge")
    run("ip", "addr", "add", f"{hosts.gateway}/24", "dev", hosts.bridge)
    run("ip", "link", "set", hosts.bridge, "up")


def _make_namespace(hosts: Hosts, host: Host, index: int) -> None:
    outer, inner = f"cth{hosts.tag}{index}o", f"cth{hosts.tag}{index}i"
    run("ip", "netns", "add", host.netns)
    host.netns_ino = os.stat(f"/run/netns/{host.netns}").st_ino
    run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
    hosts._links.append(outer)
    run("ip", "link", "set", outer, "master", hosts.bridge, "up")
    run("ip", "link", "set", inner, "netns", host.netns)
    for args in (("link", "set", "lo", "up"), ("link", "set", inner, "name", "eth0"),
                 ("addr", "add", f"{host.address}/24", "dev", "eth0"), ("link", "set", "eth0", "up"),
                 ("route", "add", "default", "via", hosts.gateway)):
        run("ip", "netns", "exec", host.netns, "ip", *args)


def _start_sshd(hosts: Hosts, host: Host) -> None:
    """sshd on the host's address, its own host key and config; sessions get the host's HOME."""
    state = host.home / ".sshd"
    host.ray_tmpdir.mkdir()
    state.mkdir(parents=True)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(state / "host_key"))
    (state / "authorized_keys").write_text(Path(f"{hosts.key}.pub").read_text())
    config = state / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {host.address}", "Port 22", f"HostKey {state / 'host_key'}", f"PidFile {state / 'sshd.pid'}",
        f"AuthorizedKeysFile {state / 'authorized_keys'}", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        "MaxStartups 50", "MaxSessions 50", "Subsystem sftp internal-sftp",
        f"SetEnv RAY_TMPDIR={host.ray_tmpdir}", ""]))
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory (Debian's unit makes it)
    log = state / "sshd.log"
    # -D: stays in the foreground, so its pid is ours to kill; -e: its log to the file.
    # `ip netns exec` and `unshare` exec, and so does sh: the pid is sshd's.  What the interpreter
    # needs from this machine's /root (a pyenv Python) stays visible there, as a submount.
    mounts = []
    for needed in _under_root(Path(sys.base_prefix), Path(sys.prefix)):
        (host.home / needed.name).mkdir(exist_ok=True)
        mounts.append(f"mount --bind {needed} {host.home / needed.name}")
    inner = " && ".join([*mounts, f"mount --rbind {host.home} /root", f"exec {SSHD} -D -e -f {config}"])
    process = subprocess.Popen(["ip", "netns", "exec", host.netns, "unshare", "--mount", "--propagation", "private",
                                "sh", "-c", inner],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    host.sshd_pid = process.pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd on {host.name} exited: {log.read_text()}")
        if hosts.ssh(host, "true", timeout_s=10).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"sshd on {host.name} did not answer: {log.read_text()}")


def _under_root(*paths: Path) -> set[Path]:
    """The entries of /root that ``paths`` lie in (e.g. /root/.pyenv)."""
    root = Path("/root")
    return {root / p.resolve().relative_to(root).parts[0] for p in paths if p.resolve().is_relative_to(root)}


def _kill_all(pids: list[int]) -> None:
    """SIGTERM, then SIGKILL after KILL_GRACE_S, each process by id; reaps our own children."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # our child (sshd): reap it, or it stays a zombie
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()[:200]
    except OSError:
        return "?"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


if __name__ == "__main__":  # a manual check: make two hosts, ssh to each, remove them
    with tempfile.TemporaryDirectory() as tmp:
        made = make_hosts(Path(tmp), ["head", "w1"])
        try:
            for h in made.hosts:
                print(h.name, made.ssh(h, "echo $HOME $RAY_TMPDIR; ls ~; hostname -I").stdout.strip())
        finally:
            print("left:", made.close(), file=sys.stderr)
