"""labels.csv: parsing, error messages and per-packet labels."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from test_features_support import batches_from_packets

from jixiaoan.capture.batch import HeaderBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.features.labels import LabelsError, packet_labels, read_labels

# malicious packet counts of the committed captures, from the corpus SOURCES.tsv
EXPECTED_MALICIOUS = {
    "suricata-verify/issue-3341-tcphdr-01_urgent11_cve_2019_12260.pcap": 8,
    "zeek/http/cooper-grill-dvwa.pcapng": 48,
    "zeek/rfb/vnc-scanner.pcap": 20,
}


def headers_of(path) -> HeaderBatch:
    return HeaderBatch.concat([parse_headers(f) for f in read_capture(path, batch_size=50)])


def write(tmp_path, text: str, files=("a.pcap", "sub/b.pcap")):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_committed_labels_and_packet_counts(data_dir):
    rows = read_labels(data_dir / "labels.csv")
    assert len(rows) == 14
    for row in rows:
        labels = packet_labels(row, headers_of(row.path))
        assert labels.dtype == bool
        expected = EXPECTED_MALICIOUS.get(row.pcap, 0)
        assert int(labels.sum()) == expected, row.pcap
    dvwa = next(r for r in rows if r.pcap.endswith("dvwa.pcapng"))
    assert dvwa.malicious and dvwa.attack == "web-sqli" and dvwa.hosts == ("192.168.111.148",)
    assert dvwa.path == (data_dir / "zeek/http/cooper-grill-dvwa.pcapng").resolve()


def test_ipv6_and_mac_hosts(tmp_path):
    path = write(
        tmp_path,
        "pcap,label,attack,hosts\n"
        "a.pcap,malicious,dos,2001:DB8::1 10.0.0.9 00:0C:29:d4:79:b2\n"
        "sub/b.pcap,benign,,\n",
    )
    mal, ben = read_labels(path)
    assert mal.hosts == ("2001:DB8::1", "10.0.0.9", "00:0C:29:d4:79:b2") and mal.line == 2
    assert ben.label == "benign" and ben.attack == "" and ben.hosts == () and ben.line == 3
    pkts = [
        Ether() / IPv6(src="2001:db8::5", dst="2001:db8::1") / UDP(),  # to the attacker: yes
        Ether() / IPv6(src="2001:db8::5", dst="2001:db8::2") / UDP(),  # no
        Ether() / IP(src="10.0.0.9", dst="10.0.0.1") / UDP(),  # from the attacker: yes
        Ether() / IP(src="10.0.0.1", dst="10.0.0.8") / UDP(),  # no
        Ether(src="00:0c:29:d4:79:b2", dst="ff:ff:ff:ff:ff:ff", type=0x8870) / (b"\x00" * 40),
        Ether(src="00:0c:29:00:00:01", dst="00:0c:29:d4:79:b2") / ARP(psrc="10.0.0.2"),  # MAC
        Ether(src="00:0c:29:00:00:01") / ARP(psrc="10.0.0.9"),  # ARP is not an IP header: no
    ]
    _, h = batches_from_packets(pkts)
    assert packet_labels(mal, h).tolist() == [True, False, True, False, True, True, False]
    assert packet_labels(ben, h).tolist() == [False] * 7
    all_rows = write(tmp_path, "pcap,label,attack,hosts\na.pcap,malicious,syn-flood,\n")
    assert packet_labels(read_labels(all_rows)[0], h).all()


def test_stray_spaces_and_quotes_are_tolerated(tmp_path):
    path = write(tmp_path, 'pcap , label,attack,hosts\n"a.pcap", malicious ,dos," 10.0.0.1  "\n')
    (row,) = read_labels(path)
    assert (row.pcap, row.label, row.attack, row.hosts) == (
        "a.pcap",
        "malicious",
        "dos",
        ("10.0.0.1",),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pcap,label,hosts\na.pcap,benign,\n", "missing column.*attack"),
        ("pcap,label,attack,hosts\na.pcap,evil,dos,\n", r"labels.csv:2: label 'evil'"),
        (
            "pcap,label,attack,hosts\na.pcap,benign,,\nmissing.pcap,benign,,\n",
            r":3: capture missing",
        ),
        ("pcap,label,attack,hosts\na.pcap,malicious,dos,10.0.0.300\n", r":2: host '10.0.0.300'"),
        ("pcap,label,attack,hosts\na.pcap,malicious,SYN flood,\n", "kebab-case"),
        ("pcap,label,attack,hosts\n,benign,,\n", "empty pcap"),
        ("pcap,label,attack,hosts\na.pcap,benign,,,extra\n", "more fields"),
    ],
)
def test_errors_name_the_row(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(LabelsError, match=message):
        read_labels(path)


def test_missing_files_allowed_when_not_checked(tmp_path):
    path = write(tmp_path, "pcap,label,attack,hosts\nnope.pcap,benign,,\n")
    assert read_labels(path, check_files=False)[0].pcap == "nope.pcap"
    with pytest.raises(LabelsError, match="cannot open"):
        read_labels(tmp_path / "absent.csv")


def test_corpus_labels_match_published_counts(shared_datasets):
    """Every host-labelled corpus file: packets labelled malicious = SOURCES.tsv's count."""
    rows = read_labels(shared_datasets / "labels.csv")
    assert len(rows) == 712
    with open(shared_datasets / "SOURCES.tsv", newline="") as fh:
        counts = {
            r["pcap"]: int(r["malicious_packets"]) for r in csv.DictReader(fh, delimiter="\t")
        }
    with_hosts = [r for r in rows if r.hosts]
    assert any(len(r.mac_hosts) for r in with_hosts) and len(with_hosts) > 40
    for row in with_hosts:
        labels = packet_labels(row, headers_of(row.path))
        assert int(np.count_nonzero(labels)) == counts[row.pcap], row.pcap
