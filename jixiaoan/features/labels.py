"""Ground-truth labels: the corpus ``labels.csv`` and CIC-IDS2017-style flow CSVs.

``labels.csv`` (shared/datasets/README.md): columns ``pcap,label,attack,hosts``; ``pcap`` is
relative to the CSV's folder; ``label`` is ``benign`` or ``malicious``; empty ``hosts`` means
the label applies to every packet of the file, otherwise a packet whose source or destination
address (IP header for IPv4/IPv6 entries, Ethernet header for MAC entries) is listed carries
the row's label and every other packet of that file is benign.

CIC flow CSVs (CIC-IDS2017 / CSE-CIC-IDS2018 ``*.pcap_ISCX.csv``): one row per flow with
``Source IP, Source Port, Destination IP, Destination Port, Protocol, Timestamp,
Flow Duration`` (microseconds) and ``Label`` (``BENIGN`` or an attack name). A packet belongs
to a flow with its 5-tuple (either direction) whose time span, widened by the timestamp's
resolution, contains the packet's time.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from jixiaoan.capture.batch import HeaderBatch, ip_from_str, mac_from_str
from jixiaoan.features.sessions import KEY_WIDTH, be_bytes, lexicographic_le, session_keys

LABEL_COLUMNS = ("pcap", "label", "attack", "hosts")
LABEL_VALUES = ("benign", "malicious")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])([0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$")
_ATTACK_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class LabelsError(ValueError):
    """A labels file that does not follow its format; names the file and line."""


@dataclass(frozen=True)
class LabelRow:
    """One row of labels.csv, with its capture path resolved and its hosts parsed."""

    pcap: str  # as written, relative to the CSV's folder
    path: Path  # absolute path of the capture
    label: str  # "benign" or "malicious"
    attack: str  # "" for benign
    hosts: tuple[str, ...]  # as written
    line: int  # line number in the CSV (header is line 1)
    ip_hosts: np.ndarray = field(repr=False, compare=False)  # uint8 (k, 16)
    mac_hosts: np.ndarray = field(repr=False, compare=False)  # uint64 (m,)

    @property
    def malicious(self) -> bool:
        """Whether the row's label is malicious."""
        return self.label == "malicious"


def _parse_hosts(text: str, where: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    hosts = tuple(text.split())
    ips, macs = [], []
    for host in hosts:
        try:
            ips.append(np.frombuffer(ip_from_str(host), np.uint8))
            continue
        except ValueError:
            pass
        if not _MAC_RE.match(host):
            raise LabelsError(f"{where}: host {host!r} is neither an IP nor a MAC address")
        macs.append(mac_from_str(host))
    ip_arr = np.array(ips, np.uint8).reshape(len(ips), 16)
    return hosts, ip_arr, np.array(macs, np.uint64)


def read_labels(csv_path: str | os.PathLike[str], check_files: bool = True) -> list[LabelRow]:
    """Read a labels.csv; raises LabelsError naming the file and line of any bad row (and,
    with ``check_files``, of a capture that does not exist)."""
    csv_path = Path(csv_path)
    base = csv_path.resolve().parent
    try:
        fh = open(csv_path, newline="", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise LabelsError(f"{csv_path}: cannot open: {exc}") from exc
    with fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in LABEL_COLUMNS if c not in columns]
        if missing:
            raise LabelsError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        reader.fieldnames = columns
        rows = []
        for record in reader:
            line = reader.line_num
            where = f"{csv_path}:{line}"
            values = {c: (record.get(c) or "").strip() for c in LABEL_COLUMNS}
            if None in record:
                raise LabelsError(f"{where}: more fields than columns")
            if not values["pcap"]:
                raise LabelsError(f"{where}: empty pcap path")
            if values["label"] not in LABEL_VALUES:
                raise LabelsError(
                    f"{where}: label {values['label']!r} is not one of {', '.join(LABEL_VALUES)}"
                )
            if values["attack"] and not _ATTACK_RE.match(values["attack"]):
                raise LabelsError(f"{where}: attack {values['attack']!r} is not kebab-case")
            hosts, ips, macs = _parse_hosts(values["hosts"], where)
            path = base / values["pcap"]
            if check_files and not path.is_file():
                raise LabelsError(f"{where}: capture {values['pcap']} not found at {path}")
            rows.append(
                LabelRow(
                    values["pcap"], path, values["label"], values["attack"], hosts, line, ips, macs
                )  # fmt: skip
            )
    return rows


def _ip_words(ip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    words = np.ascontiguousarray(ip, np.uint8).view(">u8").reshape(len(ip), 2)
    return words[:, 0], words[:, 1]


def host_match(row: LabelRow, headers: HeaderBatch) -> np.ndarray:
    """Packets whose source or destination address is one of the row's hosts (bool (n,))."""
    hit = np.zeros(len(headers), bool)
    is_ip = (headers.ip_version == 4) | (headers.ip_version == 6)
    if len(row.ip_hosts):
        want_hi, want_lo = _ip_words(row.ip_hosts)
        for ip in (headers.src_ip, headers.dst_ip):
            hi, lo = _ip_words(ip)
            for h, lo_want in zip(want_hi.tolist(), want_lo.tolist()):
                hit |= is_ip & (hi == np.uint64(h)) & (lo == np.uint64(lo_want))
    if len(row.mac_hosts):
        hit |= np.isin(headers.src_mac, row.mac_hosts) | np.isin(headers.dst_mac, row.mac_hosts)
    return hit


def packet_labels(row: LabelRow, headers: HeaderBatch) -> np.ndarray:
    """Per-packet malicious flag (bool (n,)) of the packets of ``row``'s capture."""
    if not row.malicious:
        return np.zeros(len(headers), bool)
    if not row.hosts:
        return np.ones(len(headers), bool)
    return host_match(row, headers)


# --- CIC-IDS2017-style flow CSVs --------------------------------------------------------------

FLOW_COLUMNS = {
    "src": "Source IP",
    "sport": "Source Port",
    "dst": "Destination IP",
    "dport": "Destination Port",
    "proto": "Protocol",
    "start": "Timestamp",
    "duration": "Flow Duration",
    "label": "Label",
}
_TIME_FORMATS = (
    ("%d/%m/%Y %I:%M:%S %p", 1.0),
    ("%d/%m/%Y %I:%M %p", 60.0),
    ("%d/%m/%Y %H:%M:%S", 1.0),
    ("%d/%m/%Y %H:%M", 60.0),
)


def parse_cic_time(text: str, tz: tzinfo, pm_before_hour: int | None = None) -> tuple[float, float]:
    """``dd/mm/yyyy h:mm[:ss] [AM/PM]`` local time to (epoch seconds, resolution in seconds).

    ``pm_before_hour``: CIC-IDS2017 writes afternoon times of some days on a 12-hour clock
    without AM/PM; hours below this value (e.g. 8 for a capture day of 8:00-17:59) are then
    read as PM. ``None`` takes hours as written.
    """
    text = " ".join(text.split())
    for fmt, resolution in _TIME_FORMATS:
        try:
            when = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if pm_before_hour is not None and "%p" not in fmt and when.hour < pm_before_hour:
            when += timedelta(hours=12)
        return when.replace(tzinfo=tz).timestamp(), resolution
    raise ValueError(f"unrecognised CIC timestamp {text!r}")


def _flow_keys(proto, src, sport, dst, dport) -> np.ndarray:
    """Canonical session keys, byte-compatible with jixiaoan.features.sessions.session_keys."""
    n = len(proto)
    a = np.zeros((n, 18), np.uint8)
    b = np.zeros((n, 18), np.uint8)
    a[:, :16], b[:, :16] = src, dst
    a[:, 16:], b[:, 16:] = be_bytes(sport, 2), be_bytes(dport, 2)
    fw = lexicographic_le(a, b)[:, None]
    keys = np.zeros((n, KEY_WIDTH), np.uint8)
    keys[:, 0] = 1
    keys[:, 1] = proto
    keys[:, 4:22] = np.where(fw, a, b)
    keys[:, 22:40] = np.where(fw, b, a)
    return keys


def _ip_row(text: str) -> np.ndarray:
    return np.frombuffer(ip_from_str(text), np.uint8)


def _each_unique(texts: list[str], convert) -> np.ndarray:
    """``np.array([convert(t) for t in texts])``, converting each distinct text once."""
    uniq, inverse = np.unique(np.array(texts, dtype=object).astype(str), return_inverse=True)
    return np.array([convert(t) for t in uniq.tolist()]).reshape(len(uniq), -1)[inverse]


@dataclass
class FlowLabels:
    """The flows of a CIC-style CSV (in file order), ready to label packets."""

    keys: np.ndarray  # uint8 (m, KEY_WIDTH) canonical 5-tuple keys
    start: np.ndarray  # float64 epoch seconds (start of the resolution interval)
    end: np.ndarray  # float64 epoch seconds: start + duration + resolution
    malicious: np.ndarray  # bool (m,)
    attack: np.ndarray  # object (m,) label text, "" for BENIGN

    @classmethod
    def read(
        cls,
        csv_path: str | os.PathLike[str],
        tz: str | tzinfo = "UTC",
        pm_before_hour: int | None = None,
    ) -> FlowLabels:
        """Read a flow CSV; ``tz``: the time zone of its local timestamps (e.g.
        ``"America/Halifax"`` for CIC-IDS2017); ``pm_before_hour``: see parse_cic_time."""
        zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        cols: dict[str, list] = {k: [] for k in FLOW_COLUMNS}
        with open(csv_path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            where = {k: header.index(v) for k, v in FLOW_COLUMNS.items() if v in header}
            missing = [v for k, v in FLOW_COLUMNS.items() if k not in where]
            if missing:
                raise LabelsError(f"{csv_path}: missing column(s) {', '.join(missing)}")
            for record in reader:
                if not record or not record[where["src"]].strip():
                    continue
                try:
                    for k, i in where.items():
                        cols[k].append(record[i].strip())
                except IndexError:
                    raise LabelsError(f"{csv_path}:{reader.line_num}: too few fields") from None
        try:
            return cls._build(cols, zone, pm_before_hour)
        except ValueError as exc:
            raise LabelsError(f"{csv_path}: {exc}") from exc

    @classmethod
    def _build(cls, cols: dict[str, list], zone: tzinfo, pm_before_hour: int | None):
        m = len(cols["src"])
        if m == 0:
            empty = np.zeros(0)
            keys = np.zeros((0, KEY_WIDTH), np.uint8)
            return cls(keys, empty, empty, empty.astype(bool), empty.astype(object))
        src, dst = (_each_unique(cols[k], _ip_row).reshape(m, 16) for k in ("src", "dst"))
        proto = np.array([int(p) for p in cols["proto"]], np.int64)
        ports = [np.array([int(float(p)) for p in cols[k]], np.int64) for k in ("sport", "dport")]
        # ports mean nothing outside TCP/UDP (and the parser leaves them 0 there)
        sport, dport = (np.where(np.isin(proto, (6, 17)), p, 0) for p in ports)
        times = _each_unique(cols["start"], lambda t: parse_cic_time(t, zone, pm_before_hour))
        start, resolution = times.reshape(m, 2).T.astype(np.float64)
        duration = np.maximum(np.array([float(d) for d in cols["duration"]]), 0) / 1e6
        labels = np.array(cols["label"], dtype=object)
        malicious = np.array([lab.upper() != "BENIGN" for lab in labels], bool)
        keys = _flow_keys(proto.astype(np.uint8), src.reshape(m, 16), sport.astype(np.uint16),
                          dst.reshape(m, 16), dport.astype(np.uint16))  # fmt: skip
        return cls(
            keys=keys,
            start=start,
            end=start + duration + resolution,
            malicious=malicious,
            attack=np.where(malicious, labels, "").astype(object),
        )

    def packet_labels(self, headers: HeaderBatch) -> tuple[np.ndarray, np.ndarray]:
        """(malicious bool (n,), attack name per packet as an object array, "" if benign).

        A packet is malicious when a malicious flow with its 5-tuple covers its time; packets
        of no flow count as benign."""
        n = len(headers)
        malicious = np.zeros(n, bool)
        attack = np.full(n, "", dtype=object)
        flows = np.flatnonzero(self.malicious)
        if n == 0 or len(flows) == 0:
            return malicious, attack
        keys, _ = session_keys(headers)
        flow_keys = self.keys[flows].view(f"V{KEY_WIDTH}").ravel()
        uniq = np.unique(flow_keys)
        key_of_flow = np.searchsorted(uniq, flow_keys)
        order = np.lexsort((self.start[flows], key_of_flow))
        flows, key_of_flow = flows[order], key_of_flow[order]
        pkt_void = keys.view(f"V{KEY_WIDTH}").ravel()
        at = np.minimum(np.searchsorted(uniq, pkt_void), len(uniq) - 1)
        known = uniq[at] == pkt_void
        # One monotone time axis: key k's flows live in [k * span, (k + 1) * span).
        t0 = min(self.start[flows].min(), headers.ts.min()) - 1.0
        span = max(self.end[flows].max(), headers.ts.max()) - t0 + 1.0
        lo = key_of_flow * span + (self.start[flows] - t0)  # sorted by key, then start
        hi = key_of_flow * span + (self.end[flows] - t0)
        reach = np.maximum.accumulate(hi)  # furthest end of any flow starting at or before
        holder = np.maximum.accumulate(np.where(hi == reach, np.arange(len(hi)), 0))
        t = at * span + (headers.ts - t0)
        j = np.searchsorted(lo, t, side="right") - 1
        ok = known & (j >= 0)
        j = np.maximum(j, 0)
        ok &= reach[j] >= t
        malicious[ok] = True
        attack[ok] = self.attack[flows][holder[j[ok]]]
        return malicious, attack
