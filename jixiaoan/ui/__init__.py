"""Desktop app (PyQt5 + pyqtgraph): setup wizard, monitor window, alert popups, tray, settings.

Only showing and configuring lives here: capture, detection, storage and alerting are the
pipeline's (``jixiaoan.runtime.session.MonitorSession`` drives them). The GUI reads the packet
store on a poller thread (``poller``), never per packet, and gets alerts through a queued
signal (``session_control``). ``app.main`` is the entry point.
"""
