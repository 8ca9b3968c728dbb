"""User settings: one JSON file in the platform's config folder (the SMTP password is kept apart).

``load_config`` never raises: a missing file gives the defaults, and a corrupt file, unknown
fields, fields of the wrong type or out-of-range values give the defaults for what is bad and a
list of human-readable problems. ``save_config`` writes atomically (temp file + ``os.replace``).

The SMTP password is never part of the file: ``jixiaoan.passwords.PasswordStore`` keeps it in
the OS keyring (service ``jixiaoan-smtp``) and, when no keyring backend works, reads it from
the environment variable ``JIXIAOAN_SMTP_PASSWORD`` instead.

This module sits beside the pipeline stages and imports none of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "jixiaoan"
CONFIG_FILE_NAME = "config.json"
CONFIG_ENV = "JIXIAOAN_CONFIG"  # overrides the config file location (tests, portable installs)
FORMAT_VERSION = 1
SMTP_SECURITY_CHOICES = ("starttls", "ssl", "none")


def _check(test: Callable[[Any], bool], why: str) -> dict[str, Any]:
    """Field metadata: a validity test and the reason shown when it fails."""
    return {"check": test, "why": why}


def _share(v: float) -> bool:
    return 0.0 <= v <= 1.0


def _positive(v: float) -> bool:
    return v > 0


def _non_negative(v: float) -> bool:
    return v >= 0


_ADDRESS_FORBIDDEN = set(',;<>"()[]\\:')


def is_email_address(v: object) -> bool:
    """A plain ``local@domain`` address: one '@', both parts present, no spaces, control
    characters or address-list punctuation (so it cannot smuggle a second address)."""
    if not isinstance(v, str) or v.count("@") != 1 or v.startswith("@") or v.endswith("@"):
        return False
    return not any(
        c.isspace() or ord(c) < 32 or ord(c) == 127 or c in _ADDRESS_FORBIDDEN for c in v
    )


@dataclass
class AlertSettings:
    """When a device's malicious share raises an alert (see jixiaoan.alerts.policy)."""

    threshold: float = field(default=0.5, metadata=_check(_share, "a share between 0 and 1"))
    clear_threshold: float = field(default=0.25, metadata=_check(_share, "a share between 0 and 1"))
    window_s: float = field(default=10.0, metadata=_check(_positive, "more than 0 seconds"))
    min_packets: int = field(default=20, metadata=_check(_non_negative, "0 or more"))
    cooldown_s: float = field(default=300.0, metadata=_check(_non_negative, "0 or more seconds"))
    popup: bool = True
    email: bool = False


@dataclass
class SmtpSettings:
    """Outgoing mail server. The password is not here: see PasswordStore."""

    server: str = ""
    port: int = field(default=587, metadata=_check(lambda v: 1 <= v <= 65535, "1 to 65535"))
    security: str = field(
        default="starttls",
        metadata=_check(lambda v: v in SMTP_SECURITY_CHOICES, " or ".join(SMTP_SECURITY_CHOICES)),
    )
    user: str = ""
    sender: str = field(
        default="", metadata=_check(lambda v: v == "" or is_email_address(v), "an e-mail address")
    )
    recipients: list[str] = field(
        default_factory=list,
        metadata=_check(lambda v: all(map(is_email_address, v)), "a list of e-mail addresses"),
    )
    timeout_s: float = field(default=20.0, metadata=_check(_positive, "more than 0 seconds"))

    @property
    def account(self) -> str:
        """The key the password is stored under: ``user@server`` (or just the server)."""
        return f"{self.user}@{self.server}" if self.user else self.server


@dataclass
class CaptureSettings:
    """Live capture: adapter, kernel filter and batching."""

    interface: str = ""
    bpf_filter: str = ""
    batch_size: int = field(default=1024, metadata=_check(_positive, "more than 0"))
    # capture batches waiting for the engine; packets and bytes bound the memory (MonitorOptions).
    # At 100k pkt/s a batch holds ~500 packets, so 64 batches buffered only ~0.3 s and dropped
    # bursts that 1,024 rode out (BENCHMARKS.md, session 6)
    queue_size: int = field(default=1024, metadata=_check(_positive, "more than 0"))


@dataclass
class StorageSettings:
    """The packet database; an empty ``db_path`` means the platform's data folder."""

    db_path: str = ""
    retention_rows: int = field(default=5_000_000, metadata=_check(_non_negative, "0 or more"))
    retention_days: float = field(default=7.0, metadata=_check(_non_negative, "0 or more"))


@dataclass
class Config:
    """All user settings. ``device_names`` maps a MAC (``aa:bb:cc:dd:ee:ff``) to a given name."""

    alerts: AlertSettings = field(default_factory=AlertSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    model_dir: str = ""
    # adapt the model to the watched network on its first this many seconds (0: never)
    adapt_after_s: float = field(default=0.0, metadata=_check(_non_negative, "0 or more seconds"))
    device_names: dict[str, str] = field(default_factory=dict)

    def resolved_db_path(self) -> Path:
        """The database file to use (the configured one, else the default location)."""
        if self.storage.db_path:
            return Path(self.storage.db_path)
        return default_data_dir() / "jixiaoan.sqlite3"

    def resolved_model_dir(self) -> Path:
        """The model folder to use (the configured one, else the default location)."""
        return Path(self.model_dir) if self.model_dir else default_data_dir() / "models"

    def device_name(self, mac: str) -> str:
        """The name the user gave the device with this MAC ('' when none)."""
        key = normalize_mac(mac)
        return self.device_names.get(key, "") if key else ""

    def set_device_name(self, mac: str, name: str) -> None:
        """Remember (or, with an empty name, forget) the user's name for a device."""
        key = normalize_mac(mac)
        if key is None:
            raise ValueError(f"not a MAC address: {mac!r}")
        name = name.strip()
        if name:
            self.device_names[key] = name
        else:
            self.device_names.pop(key, None)


_MAC_RE = re.compile(r"^[0-9a-f]{12}$")


def normalize_mac(text: str) -> str | None:
    """``AA-BB-CC-DD-EE-FF`` and friends to ``aa:bb:cc:dd:ee:ff``; None when not a MAC."""
    if not isinstance(text, str):
        return None
    digits = text.strip().lower().replace(":", "").replace("-", "").replace(".", "")
    if not _MAC_RE.match(digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def default_config_path() -> Path:
    """``$JIXIAOAN_CONFIG`` when set, else config.json in the platform's config folder."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / CONFIG_FILE_NAME


def default_data_dir() -> Path:
    """The platform's per-user data folder for jixiaoan (not created here)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


# ---------------------------------------------------------------------------------------------
# Loading: tolerant, field by field.


def _type_ok(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``hint``; returns the (possibly widened) value."""
    origin = typing.get_origin(hint)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok and value == value, float(value) if ok else value  # NaN is refused
    if hint is str:
        return isinstance(value, str), value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            return False, value
        checked = [_type_ok(v, item) for v in value]
        return all(ok for ok, _ in checked), [v for _, v in checked]
    if origin is dict:
        return isinstance(value, dict), value
    if origin in (types.UnionType, typing.Union):
        for arm in typing.get_args(hint):
            ok, widened = _type_ok(value, arm)
            if ok:
                return True, widened
        return False, value
    raise TypeError(f"unsupported config annotation {hint!r}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _load_section(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    """Build dataclass ``cls`` from ``data``; bad or missing fields take their defaults."""
    obj = cls()
    if not isinstance(data, dict):
        found = type(data).__name__
        problems.append(f"{where or 'file'}: expected a table of settings, found {found}; defaults")
        return obj
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            path = f"{where}.{key}" if where else key
            if key == "password":
                problems.append(
                    f"{path}: passwords are never read from this file (use the keyring); ignored"
                )
            else:
                problems.append(f"{path}: unknown setting, ignored")
    for name, f in known.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            continue  # an older file: the default stays, silently
        value, hint = data[name], hints[name]
        if is_dataclass(hint):
            setattr(obj, name, _load_section(hint, value, path, problems))
            continue
        ok, value = _type_ok(value, hint)
        if not ok:
            want = _type_name(hint)
            problems.append(f"{path}: expected {want}, found {data[name]!r}; using the default")
            continue
        check = f.metadata.get("check")
        if check is not None and not check(value):
            problems.append(f"{path}: {value!r} is not {f.metadata['why']}; using the default")
            continue
        setattr(obj, name, value)
    return obj


def _clean_device_names(raw: dict[str, Any], problems: list[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for mac, name in raw.items():
        key = normalize_mac(mac)
        if key is None:
            problems.append(f"device_names: {mac!r} is not a MAC address; ignored")
        elif not isinstance(name, str):
            problems.append(f"device_names.{mac}: expected str, found {name!r}; ignored")
        elif name.strip():
            names[key] = name.strip()
    return names


def config_from_dict(data: Any) -> tuple[Config, list[str]]:
    """A Config from parsed JSON data, with the problems found (never raises)."""
    problems: list[str] = []
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "version"}
    cfg = _load_section(Config, data, "", problems)
    cfg.device_names = _clean_device_names(cfg.device_names, problems)
    a = cfg.alerts
    if a.clear_threshold > a.threshold:
        problems.append(
            f"alerts.clear_threshold {a.clear_threshold} is above alerts.threshold {a.threshold}; "
            "using the threshold as the clear level"
        )
        a.clear_threshold = a.threshold
    return cfg, problems


def load_config(path: str | os.PathLike[str] | None = None) -> tuple[Config, list[str]]:
    """Read the settings; returns the Config and the problems found (never raises).

    A corrupt file is copied to ``<name>.corrupt`` (best effort) so that the next save does
    not destroy what the user wrote.
    """
    p = Path(path) if path is not None else default_config_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(), []
    except (OSError, UnicodeDecodeError) as exc:
        return Config(), [f"{p}: cannot be read ({exc}); using defaults"]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        backup = p.with_name(p.name + ".corrupt")
        try:
            shutil.copyfile(p, backup)
            kept = f"; the file was copied to {backup}"
        except OSError:
            kept = ""
        return Config(), [f"{p}: not valid JSON ({exc}); using defaults{kept}"]
    cfg, problems = config_from_dict(data)
    return cfg, [f"{p}: {msg}" for msg in problems]


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The JSON-ready form of a Config (what ``save_config`` writes)."""
    return {"version": FORMAT_VERSION, **asdict(cfg)}


def save_config(cfg: Config, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the settings atomically (temp file in the same folder, then ``os.replace``)."""
    p = Path(path) if path is not None else default_config_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config_to_dict(cfg), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p
