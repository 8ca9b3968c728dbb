"""Setup wizard with fake adapters, a fake ARP scanner and a fake passive discovery."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402

from jixiaoan.capture.interfaces import InterfaceInfo  # noqa: E402
from jixiaoan.config import Config, load_config  # noqa: E402
from jixiaoan.ui.adapter_cards import CounterRates, preferred_adapter  # noqa: E402
from jixiaoan.ui.wizard import COL_IP, COL_NAME, COL_SEEN, SetupWizard  # noqa: E402

ADAPTERS = [
    InterfaceInfo(name="eth0", description="Ethernet", mac="00:11:22:33:44:55",
                  ipv4=["192.168.1.20/24"], up=True),
    InterfaceInfo(name="wlan1", description="Hotspot Wi-Fi", mac="00:11:22:33:44:66",
                  ipv4=["10.42.0.1/24"], up=True, kind="wireless", looks_like_hotspot=True,
                  hotspot_reason="10.42.0.1/24: NetworkManager shared connection"),
    InterfaceInfo(name="lo", description="lo", ipv4=["127.0.0.1/8"], up=True, loopback=True),
]


@dataclass
class Found:
    ip: str
    mac: str
    vendor: str = ""
    hostname: str = ""


@dataclass
class Seen:
    mac: str
    ip: str = ""
    hostname: str = ""
    vendor: str = ""
    sources: set = field(default_factory=lambda: {"dhcp"})


class FakePassive:
    def __init__(self) -> None:
        self.pending = [Seen("02:00:00:00:00:09", "10.42.0.9", "thermostat")]
        self.stopped = False

    def new_devices(self):
        out, self.pending = self.pending, []
        return out

    def stop(self) -> None:
        self.stopped = True


class FakeScanner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, iface, on_found, timeout):
        self.calls.append(iface)
        devs = [Found("10.42.0.2", "AA-BB-CC-00-00-02", "Espressif"),
                Found("10.42.0.3", "aa:bb:cc:00:00:03", "Tuya")]
        for d in devs:
            on_found(d)
        return [Found("10.42.0.2", "aa:bb:cc:00:00:02", "Espressif", "plug.lan"), devs[1]]


class Counters:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self):
        self.n += 100
        return {"eth0": self.n, "wlan1": 2 * self.n}


def make_wizard(qtbot, tmp_path, cfg=None):
    cfg = cfg or Config()
    scanner, passive = FakeScanner(), FakePassive()
    wiz = SetupWizard(cfg, config_path=str(tmp_path / "config.json"),
                      list_interfaces=lambda: ADAPTERS, scanner=scanner,
                      passive_factory=lambda iface, nets: passive,
                      counters=CounterRates(Counters()))
    qtbot.addWidget(wiz)
    return wiz, scanner, passive


def test_preferred_adapter_is_the_hotspot():
    assert preferred_adapter(ADAPTERS) == 1
    assert preferred_adapter(ADAPTERS[:1] + ADAPTERS[2:]) == 0
    assert preferred_adapter([]) == -1


def test_adapter_page_cards_and_sparklines(qtbot, tmp_path):
    wiz, _, _ = make_wizard(qtbot, tmp_path)
    wiz.show()
    page = wiz.adapter_page
    assert len(page.cards) == 3
    assert page.chosen().name == "wlan1"
    assert "Hotspot" in page.cards[1].hotspot.text()
    assert "10.42.0.1/24" in page.cards[1].details.text()
    page.tick()
    page.tick()
    assert page.cards[1].spark.values[-1] > 0
    assert "pkt/s" in page.cards[1].rate.text()


def test_device_page_lists_scan_and_passive_devices(qtbot, tmp_path):
    cfg = Config()
    cfg.set_device_name("aa:bb:cc:00:00:03", "Door camera")
    wiz, scanner, passive = make_wizard(qtbot, tmp_path, cfg)
    wiz.show()
    wiz.next()
    page = wiz.device_page
    qtbot.waitUntil(lambda: page.table.rowCount() == 3 and page.progress.value() == 100,
                    timeout=5000)
    assert scanner.calls == ["wlan1"]
    names = {page.table.item(r, COL_IP).text(): page.table.item(r, COL_NAME).text()
             for r in range(3)}
    assert names == {"10.42.0.2": "plug.lan", "10.42.0.3": "Door camera",
                     "10.42.0.9": "thermostat"}
    seen = [page.table.item(r, COL_SEEN).text() for r in range(3)]
    assert any("traffic" in s for s in seen)
    assert len(page.chosen()) == 3
    page.set_all(False)
    assert page.chosen() == [] and not page.isComplete()
    page.set_all(True)
    assert page.isComplete()


def test_learning_the_site_can_be_declined_and_the_choice_is_saved(qtbot, tmp_path):
    cfg = Config(adapt_after_s=300.0)
    wiz, _, _ = make_wizard(qtbot, tmp_path, cfg)
    wiz.show()
    wiz.next()
    page = wiz.device_page
    qtbot.waitUntil(lambda: page.table.rowCount() == 3, timeout=5000)
    assert page.learn_check.isChecked() and page.learn_seconds.value() == 300  # the saved value
    page.learn_check.setChecked(False)
    assert not page.learn_seconds.isEnabled()
    wiz.accept()
    assert wiz.learn_seconds() == 0.0
    saved, _ = load_config(tmp_path / "config.json")
    assert saved.adapt_after_s == 0.0


def test_names_are_remembered(qtbot, tmp_path):
    wiz, _, passive = make_wizard(qtbot, tmp_path)
    wiz.show()
    wiz.next()
    page = wiz.device_page
    qtbot.waitUntil(lambda: page.table.rowCount() == 3, timeout=5000)
    row = next(r for r in range(3) if page.table.item(r, COL_IP).text() == "10.42.0.3")
    page.table.item(row, COL_NAME).setText("Baby monitor")
    other = next(r for r in range(3) if page.table.item(r, COL_IP).text() == "10.42.0.9")
    page.table.item(other, COL_NAME).setCheckState(Qt.Unchecked)
    wiz.accept()
    assert passive.stopped
    assert wiz.chosen_interface() == "wlan1"
    chosen = {d.ip: d.name for d in wiz.chosen_devices()}
    assert chosen == {"10.42.0.2": "plug.lan", "10.42.0.3": "Baby monitor"}
    assert wiz.learn_seconds() == 120.0  # learning the site is suggested, two minutes
    cfg, problems = load_config(tmp_path / "config.json")
    assert problems == []
    assert cfg.adapt_after_s == 120.0  # remembered for the next start
    assert cfg.device_name("AA:BB:CC:00:00:03") == "Baby monitor"
    assert cfg.device_name("02:00:00:00:00:09") == ""
