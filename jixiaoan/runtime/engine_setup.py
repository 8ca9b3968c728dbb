"""Engine pieces a monitor needs before it starts: the model, the live site adapter and a
warm-up batch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.engine.site_adapter import LiveAdapter
from jixiaoan.model.verdict import Detector
from jixiaoan.runtime.options import MonitorOptions

log = logging.getLogger(__name__)


def warm_up_frames() -> FrameBatch:
    """A handful of Ethernet frames (TCP, UDP, ICMP over IPv4, UDP over IPv6, ARP)."""
    mac = bytes.fromhex("020000000001") + bytes.fromhex("020000000002")
    ip4 = bytes.fromhex("4500003c00004000400600000a0000010a000002")
    tcp = bytes.fromhex("d431005000000001000000005002ffff00000000") + b"x" * 20
    udp4 = bytes.fromhex("4500003000004000401100000a0000010a000002")
    udp = bytes.fromhex("d431003500140000") + b"q" * 20
    icmp4 = bytes.fromhex("4500001c00004000400100000a0000010a000002")
    icmp = bytes.fromhex("0800000000010001")
    ip6 = bytes.fromhex("6000000000141140") + bytes(15) + b"\x01" + bytes(15) + b"\x02"
    arp = bytes.fromhex("0001080006040001020000000001") + bytes.fromhex("0a000001") + bytes(6)
    arp += bytes.fromhex("0a000002")
    frames = [
        mac + b"\x08\x00" + ip4 + tcp,
        mac + b"\x08\x00" + udp4 + udp,
        mac + b"\x08\x00" + icmp4 + icmp,
        mac + b"\x86\xdd" + ip6 + udp,
        mac + b"\x08\x06" + arp,
    ]
    frames = frames * 4
    return FrameBatch.from_frames(frames, 1_000_000_000.0 + np.arange(len(frames)) * 1e-3)


def load_model(model_dir: str | None) -> Detector | None:
    """The detector saved in ``model_dir`` (None: run without a model)."""
    if not model_dir:
        return None
    from jixiaoan.model.eset import ESeT

    path = Path(model_dir)
    if not (path / "card.json").exists():
        raise ValueError(f"no model at {path} (expected card.json and weights.safetensors)")
    return ESeT.load(str(path))


def live_adapter(
    detector: Detector | None, options: MonitorOptions, saved_after_s: float = 0.0
) -> LiveAdapter | None:
    """The live site adapter: after ``options.adapt_after_s`` seconds when given (0: off;
    ValueError without a trained ESeT model), else after the saved setting when it is on and
    the detector can be adapted (otherwise the monitor runs unadapted, with a log line)."""
    asked = options.adapt_after_s
    after_s = asked if asked is not None else saved_after_s
    if not after_s or after_s <= 0:
        return None
    if detector is None:
        if asked is None:
            return None  # the saved setting does not apply to a monitor without a model
        raise ValueError("site adaptation needs a model")
    from jixiaoan.model.site_eval import labelled_corpus_for

    try:
        return LiveAdapter(
            detector, after_s,
            labelled=lambda: labelled_corpus_for(detector, options.adapt_labels),
            out_dir=options.adapt_out,
            mode=options.adapt_mode,
        )
    except ValueError as exc:
        if asked is not None:
            raise
        log.warning("site adaptation is on in the settings but not possible here: %s", exc)
        return None
