"""Runtime: assembles capture, engine, storage and alerts into a running monitor.

The command line (``jixiaoan monitor``, jixiaoan.runtime.cli) and the GUI drive the same
headless object::

    cfg, problems = load_config()
    session = MonitorSession(cfg, MonitorOptions(iface="wlan0", db_path="x.sqlite3",
                                                 model_dir="models/default"))
    session.add_alert_callback(show_popup)   # runs on the engine or timer thread
    session.start()                          # LiveCaptureError: actionable message
    ...  session.status()                    # once a second: MonitorStatus snapshot
    session.apply_config(new_cfg)            # alert / e-mail settings changed
    session.stop()                           # capture off, drain, flush, mailer off

Threads: capture (LiveCapture or ReplaySource) -> FrameQueue -> InferenceWorker (engine,
then the sinks: store submit, alert feed, live device discovery) and a 1 s timer that
re-evaluates the alert policy. The database is written from a child process (ProcessStore)
unless ``MonitorOptions.store_process`` is False. ``jixiaoan.runtime.bench.run_live_bench``
measures the whole chain over a veth pair.
"""

from typing import Any

__all__ = ["DeviceStatus", "MonitorOptions", "MonitorSession", "MonitorStatus"]
_HOMES = {
    "DeviceStatus": "jixiaoan.runtime.status",
    "MonitorOptions": "jixiaoan.runtime.options",
    "MonitorSession": "jixiaoan.runtime.session",
    "MonitorStatus": "jixiaoan.runtime.status",
}


def __getattr__(name: str) -> Any:
    """Import lazily: ``jixiaoan.cli`` and the store's child process import submodules of
    this package and must not pay for the engine's imports."""
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
