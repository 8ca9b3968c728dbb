"""Servers and benign IoT behaviour of the lab, all real programs from Debian packages.

internet namespace: busybox httpd (web/CDN for every name), dnsmasq (answers every name), and a
mosquitto broker. camera: busybox httpd (snapshot page) and OpenSSH with the weak-password
account ``admin`` (defined only inside the camera's namespace through an /etc/netns overlay,
never on the machine itself), and telnet (inetutils) when installed; it polls its cloud every
few seconds. plug: MQTT telemetry
every 2 s plus a subscription for commands. tv: an HLS-like stream (one
HTTP segment every 2 s). phone: DNS
look-ups, web pages and the camera's snapshot.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from jixiaoan.lab.deps import TELNET_TOOLS, which
from jixiaoan.lab.topology import DNS_IP, LAN_HOSTS, MQTT_IP, WEB_IP, LabError, Topology

CAMERA_USER = "admin"
CAMERA_PASSWORD = "admin1234"  # deliberately weak; in the bundled wordlist
BROKER_NAME = "broker.iot-cloud.example"
STREAM_NAME = "cdn.stream.example"
#: names the phone looks up and browses (dnsmasq answers all of them)
PHONE_SITES = ("news.example", "weather.example", "shop.example", "social.example")


@dataclass(frozen=True)
class BenignConfig:
    """How busy the benign devices are."""

    tv_rate_kbps: int = 8  # TV stream rate, KiB/s (a segment of rate * period every period)
    tv_period_s: float = 2.0  # TV segment period (HLS-like chunked streaming)
    plug_period_s: float = 2.0  # MQTT telemetry period
    phone_period_s: float = 3.0  # phone browsing period
    camera_period_s: float = 4.0  # camera cloud poll period


def _write_site(root: Path, size_segment: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rnd = os.urandom
    (root / "index.html").write_text(
        "<html><head><title>lab</title></head><body>" + "<p>news item</p>" * 150 + "</body></html>"
    )
    (root / "ping.txt").write_text("ok\n")
    (root / "live").mkdir(exist_ok=True)
    (root / "live" / "segment.ts").write_bytes(rnd(size_segment))


def _write_camera_site(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(
        '<html><body><h1>IP camera</h1><img src="snapshot.jpg"></body></html>'
    )
    (root / "snapshot.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(12_000) + b"\xff\xd9")


def _password_hash(password: str) -> str:
    res = subprocess.run(["openssl", "passwd", "-6", "-salt", "jxlabsalt", password],
                         capture_output=True, text=True, check=True, timeout=10)
    return res.stdout.strip()


def _camera_accounts(topo: Topology) -> None:
    """passwd/group/shadow seen only by programs in the camera namespace: the machine's
    passwd and group (sshd needs its privilege-separation user) plus ``admin``; a shadow file
    holding nothing but admin's hash."""
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    topo.etc_file("camera", "passwd", passwd + f"{CAMERA_USER}:x:4711:4711:camera:/tmp:/bin/sh\n")
    topo.etc_file("camera", "group", group + f"{CAMERA_USER}:x:4711:\n")
    digest = _password_hash(CAMERA_PASSWORD)
    topo.etc_file("camera", "shadow", f"{CAMERA_USER}:{digest}:19000:0:99999:7:::\n")
    os.chmod(Path("/etc/netns") / topo.ns("camera") / "shadow", 0o600)


def _sshd_config(work: Path) -> Path:
    key = work / "ssh_host_ed25519_key"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True, timeout=20, capture_output=True)
    cfg = work / "sshd_config"
    base = (
        f"Port 22\nListenAddress 0.0.0.0\nHostKey {key}\nUsePAM no\nPasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin no\nPidFile none\nMaxAuthTries 6\n"
        "MaxStartups 64:30:128\nLoginGraceTime 20\nUseDNS no\n"
    )
    sshd = which("sshd") or "/usr/sbin/sshd"
    # OpenSSH >= 9.8 throttles repeated failures per source; off, so brute force runs on
    cfg.write_text(base + "PerSourcePenalties no\n")
    if subprocess.run([sshd, "-t", "-f", str(cfg)], capture_output=True, timeout=10).returncode:
        cfg.write_text(base)
    return cfg


def _private_login_records(cmd: list[str], work: Path) -> list[str]:
    """``cmd`` run with its own empty /var/log (tmpfs) and /run/utmp, so that the login
    records sshd and login(1) write (btmp, wtmp, lastlog, utmp) stay inside the lab instead
    of landing in the machine's files. ``ip netns exec`` already gave the process a private
    (slave) mount namespace, so these mounts are seen by nothing else."""
    utmp = work / "utmp"
    utmp.touch()
    script = ('mount -t tmpfs -o size=8m,mode=0755 jixiaoan-lab /var/log && '
              '{ [ ! -e /run/utmp ] || mount --bind "$0" /run/utmp; } && exec "$@"')
    return ["sh", "-c", script, str(utmp), *cmd]


def _wait_tcp(topo: Topology, role: str, ip: str, port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = subprocess.run(["ip", "netns", "exec", topo.ns(role), "bash", "-c",
                              f"exec 3<>/dev/tcp/{ip}/{port}"], capture_output=True, timeout=5)
        if res.returncode == 0:
            return
        time.sleep(0.2)
    raise LabError(f"{ip}:{port} did not start listening within {timeout:.0f} s (see logs)")


def start_servers(topo: Topology, work: Path, cfg: BenignConfig = BenignConfig()) -> None:
    """Start the internet-side servers and the camera's web and SSH servers; returns once
    they all accept connections."""
    web = work / "www"
    _write_site(web, max(1, round(cfg.tv_rate_kbps * 1024 * cfg.tv_period_s)))
    cam = work / "camera-www"
    _write_camera_site(cam)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    topo.start("internet", ["busybox", "httpd", "-f", "-p", "80", "-h", str(web)],
               log=logs / "internet-httpd.log")
    topo.start("internet", [
        which("dnsmasq") or "dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv",
        "--no-hosts", "--bind-interfaces", f"--listen-address={DNS_IP}", "--pid-file",
        "--user=root", f"--address=/{BROKER_NAME}/{MQTT_IP}", f"--address=/#/{WEB_IP}",
    ], log=logs / "dnsmasq.log")
    mq = work / "mosquitto.conf"
    mq.write_text(f"listener 1883 {MQTT_IP}\nallow_anonymous true\npersistence false\n"
                  "log_dest stdout\nuser root\n")
    topo.start("internet", [which("mosquitto") or "mosquitto", "-c", str(mq)],
               log=logs / "mosquitto.log")
    topo.start("camera", ["busybox", "httpd", "-f", "-p", "80", "-h", str(cam)],
               log=logs / "camera-httpd.log")
    _camera_accounts(topo)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # OpenSSH's privilege-separation dir
    sshd = [which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(_sshd_config(work))]
    topo.start("camera", _private_login_records(sshd, work), log=logs / "camera-sshd.log")
    waits = [("phone", WEB_IP, 80), ("plug", MQTT_IP, 1883), ("phone", LAN_HOSTS["camera"], 80),
             ("phone", LAN_HOSTS["camera"], 22)]
    if telnet_available():
        conf = work / "inetd.conf"
        conf.write_text(f"23 stream tcp nowait root {which('telnetd')} telnetd -h\n")
        inetd = [which("inetutils-inetd") or "inetutils-inetd", "-d",
                 f"--pidfile={work / 'inetd.pid'}", "-R", "10000", str(conf)]
        topo.start("camera", _private_login_records(inetd, work), log=logs / "camera-inetd.log")
        waits.append(("phone", LAN_HOSTS["camera"], 23))
    for role, ip, port in waits:
        _wait_tcp(topo, role, ip, port)


def telnet_available() -> bool:
    """Whether the camera can run a telnet server (inetutils telnetd under inetutils-inetd,
    installed by ``tools/lab-deps.sh --with-telnet``)."""
    return all(which(p) for p in TELNET_TOOLS)


def start_benign(topo: Topology, work: Path, cfg: BenignConfig = BenignConfig()) -> None:
    """Start the devices' everyday traffic (endless shell loops, stopped when the lab closes)."""
    logs = work / "logs"
    cam_ip = LAN_HOSTS["camera"]
    loops = {
        "camera": f"while :; do curl -s -m 3 -o /dev/null http://camera-cloud.example/ping.txt; "
                  f"sleep {cfg.camera_period_s}; done",
        "plug": f"mosquitto_sub -h {BROKER_NAME} -i plug1-cmd -k 10 -t home/plug1/cmd "
                f">/dev/null & while :; do mosquitto_pub -h {BROKER_NAME} -i plug1 -q 1 "
                "-t home/plug1/power -m \"{\\\"w\\\": $((RANDOM % 60 + 5))}\"; "
                f"sleep {cfg.plug_period_s}; done",
        "tv": f"i=0; while :; do curl -s -m 10 -o /dev/null "
              f"http://{STREAM_NAME}/live/segment.ts?n=$i; i=$((i+1)); "
              f"sleep {cfg.tv_period_s}; done",
        "phone": "i=0; while :; do for s in " + " ".join(PHONE_SITES) + "; do "
                 "dig +short +tries=1 +time=2 $s >/dev/null; "
                 "curl -s -m 5 -o /dev/null http://$s/; "
                 f"i=$((i+1)); [ $((i % 5)) -eq 0 ] && curl -s -m 5 -o /dev/null "
                 f"http://{cam_ip}/snapshot.jpg; sleep {cfg.phone_period_s}; done; done",
    }
    for role, script in loops.items():
        topo.start(role, ["bash", "-c", script], log=logs / f"{role}.log")
