"""Adapter listing (in a namespace), hotspot heuristics, capture rights, vendor names."""

from __future__ import annotations

import json

import pytest
from netns import veth_namespaces

from jixiaoan.capture import interfaces
from jixiaoan.capture.interfaces import (
    capture_permission_problem,
    hotspot_reason,
    list_interfaces,
    vendor_for_mac,
)

_LIST = ("import json, dataclasses; from jixiaoan.capture.interfaces import list_interfaces; "
         "print(json.dumps([dataclasses.asdict(i) for i in list_interfaces()], default=list))")


def _listing(net, i: int) -> dict[str, dict]:
    out = net.python(i, _LIST).stdout.decode()
    return {d["name"]: d for d in json.loads(out)}


@pytest.mark.live
def test_lists_the_veth_with_its_address_and_hotspot_hint() -> None:
    addrs = ["192.168.137.1/24", "192.168.137.77/24"]
    with veth_namespaces(2, addresses=addrs) as net:
        host, peer = _listing(net, 0), _listing(net, 1)
    veth = host[net.ifaces[0]]
    assert veth["ipv4"] == ["192.168.137.1/24"] and veth["mac"] == net.macs[0]
    assert veth["up"] and veth["kind"] == "veth" and not veth["loopback"]
    assert veth["looks_like_hotspot"] and "Windows" in veth["hotspot_reason"]
    assert not peer[net.ifaces[1]]["looks_like_hotspot"]
    names = list(host)
    assert names[-1] == "lo" and host["lo"]["loopback"]  # loopback listed last
    assert set(names) == {"lo", net.ifaces[0]}  # only this namespace's adapters


def test_this_machine_has_a_loopback_adapter() -> None:
    found = list_interfaces()
    lo = [i for i in found if i.loopback]
    assert lo and "127.0.0.1/8" in lo[0].ipv4 and not lo[0].looks_like_hotspot


@pytest.mark.parametrize(("addrs", "kind", "dhcp", "hint"), [
    (["192.168.137.1/24"], "", False, "Windows"),
    (["10.42.0.1/24"], "wireless", False, "NetworkManager"),
    (["192.168.50.1/24"], "bridge", True, "DHCP server"),
    (["192.168.50.1/24"], "bridge", False, ""),  # a bridge without a DHCP server
    (["192.168.50.7/24"], "bridge", True, ""),  # not the first address of its network
    (["192.168.137.5/24"], "", False, ""),  # a client of a Windows hotspot
    (["8.8.8.1/24"], "bridge", True, ""),  # not a private network
])
def test_hotspot_heuristics(addrs, kind, dhcp, hint) -> None:
    reason = hotspot_reason(addrs, kind, dhcp)
    if hint:
        assert hint in reason
    else:
        assert reason == ""


def test_hotspot_hints_without_a_prefix_or_from_the_windows_adapter() -> None:
    assert "Windows" in hotspot_reason(["192.168.137.1/32"])
    text = hotspot_reason([], description="Microsoft Wi-Fi Direct Virtual Adapter #2")
    assert "mobile hotspot" in text
    assert hotspot_reason([], description="Intel(R) Ethernet Connection") == ""


def test_scapy_listing_fallback_has_descriptions_and_prefixes() -> None:
    found = interfaces._scapy_interfaces()
    lo = [i for i in found if i.loopback]
    assert lo and lo[0].description and "127.0.0.1/8" in lo[0].ipv4


def test_permission_problem_messages(monkeypatch) -> None:
    monkeypatch.setattr(interfaces.sys, "platform", "linux")
    monkeypatch.setattr(interfaces.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(interfaces, "_linux_has_cap_net_raw", lambda: False)
    text = capture_permission_problem()
    assert text is not None and "run as root" in text and "CAP_NET_RAW" in text
    monkeypatch.setattr(interfaces, "_linux_has_cap_net_raw", lambda: True)
    assert capture_permission_problem() is None
    monkeypatch.setattr(interfaces.os, "geteuid", lambda: 0)
    monkeypatch.setattr(interfaces, "_linux_has_cap_net_raw", lambda: False)
    assert capture_permission_problem() is None


def test_windows_messages_name_npcap(monkeypatch) -> None:
    monkeypatch.setattr(interfaces.sys, "platform", "win32")
    monkeypatch.setattr(interfaces, "_npcap_installed", lambda: False)
    assert "https://npcap.com" in capture_permission_problem()
    assert "administrator" in interfaces.permission_message()


def test_vendor_for_mac() -> None:
    assert vendor_for_mac("00:1b:63:12:34:56")  # an Apple OUI
    assert vendor_for_mac("00-1B-63-12-34-56") == vendor_for_mac("00:1b:63:12:34:56")
    assert vendor_for_mac("02:1b:63:12:34:56") == ""  # locally administered (random)
    assert vendor_for_mac("01:00:5e:00:00:fb") == ""  # multicast
    assert vendor_for_mac("") == "" and vendor_for_mac("zz:zz") == ""
