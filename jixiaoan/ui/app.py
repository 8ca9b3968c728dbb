"""Entry point of the desktop app (``jixiaoan-gui``, main.py): wizard, then the monitor.

``--demo`` skips the wizard and replays the bundled demo capture (assets/demo/) with the
bundled model (models/default/) into a temporary database. Missing capture rights (no root /
CAP_NET_RAW on Linux, no administrator or no Npcap on Windows) give a dialog, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import traceback
from pathlib import Path

from jixiaoan.config import load_config

log = logging.getLogger(__name__)
NPCAP_URL = "https://npcap.com"


def resource_root() -> Path:
    """Folder holding models/ and assets/: the PyInstaller bundle, else the source checkout."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle)
    return Path(__file__).resolve().parents[2]


def demo_capture(root: Path | None = None) -> Path | None:
    """The bundled demo capture (first of assets/demo/*.pcap, *.pcapng), None when missing."""
    folder = (root or resource_root()) / "assets" / "demo"
    found = sorted(folder.glob("*.pcap")) + sorted(folder.glob("*.pcapng"))
    return found[0] if found else None


def bundled_model(root: Path | None = None) -> Path | None:
    """models/default when it holds a saved model, else None (packets stay unclassified)."""
    folder = (root or resource_root()) / "models" / "default"
    return folder if (folder / "card.json").exists() else None


def model_for(cfg) -> str | None:
    """The model folder to use: the configured one if saved there, else the bundled one."""
    configured = cfg.resolved_model_dir()
    if (configured / "card.json").exists():
        return str(configured)
    bundled = bundled_model()
    return str(bundled) if bundled else None


GUI_SWITCH_INTERVAL_S = 0.001


def tune_interpreter() -> None:
    """Interpreter settings of the GUI process: the GIL switch interval (the pipeline's Python
    threads share the interpreter with the event loop; see benchmarks/bench_gui.py)."""
    sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the GUI."""
    p = argparse.ArgumentParser(prog="jixiaoan-gui", description="Ji XiaoAn desktop app")
    p.add_argument("--demo", action="store_true",
                   help="replay the bundled demo capture with the bundled model")
    p.add_argument("--replay", metavar="PCAP", help="replay this capture instead of the wizard")
    p.add_argument("--speed", type=float, default=None,
                   help="replay pace (1 = as recorded, 0 = as fast as possible)")
    p.add_argument("--model", metavar="DIR", help="model folder (default: configured/bundled)")
    p.add_argument("--config", metavar="FILE", help="settings file (default: platform folder)")
    p.add_argument("--db", metavar="FILE", help="packet database for a live run")
    return p


def permission_text(problem: str) -> str:
    """The dialog text for missing capture rights."""
    if "npcap" in problem.lower():
        return (f"{problem}\n\nNpcap is the packet-capture driver Ji XiaoAn needs on Windows. "
                f"Download it from {NPCAP_URL}, install it (keep 'WinPcap API-compatible mode' "
                "on), then start Ji XiaoAn again as administrator.")
    return (f"Live capture is not possible: {problem}.\n\nYou can still open a capture file "
            "or watch the demo.")


def _install_excepthook() -> None:
    from PyQt5.QtWidgets import QApplication, QMessageBox

    def hook(kind, value, tb) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        log.error("unhandled error:\n%s", text)
        sys.stderr.write(text)
        if QApplication.instance() is not None:
            box = QMessageBox(QMessageBox.Critical, "Ji XiaoAn: unexpected error",
                              f"{kind.__name__}: {value}")
            box.setDetailedText(text)
            box.exec_()

    sys.excepthook = hook


def ask_without_rights(problem: str) -> str:
    """Dialog for missing capture rights; returns 'open', 'demo' or 'quit'."""
    from PyQt5.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Warning, "Ji XiaoAn: no capture rights", permission_text(problem))
    open_b = box.addButton("Open a capture file...", QMessageBox.AcceptRole)
    demo_b = box.addButton("Watch the demo", QMessageBox.ActionRole) if demo_capture() else None
    box.addButton("Quit", QMessageBox.RejectRole)
    box.exec_()
    clicked = box.clickedButton()
    if clicked is open_b:
        return "open"
    if demo_b is not None and clicked is demo_b:
        return "demo"
    return "quit"


DEMO_BASELINE_S = 20.0  # the demo's first 23 s are benign (assets/demo/phases.csv)


def demo_options(speed: float | None = None, model: str | None = None):
    """MonitorOptions replaying the demo capture into a temporary database; the model learns
    the demo network's normal traffic from its attack-free first ``DEMO_BASELINE_S`` seconds
    (the site baseline gate, ``jixiaoan.model.site_gate``)."""
    from jixiaoan.runtime.options import MonitorOptions

    pcap = demo_capture()
    if pcap is None:
        raise FileNotFoundError(f"no demo capture in {resource_root() / 'assets' / 'demo'}")
    model_dir = model or (str(bundled_model()) if bundled_model() else None)
    db = Path(tempfile.mkdtemp(prefix="jixiaoan-demo-")) / "demo.sqlite3"
    return MonitorOptions(replay=str(pcap), speed=1.0 if speed is None else speed,
                          model_dir=model_dir, db_path=str(db),
                          adapt_after_s=DEMO_BASELINE_S if model_dir else None)


def main(argv: list[str] | None = None) -> int:
    """Run the desktop app; returns the exit status."""
    import multiprocessing

    multiprocessing.freeze_support()  # the frozen app's monitor child process starts here
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from PyQt5.QtCore import Qt
    from PyQt5.QtWidgets import QApplication, QMessageBox

    tune_interpreter()
    QApplication.setAttribute(Qt.AA_EnableHighDpiScaling, True)
    app = QApplication.instance() or QApplication(["jixiaoan-gui"])
    app.setApplicationName("Ji XiaoAn")
    app.setOrganizationName("jixiaoan")
    app.setQuitOnLastWindowClosed(True)
    from jixiaoan.ui import icons
    from jixiaoan.ui.monitor import MonitorWindow

    app.setWindowIcon(icons.app_icon())
    _install_excepthook()
    cfg, problems = load_config(args.config)
    for p in problems:
        log.warning("settings: %s", p)
    options = None
    try:
        if args.demo:
            options = demo_options(args.speed, args.model)
        elif args.replay:
            from jixiaoan.runtime.options import MonitorOptions

            options = MonitorOptions(replay=args.replay, speed=args.speed or 0.0,
                                     model_dir=args.model or model_for(cfg))
        else:
            options = _wizard_options(cfg, args)
            if options == "quit":
                return 0
    except FileNotFoundError as exc:
        QMessageBox.critical(None, "Ji XiaoAn", str(exc))
        return 1
    window = MonitorWindow(cfg, None, config_path=args.config)
    if problems:
        window.statusBar().showMessage(f"Settings: {problems[0]}", 15_000)
    window.show()
    if options == "open":
        window.open_capture()
    elif options is not None:
        window.start_monitoring(options)
    return app.exec_()


def _wizard_options(cfg, args):
    """Run the wizard (after the capture-rights check); MonitorOptions, 'open' or 'quit'."""
    from jixiaoan.capture.interfaces import capture_permission_problem

    problem = capture_permission_problem()
    if problem:
        choice = ask_without_rights(problem)
        if choice == "demo":
            return demo_options(args.speed, args.model)
        return choice
    from jixiaoan.ui.wizard import SetupWizard

    wizard = SetupWizard(cfg, config_path=args.config)
    if not wizard.exec_():
        return "quit"
    from jixiaoan.runtime.options import MonitorOptions

    # the wizard saved its learning choice in cfg.adapt_after_s, which the session applies
    # (without a model that can learn, the monitor runs unadapted and says so in the log)
    return MonitorOptions(iface=wizard.chosen_interface(), devices=wizard.chosen_devices(),
                          model_dir=args.model or model_for(cfg), db_path=args.db or "")
