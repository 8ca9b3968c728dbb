"""Ji XiaoAn: a semi-supervised intrusion-detection system for IoT hotspot networks."""

import os as _os

# Idle OpenMP threads must sleep, not spin: the capture, storage and GUI threads share two
# cores with inference (measured: torch streaming 17k -> 92k pkt/s under load). Must be set
# before torch loads, so it lives here; an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
