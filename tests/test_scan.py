"""ARP scan inside namespaces joined by a bridge; subnet limits."""

from __future__ import annotations

import json

import pytest
from netns import veth_namespaces

from jixiaoan.capture.interfaces import InterfaceInfo
from jixiaoan.capture.scan import arp_scan, scan_network

_SCAN = """
import dataclasses, json, sys
from jixiaoan.capture.scan import arp_scan
seen = []
found = arp_scan(sys.argv[1], timeout=1.5, retry=0, on_found=lambda d: seen.append(d.ip))
print(json.dumps({"found": [dataclasses.asdict(d) for d in found], "seen": seen}))
"""


@pytest.mark.live
def test_arp_scan_finds_the_peers() -> None:
    with veth_namespaces(3, subnet="10.204.0.0/24") as net:
        out = json.loads(net.python(0, _SCAN, net.ifaces[0], timeout=120).stdout)
    found = {d["ip"]: d["mac"] for d in out["found"]}
    assert found == {net.ips[1]: net.macs[1], net.ips[2]: net.macs[2]}
    assert sorted(out["seen"]) == sorted(found)  # each reported once, as it arrived


def test_scan_network_defaults_to_the_adapter_subnet_and_is_bounded() -> None:
    info = InterfaceInfo(name="x", description="x", ipv4=["192.168.137.1/24"])
    assert str(scan_network(info)) == "192.168.137.0/24"
    assert str(scan_network(info, "10.0.0.0/22")) == "10.0.0.0/22"
    with pytest.raises(ValueError, match="limited to 1022"):
        scan_network(info, "10.0.0.0/21")
    assert scan_network(info, "10.0.0.0/21", max_hosts=4094).num_addresses == 2048
    with pytest.raises(ValueError, match="IPv4"):
        scan_network(info, "fd00::/120")


def test_unknown_adapter_is_a_clear_error() -> None:
    from jixiaoan.capture.interfaces import UnknownInterfaceError

    with pytest.raises(UnknownInterfaceError, match="no such network adapter"):
        arp_scan("jx-no-such0")

