"""What a lab run leaves behind: the whole recording, one capture per phase, labels.csv in the
corpus format and the phases file.

labels.csv holds one row per pcap and one attack family per row, so the recording is also
written cut at every phase start into ``segments/NN-<phase>.pcap`` (an attack's segment runs
until the next phase starts, so it holds the attack's tail and the quiet gap after it).
labels.csv lists these segments: benign phases ``benign``; attack phases ``malicious`` with
the attack's family and the attacker's address in ``hosts`` (so only packets to or from the
attacker count as malicious). ``capture.labels.csv`` labels the whole ``capture.pcap`` in one
row naming the attack family with the most attacker packets (every attacker packet is
malicious either way; only the family column is approximate there). Both files are read by
:func:`jixiaoan.features.labels.read_labels` and by ``jixiaoan evaluate``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from jixiaoan.capture.batch import LINKTYPE_ETHERNET, HeaderBatch, ip_from_str
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.pcapwriter import PcapWriter

PHASE_COLUMNS = ("index", "kind", "attack", "family", "target", "target_ip", "start", "end",
                 "segment", "exit_code", "packets", "attacker_packets", "command")


@dataclass
class Phase:
    """One scheduled period: benign traffic only, or one attack (plus benign traffic)."""

    kind: str  # "benign" or "attack"
    attack: str = ""  # attack name
    family: str = ""  # attack family (labels.csv `attack`)
    target: str = ""
    target_ip: str = ""
    params: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # planned length of a benign phase
    start: float = 0.0  # epoch seconds, the capture's clock
    end: float = 0.0  # when the attack tool exited or was stopped (benign: phase end)
    segment: str = ""  # segment pcap, relative to the output folder
    exit_code: int | None = None
    command: list[str] = field(default_factory=list)
    packets: int = 0
    attacker_packets: int = 0

    @property
    def label(self) -> str:
        """labels.csv label of the phase's segment."""
        return "malicious" if self.kind == "attack" else "benign"


def host_mask(headers: HeaderBatch, addr: str, arp: bool = False) -> np.ndarray:
    """Boolean mask of packets whose IP source or destination is ``addr`` (the packets a
    labels.csv row with ``addr`` in ``hosts`` marks); with ``arp`` also ARP packets whose
    sender or target address is ``addr``."""
    key = np.frombuffer(ip_from_str(addr), np.uint8)
    hit = np.all(headers.src_ip == key, axis=1) | np.all(headers.dst_ip == key, axis=1)
    if arp:
        return hit
    return hit & ((headers.ip_version == 4) | (headers.ip_version == 6))


def split_capture(capture: Path, out_dir: Path, phases: list[Phase],
                  attacker_ip: str) -> None:
    """Write each phase's segment of ``capture`` (cut at phase starts) and fill in the
    phases' ``segment``, ``packets`` and ``attacker_packets``."""
    seg_dir = out_dir / "segments"
    seg_dir.mkdir(parents=True, exist_ok=True)
    for old in seg_dir.glob("[0-9][0-9]-*.pcap"):  # segments of an earlier run in this folder
        old.unlink()
    cuts = np.array([p.start for p in phases[1:]], np.float64)
    writers = []
    for i, p in enumerate(phases):
        p.segment = f"segments/{i:02d}-{p.attack or 'benign'}.pcap"
        writers.append(PcapWriter(out_dir / p.segment, linktype=LINKTYPE_ETHERNET))
    try:
        for batch in read_capture(capture):
            which = np.searchsorted(cuts, batch.ts, side="right")
            attacker = host_mask(parse_headers(batch), attacker_ip)
            for i, p in enumerate(phases):
                idx = np.flatnonzero(which == i)
                if len(idx):
                    writers[i].write(batch.take(idx))
                    p.packets += len(idx)
                    p.attacker_packets += int(attacker[idx].sum())
    finally:
        for w in writers:
            w.close()


def write_labels(out_dir: Path, phases: list[Phase], attacker_ip: str) -> None:
    """Write labels.csv (one row per segment) and capture.labels.csv (the whole capture)."""
    with open(out_dir / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["pcap", "label", "attack", "hosts"])
        for p in phases:
            malicious = p.kind == "attack"
            w.writerow([p.segment, p.label, p.family if malicious else "",
                        attacker_ip if malicious else ""])
    attacks = [p for p in phases if p.kind == "attack"]
    by_family: dict[str, int] = {}
    for p in attacks:
        by_family[p.family] = by_family.get(p.family, 0) + p.attacker_packets
    with open(out_dir / "capture.labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["pcap", "label", "attack", "hosts"])
        if attacks:
            dominant = max(by_family, key=lambda f: by_family[f])
            w.writerow(["capture.pcap", "malicious", dominant, attacker_ip])
        else:
            w.writerow(["capture.pcap", "benign", "", ""])


def write_phases(out_dir: Path, phases: list[Phase], meta: dict) -> None:
    """Write phases.csv (one row per phase) and phases.json (the same plus run metadata)."""
    with open(out_dir / "phases.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(PHASE_COLUMNS)
        for i, p in enumerate(phases):
            w.writerow([i, p.kind, p.attack, p.family, p.target, p.target_ip, f"{p.start:.6f}",
                        f"{p.end:.6f}", p.segment, "" if p.exit_code is None else p.exit_code,
                        p.packets, p.attacker_packets, " ".join(p.command)])
    doc = {**meta, "phases": [asdict(p) for p in phases]}
    (out_dir / "phases.json").write_text(json.dumps(doc, indent=1) + "\n")


def read_phases(path: Path) -> list[dict]:
    """Rows of a phases.csv as dicts (start/end as floats)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["start"], r["end"] = float(r["start"]), float(r["end"])
    return rows
