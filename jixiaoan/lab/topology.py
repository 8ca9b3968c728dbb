"""The lab network: a hotspot namespace with a bridge, IoT device namespaces, an attacker and
an "internet" namespace behind NAT. Everything lives in network namespaces named
``jxl-<run id>-<role>``; nothing is attached to the machine's own interfaces, so no lab
packet can leave the namespaces.

    hotspot  br0 192.168.137.1/24 (like a Windows mobile hotspot), wan 203.0.113.2/24, NAT
    camera   192.168.137.10   plug 192.168.137.11   tv 192.168.137.12   phone 192.168.137.13
    attacker 192.168.137.66
    internet 203.0.113.1/24 plus web 203.0.113.10, dns 203.0.113.53, mqtt 203.0.113.88

A run writes ``/run/jixiaoan-lab/<run id>.pid`` holding its process id; :func:`cleanup_stale`
removes the namespaces (and the processes in them) of runs whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "jxl-"
STATE_DIR = Path("/run/jixiaoan-lab")
NETNS_ETC = Path("/etc/netns")
LAN_PREFIX = "192.168.137"
HOTSPOT_IP = f"{LAN_PREFIX}.1"
WAN_HOTSPOT_IP = "203.0.113.2"
WAN_GATEWAY_IP = "203.0.113.1"
WEB_IP = "203.0.113.10"
DNS_IP = "203.0.113.53"
MQTT_IP = "203.0.113.88"

#: LAN hosts: role -> address. The attacker is on the same bridge as the devices.
LAN_HOSTS: dict[str, str] = {
    "camera": f"{LAN_PREFIX}.10",
    "plug": f"{LAN_PREFIX}.11",
    "tv": f"{LAN_PREFIX}.12",
    "phone": f"{LAN_PREFIX}.13",
    "attacker": f"{LAN_PREFIX}.66",
}
DEVICES = ("camera", "plug", "tv", "phone")
#: Names an attack may target, with their addresses (devices, the hotspot, the cloud hosts).
TARGETS: dict[str, str] = {
    **{d: LAN_HOSTS[d] for d in DEVICES},
    "hotspot": HOTSPOT_IP,
    "web": WEB_IP,
    "dns": DNS_IP,
    "broker": MQTT_IP,
}


class LabError(RuntimeError):
    """The lab could not be set up or run; the message says why."""


def _run(cmd: Sequence[str], timeout: float = 30, check: bool = True) -> str:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def netns_problem() -> str | None:
    """Why the lab cannot build namespaces on this machine (None when it can)."""
    if os.uname().sysname != "Linux":
        return "the lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, raw sockets)"
    if not shutil.which("ip"):
        return "the `ip` tool (Debian package iproute2) is not installed"
    return None


def netns_probe() -> str | None:
    """Like :func:`netns_problem`, and also tries to create (and delete) a namespace: a
    container without CAP_SYS_ADMIN has root and `ip` but cannot. None when it works."""
    problem = netns_problem()
    if problem:
        return problem
    name = f"jxlprobe-{os.getpid()}-{secrets.token_hex(2)}"  # not PREFIX: never a run's
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True,
                         timeout=20)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
    if res.returncode != 0:
        return f"cannot create a network namespace here: {res.stderr.strip()}"
    return None


def list_namespaces() -> list[str]:
    """Names of all network namespaces on this machine."""
    out = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_namespace_processes(ns: str) -> None:
    def pids() -> list[int]:
        return [int(p) for p in _run(["ip", "netns", "pids", ns], check=False).split()]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not pids():
            return
        for pid in pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and pids():
            time.sleep(0.05)


def delete_namespace(ns: str) -> None:
    """Kill every process inside ``ns``, delete it (its veths and bridges go with it) and its
    /etc/netns overlay directory."""
    _kill_namespace_processes(ns)
    _run(["ip", "netns", "del", ns], check=False)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


def _process_start(pid: int) -> str | None:
    """Start time (clock ticks since boot) of a live, non-zombie process; None otherwise."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _owner_record() -> str:
    return f"{os.getpid()} {_process_start(os.getpid())}\n"


def _owner_alive(record: str) -> bool:
    """Whether the run that wrote ``record`` (pid and start time) still runs; a reused pid
    or a zombie counts as gone."""
    parts = record.split()
    try:
        pid = int(parts[0])
    except (IndexError, ValueError):
        return False
    start = _process_start(pid)
    return start is not None and (len(parts) < 2 or parts[1] == start)


def cleanup_stale(everything: bool = False) -> list[str]:
    """Delete lab namespaces whose run is no longer alive (all lab namespaces with
    ``everything``); returns the names removed."""
    removed = []
    runs: dict[str, list[str]] = {}
    for ns in list_namespaces():
        if ns.startswith(PREFIX):
            runs.setdefault(ns.split("-")[1], []).append(ns)
    for run_id in set(runs) | {p.stem for p in STATE_DIR.glob("*.pid")}:
        pid_file = STATE_DIR / f"{run_id}.pid"
        try:
            record = pid_file.read_text()
        except OSError:
            record = ""
        if not everything and _owner_alive(record):
            continue
        for ns in runs.get(run_id, []):
            delete_namespace(ns)
            removed.append(ns)
        pid_file.unlink(missing_ok=True)
    if NETNS_ETC.is_dir():  # overlay directories left without a namespace
        live = set(list_namespaces())
        for d in NETNS_ETC.glob(f"{PREFIX}*"):
            if d.name not in live and d.name.split("-")[1] not in _live_runs():
                shutil.rmtree(d, ignore_errors=True)
    return removed


def _live_runs() -> set[str]:
    out = set()
    for pid_file in STATE_DIR.glob("*.pid"):
        with contextlib.suppress(OSError):
            if _owner_alive(pid_file.read_text()):
                out.add(pid_file.stem)
    return out


def processes_in(ns_inodes: set[int], sessions: set[int] = frozenset()) -> list[int]:
    """Pids of live processes inside any of the network namespaces ``ns_inodes`` (as
    :attr:`Topology.ns_inodes` records them) or in one of the ``sessions``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            inode = os.stat(entry / "ns" / "net").st_ino
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        if inode in ns_inodes or int(fields[3]) in sessions:
            found.append(int(entry.name))
    return found


@dataclass
class Topology:
    """One lab network. Use as a context manager: entering builds it, leaving (also after an
    exception or Ctrl-C) kills every process it started and deletes its namespaces."""

    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    processes: list[subprocess.Popen] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    started: list[int] = field(default_factory=list)  # every pid started (also finished ones)
    ns_inodes: dict[str, int] = field(default_factory=dict)  # namespace -> nsfs inode

    def ns(self, role: str) -> str:
        """Namespace name of ``role`` (hotspot, internet, camera, ..., attacker)."""
        return f"{PREFIX}{self.run_id}-{role}"

    @property
    def roles(self) -> list[str]:
        """Every namespace role of the lab."""
        return ["hotspot", "internet", *LAN_HOSTS]

    def ip(self, role: str, *args: str, check: bool = True) -> str:
        """Run ``ip ARGS`` inside ``role``'s namespace."""
        return _run(["ip", "netns", "exec", self.ns(role), "ip", *args], check=check)

    def run(self, role: str, cmd: Sequence[str], timeout: float = 30, check: bool = True) -> str:
        """Run ``cmd`` to completion inside ``role``'s namespace; returns its stdout."""
        return _run(["ip", "netns", "exec", self.ns(role), *cmd], timeout=timeout, check=check)

    def start(self, role: str, cmd: Sequence[str], log: Path | None = None,
              stdin: int | None = subprocess.DEVNULL, cwd: Path | None = None) -> subprocess.Popen:
        """Start ``cmd`` in the background inside ``role``'s namespace (own process group,
        killed when the lab closes)."""
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns(role), *cmd], stdin=stdin,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=cwd)
        finally:
            if log:
                out.close()
        self.processes.append(proc)
        self.started.append(proc.pid)
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 5) -> None:
        """Signal ``proc``'s process group and wait for it (SIGKILL after ``wait`` seconds)."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        with contextlib.suppress(ProcessLookupError):  # stragglers left in the group
            os.killpg(proc.pid, signal.SIGKILL)

    def etc_file(self, role: str, name: str, text: str) -> None:
        """Make ``/etc/<name>`` read ``text`` for programs run in ``role``'s namespace
        (``ip netns exec`` bind-mounts /etc/netns/<ns>/<name> over it)."""
        d = NETNS_ETC / self.ns(role)
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)

    # -- building -------------------------------------------------------------------------

    def __enter__(self) -> Topology:
        problem = netns_problem()
        if problem:
            raise LabError(problem)
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        (STATE_DIR / f"{self.run_id}.pid").write_text(_owner_record())
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        for role in self.roles:
            _run(["ip", "netns", "add", self.ns(role)])
            self.created.append(self.ns(role))
            self.ns_inodes[self.ns(role)] = os.stat(f"/run/netns/{self.ns(role)}").st_ino
            self.run(role, ["ip", "link", "set", "lo", "up"])
            # IPv6 off: no router solicitations or DAD noise in the recording
            self.run(role, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            self.run(role, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])
        hub = self.ns("hotspot")
        self.run("hotspot", ["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0"])
        self.run("hotspot", ["ip", "addr", "add", f"{HOTSPOT_IP}/24", "dev", "br0"])
        self.run("hotspot", ["ip", "link", "set", "br0", "up"])
        for i, (role, addr) in enumerate(LAN_HOSTS.items()):
            port = f"p{i}{role[:6]}"
            _run(["ip", "link", "add", "eth0", "netns", self.ns(role), "type", "veth", "peer",
                  "name", port, "netns", hub])
            self.run("hotspot", ["ip", "link", "set", port, "master", "br0", "up"])
            self.run(role, ["ip", "addr", "add", f"{addr}/24", "dev", "eth0"])
            self.run(role, ["ip", "link", "set", "eth0", "up"])
            self.run(role, ["ip", "route", "add", "default", "via", HOTSPOT_IP])
            self.etc_file(role, "resolv.conf", f"nameserver {DNS_IP}\n")
        _run(["ip", "link", "add", "wan", "netns", hub, "type", "veth", "peer", "name", "eth0",
              "netns", self.ns("internet")])
        self.run("hotspot", ["ip", "addr", "add", f"{WAN_HOTSPOT_IP}/24", "dev", "wan"])
        self.run("hotspot", ["ip", "link", "set", "wan", "up"])
        for addr in (WAN_GATEWAY_IP, WEB_IP, DNS_IP, MQTT_IP):
            self.run("internet", ["ip", "addr", "add", f"{addr}/24", "dev", "eth0"])
        self.run("internet", ["ip", "link", "set", "eth0", "up"])
        self.run("hotspot", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        self.nat = self._try_nat()

    def _try_nat(self) -> bool:
        """Masquerade the LAN behind the hotspot's wan address like a Windows hotspot does;
        where netfilter is unavailable fall back to plain routing (the internet namespace
        routes the LAN back) and say so."""
        err = None
        for tool in ("iptables", "iptables-legacy"):
            if shutil.which(tool):
                try:
                    self.run("hotspot", [tool, "-t", "nat", "-A", "POSTROUTING", "-s",
                                         f"{LAN_PREFIX}.0/24", "-o", "wan", "-j", "MASQUERADE"])
                    return True
                except LabError as exc:
                    err = exc
        print(f"lab: NAT unavailable ({err or 'iptables not installed'}); routing instead")
        self.run("internet", ["ip", "route", "add", f"{LAN_PREFIX}.0/24", "via", WAN_HOTSPOT_IP])
        return False

    def close(self) -> None:
        """Kill the lab's processes and delete its namespaces (idempotent)."""
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                self.stop(proc, wait=2)
        self.processes.clear()
        for ns in reversed(self.created):
            delete_namespace(ns)
        self.created.clear()
        for role in self.roles:  # overlays written before a namespace existed
            shutil.rmtree(NETNS_ETC / self.ns(role), ignore_errors=True)
        (STATE_DIR / f"{self.run_id}.pid").unlink(missing_ok=True)

    def leftovers(self) -> list[str]:
        """Anything of this run still present: namespaces, /etc/netns overlays, processes."""
        left = [ns for ns in list_namespaces() if ns.startswith(f"{PREFIX}{self.run_id}-")]
        left += [str(d) for d in NETNS_ETC.glob(f"{PREFIX}{self.run_id}-*")]
        left += [f"pid {pid}" for pid in processes_in(set(self.ns_inodes.values()),
                                                      set(self.started))]
        if (STATE_DIR / f"{self.run_id}.pid").exists():
            left.append(str(STATE_DIR / f"{self.run_id}.pid"))
        return left
