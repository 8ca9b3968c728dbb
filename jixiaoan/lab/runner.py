"""Run a lab schedule: build the network, start servers and benign devices, record the
hotspot bridge with tcpdump, run each phase in order, then write the outputs."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from jixiaoan.lab.attacks import ATTACKS, attack_command, resolve_target
from jixiaoan.lab.deps import TOOLS, ensure_tools, which
from jixiaoan.lab.devices import BenignConfig, start_benign, start_servers
from jixiaoan.lab.output import Phase, split_capture, write_labels, write_phases
from jixiaoan.lab.topology import DEVICES, LAN_HOSTS, LabError, Topology, cleanup_stale

ATTACKER_IP = LAN_HOSTS["attacker"]
#: programs every run needs (attack tools are added per schedule)
BASE_TOOLS = ["ip", "sysctl", "tcpdump", "busybox", "sshd", "ssh-keygen", "openssl",
              "mosquitto", "mosquitto_pub", "mosquitto_sub", "dnsmasq", "dig", "curl"]


def parse_attack(spec: str) -> Phase:
    """``name[:target[:key=value,...]]`` -> an attack phase (raises ValueError when bad). A
    value may itself hold commas (``ports=22,80,1883``): an item without ``=`` continues the
    previous value."""
    parts = spec.split(":", 2)
    name = parts[0]
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
    attack = ATTACKS[name]
    target = parts[1] if len(parts) > 1 and parts[1] else attack.default_target
    params: dict[str, str] = {}
    if len(parts) > 2 and parts[2]:
        key = ""
        for item in parts[2].split(","):
            name_, sep, value = item.partition("=")
            if not sep and key and item.strip():
                params[key] += "," + item.strip()
                continue
            if not sep or not name_.strip() or not value.strip():
                raise ValueError(f"{spec}: parameter {item!r} is not key=value")
            key = name_.strip()
            params[key] = value.strip()
    unknown = set(params) - set(attack.defaults)
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(attack.defaults)}")
    return Phase("attack", name, attack.family, target, resolve_target(target), params)


def parse_benign(seconds: str | float) -> Phase:
    """A benign-only phase of ``seconds``."""
    s = float(seconds)
    if not 0 < s <= 24 * 3600:
        raise ValueError(f"benign period {seconds!r} must be between 0 and 86400 seconds")
    return Phase("benign", seconds=s)


@dataclass
class LabRun:
    """Settings of one lab run."""

    phases: list[Phase]
    out_dir: Path
    gap: float = 5.0  # quiet seconds after every attack
    warmup: float = 3.0  # benign seconds recorded before the first phase
    benign: BenignConfig = field(default_factory=BenignConfig)
    install: bool = True  # run tools/lab-deps.sh when a program is missing
    snaplen: int = 0  # tcpdump -s (0: whole frames)
    keep_logs: bool = False  # copy the daemons' and tools' logs to out_dir/logs
    run_id: str = ""  # filled in: the run's namespace id (jxl-<run_id>-<role>)
    pids: list[int] = field(default_factory=list)  # filled in: every process group started
    ns_inodes: dict[str, int] = field(default_factory=dict)  # filled in: namespace inodes


def _start_tcpdump(topo: Topology, pcap: Path, work: Path, snaplen: int) -> subprocess.Popen:
    log = work / "logs" / "tcpdump.log"
    proc = topo.start("hotspot", [which("tcpdump") or "tcpdump", "-i", "br0", "-n", "-U",
                                  "-s", str(snaplen), "-B", "8192", "-Z", "root", "-w",
                                  str(pcap)], log=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if log.exists() and b"listening on" in log.read_bytes():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    text = log.read_text(errors="replace") if log.exists() else ""
    raise LabError(f"tcpdump did not start on the hotspot bridge: {text}")


def _tcpdump_dropped(log: Path) -> int:
    """Packets tcpdump says the kernel dropped (its exit summary)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.findall(r"(\d+) packets? dropped by kernel", text)
    return int(found[-1]) if found else 0


def _run_attack(topo: Topology, phase: Phase, work: Path) -> None:
    # tools with their own time limit get `duration`; the lab stops any tool 5 s later
    limit = float({**ATTACKS[phase.attack].defaults, **phase.params}["duration"]) + 5
    phase.command = attack_command(phase.attack, phase.target_ip, phase.params, work)
    log = work / "logs" / f"attack-{phase.attack}.log"
    print(f"lab: attack {phase.attack} -> {phase.target} ({phase.target_ip}): "
          f"{' '.join(phase.command)}", flush=True)
    phase.start = time.time()
    proc = topo.start("attacker", phase.command, log=log, cwd=work)
    try:
        proc.wait(limit)
    except subprocess.TimeoutExpired:
        print(f"lab: {phase.attack} reached its {limit:g} s bound; stopping it", flush=True)
    topo.stop(proc, signal.SIGINT, wait=3)
    phase.end = time.time()
    phase.exit_code = proc.returncode
    topo.processes.remove(proc)
    _forget_attacker(topo)


def _forget_attacker(topo: Topology) -> None:
    """Once the attack's last packets are through, drop the ARP entries between the attacker
    and everyone else: otherwise the kernels re-verify them (unicast ARP probes ~5 s after
    last use), which would put attacker packets into the next benign phase."""
    time.sleep(1.0)
    topo.run("attacker", ["ip", "neigh", "flush", "all"], check=False)
    for role in ("hotspot", *DEVICES):
        topo.run(role, ["ip", "neigh", "flush", "to", ATTACKER_IP], check=False)


def run_lab(run: LabRun) -> list[Phase]:
    """Run the schedule; returns its phases with times, segments and packet counts filled.
    Everything started is stopped and deleted before returning, also on errors/Ctrl-C."""
    attacks = [p for p in run.phases if p.kind == "attack"]
    tools = BASE_TOOLS + [t for p in attacks for t in ATTACKS[p.attack].tools]
    ensure_tools(sorted(set(tools)), install=run.install)
    removed = cleanup_stale()
    if removed:
        print(f"lab: removed stale namespaces {' '.join(removed)}", flush=True)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    capture = run.out_dir / "capture.pcap"
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if main:
        signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` cleans up like Ctrl-C
    try:
        with tempfile.TemporaryDirectory(prefix="jixiaoan-lab-") as tmp, Topology() as topo:
            work = Path(tmp)
            run.run_id, run.pids, run.ns_inodes = topo.run_id, topo.started, topo.ns_inodes
            print(f"lab: run {topo.run_id}: namespaces {topo.ns('*')}", flush=True)
            start_servers(topo, work, run.benign)
            start_benign(topo, work, run.benign)
            dump = _start_tcpdump(topo, capture, work, run.snaplen)
            time.sleep(run.warmup)
            for i, phase in enumerate(run.phases):
                if phase.kind == "benign":
                    print(f"lab: benign {phase.seconds:g} s", flush=True)
                    phase.start = time.time()
                    time.sleep(phase.seconds)
                    phase.end = time.time()
                else:
                    _run_attack(topo, phase, work)
                    last = i == len(run.phases) - 1
                    time.sleep(max(run.gap, 1.0 if last else 0.0))
            time.sleep(0.5)
            topo.stop(dump, signal.SIGINT, wait=10)
            dropped = _tcpdump_dropped(work / "logs" / "tcpdump.log")
            if dropped:
                print(f"lab: warning: tcpdump reports {dropped} packets dropped by the kernel; "
                      "lower the attack rates", flush=True)
            if run.keep_logs:
                shutil.copytree(work / "logs", run.out_dir / "logs", dirs_exist_ok=True)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    split_capture(capture, run.out_dir, run.phases, ATTACKER_IP)
    write_labels(run.out_dir, run.phases, ATTACKER_IP)
    write_phases(run.out_dir, run.phases, {
        "attacker": ATTACKER_IP, "hosts": LAN_HOSTS, "gap": run.gap, "warmup": run.warmup,
        "benign": vars(run.benign), "tcpdump_dropped": dropped,
        "versions": tool_versions([*tools, "iptables"]),
    })
    return run.phases


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


_VERSION_ARGS = {"nmap": ["--version"], "hping3": ["--version"], "hydra": ["-h"],
                 "tcpdump": ["--version"], "slowhttptest": ["-h"], "ab": ["-V"],
                 "mosquitto": ["-h"], "sshd": ["-V"], "dnsmasq": ["--version"], "curl": ["-V"],
                 "busybox": [], "dig": ["-v"]}


def tool_versions(tools: list[str]) -> dict[str, str]:
    """First version line of each tool (the Debian package version where dpkg knows it)."""
    out = {}
    for tool in sorted(set(tools)):
        pkg = TOOLS.get(tool, "")
        res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                             text=True, timeout=10) if pkg else None
        if res is not None and res.returncode == 0 and res.stdout:
            out[tool] = f"{pkg} {res.stdout}"
        elif tool in _VERSION_ARGS and which(tool):
            with contextlib.suppress(Exception):
                r = subprocess.run([which(tool), *_VERSION_ARGS[tool]], capture_output=True,
                                   text=True, timeout=10)
                out[tool] = (r.stdout or r.stderr).strip().splitlines()[0]
    out["python"] = sys.version.split()[0]
    return out
