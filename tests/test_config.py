"""Settings file: defaults, round trip, damaged files, atomic save, the password store."""

from __future__ import annotations

import json
import os

import pytest

from jixiaoan import config as cfgmod
from jixiaoan.config import (
    Config,
    default_config_path,
    load_config,
    normalize_mac,
    save_config,
)
from jixiaoan.passwords import KEYRING_SERVICE, PASSWORD_ENV, PasswordStore


def test_missing_file_gives_defaults_without_problems(tmp_path):
    cfg, problems = load_config(tmp_path / "nope.json")
    assert cfg == Config() and problems == []
    assert cfg.alerts.threshold == 0.5 and cfg.smtp.security == "starttls"
    assert cfg.resolved_db_path().name == "jixiaoan.sqlite3"
    assert cfg.resolved_model_dir().name == "models"


def test_default_path_is_the_platform_config_folder_unless_overridden(tmp_path, monkeypatch):
    monkeypatch.delenv(cfgmod.CONFIG_ENV, raising=False)
    path = default_config_path()
    assert path.name == "config.json" and "jixiaoan" in path.parts
    monkeypatch.setenv(cfgmod.CONFIG_ENV, str(tmp_path / "x.json"))
    assert default_config_path() == tmp_path / "x.json"
    cfg = Config()
    cfg.model_dir = "/models"
    save_config(cfg)  # no path: the override
    assert load_config()[0].model_dir == "/models"


def test_round_trip_keeps_every_field(tmp_path):
    cfg = Config()
    cfg.alerts.threshold, cfg.alerts.clear_threshold, cfg.alerts.min_packets = 0.8, 0.3, 50
    cfg.alerts.window_s, cfg.alerts.cooldown_s, cfg.alerts.email = 30.0, 60.0, True
    cfg.smtp.server, cfg.smtp.port, cfg.smtp.security = "smtp.example.org", 465, "ssl"
    cfg.smtp.user, cfg.smtp.sender = "alice", "ids@example.org"
    cfg.smtp.recipients = ["a@example.org", "b@example.org"]
    cfg.capture.interface, cfg.capture.bpf_filter, cfg.capture.batch_size = "wlan0", "ip", 256
    cfg.storage.db_path, cfg.storage.retention_rows = "/data/j.sqlite3", 1000
    cfg.model_dir, cfg.adapt_after_s = "/models", 300.0
    cfg.set_device_name("AA-BB-CC-DD-EE-FF", "  客厅摄像头 ")
    path = save_config(cfg, tmp_path / "sub" / "config.json")
    loaded, problems = load_config(path)
    assert problems == [] and loaded == cfg
    assert loaded.device_name("aa:bb:cc:dd:ee:ff") == "客厅摄像头"
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temp file left


def test_corrupt_file_loads_defaults_reports_and_keeps_a_copy(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"alerts": {"threshold": 0.9,', encoding="utf-8")
    cfg, problems = load_config(path)
    assert cfg == Config()
    assert len(problems) == 1 and "not valid JSON" in problems[0]
    assert (tmp_path / "config.json.corrupt").read_text() == '{"alerts": {"threshold": 0.9,'
    path.write_bytes(b"\xff\xfe\x00garbage")
    cfg, problems = load_config(path)
    assert cfg == Config() and len(problems) == 1
    path.write_text("[1, 2, 3]")
    cfg, problems = load_config(path)
    assert cfg == Config() and "expected a table" in problems[0]


def test_old_file_with_missing_and_unknown_fields_still_loads(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "alerts": {"threshold": 0.7},
        "smtp": {"server": "mail.example.org", "legacy_tls": True},
        "theme": "dark",
    }))
    cfg, problems = load_config(path)
    assert cfg.alerts.threshold == 0.7 and cfg.alerts.window_s == 10.0
    assert cfg.smtp.server == "mail.example.org" and cfg.smtp.port == 587
    assert cfg.capture == Config().capture
    assert sorted(p.split(": ", 1)[1] for p in problems) == [
        "smtp.legacy_tls: unknown setting, ignored",
        "theme: unknown setting, ignored",
    ]


def test_wrong_types_and_bad_values_take_defaults_and_are_reported(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "alerts": {"threshold": "high", "min_packets": 2.5, "cooldown_s": -1, "popup": 1,
                   "window_s": 20},
        "smtp": {"port": 70000, "security": "tls", "recipients": ["ok@example.org", 5],
                 "timeout_s": True, "sender": "me@example.org,you@example.org"},
        "capture": "eth0",
        "storage": {"retention_days": None},
        "model_dir": 3,
        "adapt_after_s": -5,
        "device_names": {"not-a-mac": "x", "02:00:00:00:00:01": 7, "02:00:00:00:00:02": "tv"},
    }))
    cfg, problems = load_config(path)
    d = Config()
    assert cfg.alerts.threshold == d.alerts.threshold
    assert cfg.alerts.min_packets == d.alerts.min_packets
    assert cfg.alerts.cooldown_s == d.alerts.cooldown_s
    assert cfg.alerts.popup is True
    assert cfg.alerts.window_s == 20.0 and isinstance(cfg.alerts.window_s, float)
    assert (cfg.smtp.port, cfg.smtp.security, cfg.smtp.recipients) == (587, "starttls", [])
    assert cfg.smtp.timeout_s == d.smtp.timeout_s
    assert cfg.capture == d.capture and cfg.storage == d.storage and cfg.model_dir == ""
    assert cfg.adapt_after_s == 0.0
    assert cfg.device_names == {"02:00:00:00:00:02": "tv"}
    named = " ".join(problems)
    for key in ("alerts.threshold", "alerts.min_packets", "alerts.cooldown_s", "alerts.popup",
                "smtp.port", "smtp.security", "smtp.recipients", "smtp.timeout_s", "smtp.sender",
                "capture",
                "storage.retention_days", "model_dir", "adapt_after_s", "not-a-mac",
                "02:00:00:00:00:01"):
        assert key in named, key
    assert "alerts.window_s" not in named
    assert len(problems) == 15
    assert cfg.smtp.sender == ""


def test_clear_level_above_threshold_is_corrected(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"alerts": {"threshold": 0.4, "clear_threshold": 0.6}}))
    cfg, problems = load_config(path)
    assert cfg.alerts.clear_threshold == 0.4 and "clear_threshold" in problems[0]


def test_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    old = Config()
    old.model_dir = "/old"
    save_config(old, path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(cfgmod.os, "replace", broken_replace)
    new = Config()
    new.model_dir = "/new"
    with pytest.raises(OSError):
        save_config(new, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_device_names_normalised():
    cfg = Config()
    assert normalize_mac("AA:BB:CC:DD:EE:0F") == "aa:bb:cc:dd:ee:0f"
    assert normalize_mac("aabb.ccdd.ee0f") == "aa:bb:cc:dd:ee:0f"
    assert normalize_mac("aa:bb") is None and normalize_mac(12) is None
    cfg.set_device_name("AA-BB-CC-DD-EE-0F", "printer")
    assert cfg.device_name("aa:bb:cc:dd:ee:0f") == "printer" and cfg.device_name("zz") == ""
    cfg.set_device_name("aa:bb:cc:dd:ee:0f", "")
    assert cfg.device_names == {}
    with pytest.raises(ValueError):
        cfg.set_device_name("nonsense", "x")


class MemoryKeyring:
    def __init__(self) -> None:
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service, account):
        return self.store.get((service, account))

    def set_password(self, service, account, password):
        self.store[(service, account)] = password

    def delete_password(self, service, account):
        del self.store[(service, account)]


class BrokenKeyring:
    def get_password(self, service, account):
        raise RuntimeError("no backend available")

    set_password = delete_password = get_password


def test_password_goes_to_the_keyring_never_to_the_file(tmp_path):
    cfg = Config()
    cfg.smtp.server, cfg.smtp.user = "smtp.example.org", "alice"
    ring = MemoryKeyring()
    store = PasswordStore(cfg.smtp.account, backend=ring, environ={})
    assert store.keyring_works()[0]
    assert store.set("Pa55-w0rd!") == (True, "Password saved in the OS keyring.")
    assert ring.store == {(KEYRING_SERVICE, "alice@smtp.example.org"): "Pa55-w0rd!"}
    assert store.get() == "Pa55-w0rd!" and store.source() == "keyring"
    path = save_config(cfg, tmp_path / "config.json")
    assert "Pa55-w0rd" not in path.read_text() and "password" not in path.read_text()
    store.delete()
    assert store.get() is None and store.source() == "none"
    store.delete()  # twice is harmless


def test_without_a_keyring_the_environment_variable_is_used(tmp_path):
    store = PasswordStore("alice@smtp", backend=BrokenKeyring(), environ={PASSWORD_ENV: "envpw"})
    works, why = store.keyring_works()
    assert not works and PASSWORD_ENV in why and "no backend available" in why
    ok, why = store.set("secret")
    assert not ok and PASSWORD_ENV in why
    assert store.get() == "envpw" and store.source() == "environment"
    assert PasswordStore("a", backend=BrokenKeyring(), environ={}).get() is None


def test_a_password_in_the_file_is_ignored_and_dropped_on_save(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"smtp": {"user": "alice", "password": "hunter2"}}))
    cfg, problems = load_config(path)
    assert cfg.smtp.user == "alice" and not hasattr(cfg.smtp, "password")
    assert len(problems) == 1 and "never read from this file" in problems[0]
    save_config(cfg, path)
    assert "hunter2" not in path.read_text()
    assert os.stat(path).st_mode & 0o077 == 0  # readable by the user only
