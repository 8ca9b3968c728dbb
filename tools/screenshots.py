"""Screenshots of the desktop app for the docs, taken under Xvfb.

    .venv/bin/python tools/screenshots.py [--pcap FILE] [--model DIR] [--seconds 20]
        [--speed 1] [--adapt-after 20]

Starts Xvfb (unless DISPLAY is set or --no-xvfb), shows the setup wizard (adapter page and
device page; with --real-adapters the machine's own adapters and a real ARP scan, otherwise an
illustrative hotspot set-up), then replays the demo capture (assets/demo/, or --pcap) with
the bundled model through the monitor window at its recorded pace, and saves PNGs into
docs/screenshots/: wizard-adapters, wizard-devices, monitor-all-malicious, monitor-device,
hexdump, alert-popup, settings.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"


def start_xvfb(display: str = ":97") -> subprocess.Popen | None:
    """Start Xvfb on ``display`` and point DISPLAY at it."""
    exe = shutil.which("Xvfb")
    if exe is None:
        sys.exit("Xvfb is missing: apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 "
                 "libxcb-xinerama0 libxcb-render-util0 libxcb-image0 libxkbcommon-x11-0")
    proc = subprocess.Popen([exe, display, "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    os.environ["DISPLAY"] = display
    os.environ.pop("QT_QPA_PLATFORM", None)
    return proc


def pump(app, seconds: float) -> None:
    """Run the event loop for a while."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def save(widget, name: str) -> Path:
    """Grab a widget (window frame excluded) into docs/screenshots/<name>.png."""
    path = OUT / f"{name}.png"
    widget.grab().save(str(path), "PNG")
    print(path.relative_to(ROOT))
    return path


# -- an illustrative hotspot set-up for the wizard (unless --real-adapters) ------------------
@dataclass
class _Found:
    ip: str
    mac: str
    vendor: str = ""
    hostname: str = ""
    sources: set = field(default_factory=lambda: {"dhcp"})


def _showcase_adapters() -> list:
    from jixiaoan.capture.interfaces import InterfaceInfo, hotspot_reason

    hot = ["192.168.137.1/24"]
    return [
        InterfaceInfo("Ethernet", "Intel(R) Ethernet Connection I219-V", "3c:52:82:10:aa:01",
                      ["192.168.1.23/24"], ["fe80::1c2a:5b1f:9e01:77a2/64"], up=True),
        InterfaceInfo("Local Area Connection* 10", "Microsoft Wi-Fi Direct Virtual Adapter #2",
                      "3e:52:82:10:aa:02", hot, up=True, kind="wireless",
                      looks_like_hotspot=True, hotspot_reason=hotspot_reason(hot)),
        InterfaceInfo("vEthernet (WSL)", "Hyper-V Virtual Ethernet Adapter", "00:15:5d:4e:10:03",
                      ["172.29.160.1/20"], up=True),
    ]


def _showcase_scanner(iface, on_found, timeout):
    found = [_Found("192.168.137.12", "24:0a:c4:3b:91:5e", "Espressif Inc.", "smart-plug"),
             _Found("192.168.137.47", "d8:f1:5b:22:0c:71", "Espressif Inc."),
             _Found("192.168.137.88", "b0:c5:54:6a:3f:10", "D-Link International",
                    "ipcam-hall")]
    for f in found:
        time.sleep(0.2)
        on_found(f)
    return found


class _ShowcaseCounters:
    """Made-up packet counters for the illustrative adapters (busy hotspot, quiet rest)."""

    def __init__(self) -> None:
        import random

        self.rng = random.Random(7)
        self.total = {"Ethernet": 0, "Local Area Connection* 10": 0, "vEthernet (WSL)": 0}

    def __call__(self) -> dict[str, int]:
        mean = {"Ethernet": 90, "Local Area Connection* 10": 900, "vEthernet (WSL)": 4}
        for k, m in mean.items():
            self.total[k] += int(self.rng.expovariate(1 / m))
        return dict(self.total)


class _ShowcasePassive:
    def __init__(self) -> None:
        self.left = [_Found("192.168.137.130", "7c:2f:80:91:aa:02", "Gigaset", "thermostat",
                            {"dhcp", "mdns"})]

    def new_devices(self):
        out, self.left = self.left, []
        return out

    def stop(self) -> None:
        pass


def shoot_wizard(app, cfg, real: bool) -> None:
    """Both wizard pages."""
    from jixiaoan.ui.adapter_cards import CounterRates
    from jixiaoan.ui.wizard import SetupWizard

    kw = {} if real else dict(list_interfaces=_showcase_adapters, scanner=_showcase_scanner,
                              passive_factory=lambda iface, nets: _ShowcasePassive(),
                              counters=CounterRates(_ShowcaseCounters()))
    if not real:
        cfg.set_device_name("b0:c5:54:6a:3f:10", "Hall camera")
    wiz = SetupWizard(cfg, config_path=os.devnull, **kw)
    wiz.show()
    if not real:  # fill the sparklines with a minute of made-up readings
        page = wiz.adapter_page
        page.timer.stop()
        for i in range(60):
            rates = page.rates.sample(float(i))
            for card in page.cards:
                if rates:
                    card.add_rate(rates.get(card.info.name, 0.0))
    pump(app, 1.5)
    save(wiz, "wizard-adapters")
    wiz.next()
    pump(app, 3.0)
    save(wiz, "wizard-devices")
    wiz.device_page.stop_passive()
    wiz.hide()
    wiz.deleteLater()


def shoot_monitor(app, cfg, pcap: str, model: str | None, seconds: float, speed: float,
                  adapt_after: float | None = None) -> None:
    """Monitor window during a replay, a hex dump, a popup and the settings dialog."""
    from jixiaoan.runtime.options import MonitorOptions
    from jixiaoan.ui.monitor import MonitorWindow

    window = MonitorWindow(cfg)
    window.resize(1360, 860)
    window.show()
    db = Path(os.environ.get("TMPDIR", "/tmp")) / f"jixiaoan-shots-{os.getpid()}.sqlite3"
    window.start_monitoring(MonitorOptions(replay=pcap, speed=speed, model_dir=model,
                                           db_path=str(db), adapt_after_s=adapt_after))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pump(app, 0.5)
        st = window.controller.status()
        if st is not None and st.finished:
            pump(app, 2.0)
            break
    save(window, "monitor-all-malicious")
    tabs = list(window.device_tabs.values())
    if tabs:
        busiest = max(tabs, key=lambda t: (t.info.rows_malicious, t.info.rows_total))
        window.tabs.setCurrentWidget(busiest)
        pump(app, 1.5)
        save(window, "monitor-device")
        model_ = busiest.model
        if model_.rowCount():
            r = next((i for i in range(model_.rowCount() - 1, -1, -1)
                      if model_.row_at(i).is_bad == 1), model_.rowCount() - 1)
            busiest.view.selectRow(r)
            full = window._fetch_row(busiest.info.table_name, model_.row_at(r))
            dlg = window._open_dump(full or model_.row_at(r), busiest.info.name)
            pump(app, 0.5)
            save(dlg, "hexdump")
            dlg.close()
    popups = window.alerts.visible_popups()
    if popups:
        save(popups[0], "alert-popup")
    else:
        print("no alert fired during the replay: no alert-popup.png", file=sys.stderr)
    from jixiaoan.ui.settings import SettingsDialog

    dlg = SettingsDialog(cfg, os.devnull, parent=window)
    dlg.show()
    pump(app, 0.5)
    save(dlg, "settings")
    dlg.close()
    window.shutdown()
    window.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Screenshots of the desktop app under Xvfb")
    p.add_argument("--pcap", help="capture to replay (default: the bundled demo)")
    p.add_argument("--model", help="model folder (default: models/default when present)")
    p.add_argument("--seconds", type=float, default=20.0, help="replay time before the shots")
    p.add_argument("--speed", type=float, default=1.0, help="replay pace (0 = full speed)")
    p.add_argument("--adapt-after", type=float, default=None,
                   help="learn the site's first SECONDS first (the demo: 20, as the app does)")
    p.add_argument("--real-adapters", action="store_true", help="the machine's own adapters")
    p.add_argument("--no-xvfb", action="store_true", help="use the current DISPLAY")
    args = p.parse_args(argv)
    xvfb = None if args.no_xvfb or os.environ.get("DISPLAY") else start_xvfb()
    try:
        from PyQt5.QtWidgets import QApplication

        from jixiaoan.config import Config
        from jixiaoan.ui import icons
        from jixiaoan.ui.app import bundled_model, demo_capture

        OUT.mkdir(parents=True, exist_ok=True)
        app = QApplication.instance() or QApplication(["jixiaoan-screenshots"])
        app.setWindowIcon(icons.app_icon())
        cfg = Config()
        shoot_wizard(app, cfg, args.real_adapters)
        pcap = args.pcap or (str(demo_capture()) if demo_capture() else None)
        if pcap is None:
            print("no demo capture and no --pcap: monitor not shot", file=sys.stderr)
            return 1
        model = args.model or (str(bundled_model()) if bundled_model() else None)
        cfg.alerts.min_packets = 10
        cfg.alerts.cooldown_s = 30.0
        shoot_monitor(app, cfg, pcap, model, args.seconds, args.speed, args.adapt_after)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
