"""Ji XiaoAn: a semi-supervised intrusion-detection system for IoT hotspot networks."""

__version__ = "0.1.0"
