"""Desktop app (PyQt5 + pyqtgraph): setup wizard, monitor window, alert popups, tray, settings.

Only showing and configuring lives here: capture, detection, storage and alerting are the
pipeline's (``jixiaoan.runtime.session.MonitorSession`` drives them; the GUI runs it in a child
process, ``session_process``, so that its threads never hold up the event loop). The GUI reads
the packet store on a poller thread (``poller``), never per packet, and gets status snapshots
and alerts through queued signals (``session_control``). ``app.main`` is the entry point.
"""
