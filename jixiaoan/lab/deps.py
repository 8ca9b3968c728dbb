"""The programs the lab runs, the Debian packages they come from, and installing them with
``tools/lab-deps.sh``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

#: program -> Debian package providing it
TOOLS: dict[str, str] = {
    "ip": "iproute2",
    "sysctl": "procps",
    "tcpdump": "tcpdump",
    "busybox": "busybox",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "openssl": "openssl",
    "mosquitto": "mosquitto",
    "mosquitto_pub": "mosquitto-clients",
    "mosquitto_sub": "mosquitto-clients",
    "dnsmasq": "dnsmasq-base",
    "dig": "bind9-dnsutils",
    "curl": "curl",
    "nmap": "nmap",
    "hping3": "hping3",
    "hydra": "hydra",
    "slowhttptest": "slowhttptest",
    "ab": "apache2-utils",
    "iptables": "iptables",
    # optional (tools/lab-deps.sh --with-telnet): the camera's telnet server
    "telnetd": "inetutils-telnetd",
    "inetutils-inetd": "inetutils-inetd",
}
#: programs installed only by ``tools/lab-deps.sh --with-telnet``
TELNET_TOOLS = ("telnetd", "inetutils-inetd")
_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def lab_deps_script() -> Path:
    """Path of tools/lab-deps.sh in the source checkout."""
    return Path(__file__).resolve().parents[2] / "tools" / "lab-deps.sh"


def which(program: str) -> str | None:
    """Absolute path of ``program`` (also looking in sbin directories, which a non-login
    PATH may lack)."""
    found = shutil.which(program)
    if found:
        return found
    for d in _SBIN:
        p = Path(d) / program
        if p.is_file():
            return str(p)
    return None


def missing_tools(programs: list[str] | None = None) -> dict[str, str]:
    """The programs (of ``programs``, default all) that are not installed, with their package."""
    return {p: TOOLS[p] for p in (programs or list(TOOLS)) if which(p) is None}


def ensure_tools(programs: list[str] | None = None, install: bool = True) -> None:
    """Make sure every program is installed, running tools/lab-deps.sh when one is missing
    (with ``install``); raises RuntimeError naming what is missing otherwise."""
    missing = missing_tools(programs)
    if not missing:
        return
    listing = ", ".join(f"{p} ({pkg})" for p, pkg in sorted(missing.items()))
    script = lab_deps_script()
    if not install or not script.is_file():
        raise RuntimeError(
            f"lab tools missing: {listing}; install them with `bash tools/lab-deps.sh` "
            f"(or apt-get install {' '.join(sorted(set(missing.values())))})"
        )
    args = ["--with-telnet"] if set(missing) & set(TELNET_TOOLS) else []
    print(f"lab: missing {listing}; running {script} {' '.join(args)} (apt-get)", flush=True)
    res = subprocess.run(["bash", str(script), *args], timeout=900)
    still = missing_tools(programs)
    if res.returncode != 0 or still:
        raise RuntimeError(
            f"tools/lab-deps.sh exited {res.returncode}; still missing: "
            + (", ".join(f"{p} ({pkg})" for p, pkg in sorted(still.items())) or "nothing")
        )
