"""config.lan: the addresses `make run` with HOST=0.0.0.0 allows and prints for students."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from config import lan
from config import serve as launcher

# `ip -j addr` of a laptop: loopback, Wi-Fi up with an IPv4 and a global and a link-local
# IPv6 address, a docker bridge with no carrier, an interface that is down.
IP_JSON: list[dict[str, Any]] = [
    {
        "ifname": "lo",
        "flags": ["LOOPBACK", "UP", "LOWER_UP"],
        "addr_info": [
            {"family": "inet", "local": "127.0.0.1", "scope": "host"},
            {"family": "inet6", "local": "::1", "scope": "host"},
        ],
    },
    {
        "ifname": "wlan0",
        "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
        "addr_info": [
            {"family": "inet", "local": "192.168.1.23", "scope": "global"},
            {"family": "inet6", "local": "2001:db8:1::23", "scope": "global"},
            {"family": "inet6", "local": "fe80::1", "scope": "link"},
        ],
    },
    {
        "ifname": "docker0",
        "flags": ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"],
        "addr_info": [{"family": "inet", "local": "172.17.0.1", "scope": "global"}],
    },
    {
        "ifname": "eth1",
        "flags": ["BROADCAST", "MULTICAST"],
        "addr_info": [{"family": "inet", "local": "10.0.0.5", "scope": "global"}],
    },
]


def test_interfaces_gives_global_addresses_of_links_that_are_up() -> None:
    assert lan.interfaces(IP_JSON) == ["192.168.1.23", "2001:db8:1::23"]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("192.168.1.23", True),
        ("10.0.0.5", True),
        ("2001:db8:1::23", True),
        ("127.0.0.1", False),
        ("127.0.1.1", False),  # Debian's name for the machine itself
        ("::1", False),
        ("169.254.3.4", False),
        ("fe80::1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("not an address", False),
    ],
)
def test_usable_excludes_loopback_link_local_and_the_like(address: str, expected: bool) -> None:
    assert lan.usable(address) is expected


def test_urls_bracket_ipv6() -> None:
    assert lan.join_url("192.168.1.23", 8000) == "http://192.168.1.23:8000"
    assert lan.join_url("2001:db8:1::23", "8000") == "http://[2001:db8:1::23]:8000"


def test_this_machines_addresses_are_usable_once_each_and_of_the_asked_family() -> None:
    both = lan.lan_addresses()
    only_v4 = lan.lan_addresses(families=(4,))
    assert all(lan.usable(a) for a in both) and len(set(both)) == len(both)
    assert only_v4 == [a for a in both if ipaddress.ip_address(a).version == 4]


def test_the_default_routes_address_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lan, "routed", lambda: ["10.0.0.5"])
    monkeypatch.setattr(lan, "_ip_addr", lambda: IP_JSON)
    monkeypatch.setattr(lan, "resolved", lambda: ["127.0.1.1", "192.168.1.23"])
    assert lan.lan_addresses() == ["10.0.0.5", "192.168.1.23", "2001:db8:1::23"]
    assert lan.lan_addresses(families=(4,)) == ["10.0.0.5", "192.168.1.23"]


def test_the_launcher_passes_lan_addresses_only_for_a_wildcard_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lan, "lan_addresses", lambda families: ["192.168.1.23"])
    environ: dict[str, str] = {}
    assert launcher.classroom("127.0.0.1", "8000", environ) == []
    assert environ == {}

    lines = launcher.classroom("0.0.0.0", "8000", environ)
    assert lines == ["Students join at http://192.168.1.23:8000/"]
    assert environ == {
        "LAN_ADDRESSES": "192.168.1.23",
        "PLAYGROUND_PUBLIC_URL": "http://192.168.1.23:8000",
    }

    chosen = {"PLAYGROUND_PUBLIC_URL": "https://course.example.org"}
    launcher.classroom("0.0.0.0", "8000", chosen)
    assert chosen["PLAYGROUND_PUBLIC_URL"] == "https://course.example.org"  # the school's own


def test_a_wildcard_host_with_no_network_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lan, "lan_addresses", lambda families: [])
    environ: dict[str, str] = {}
    [line] = launcher.classroom("::", "8000", environ)
    assert "no LAN address found" in line
    assert "PLAYGROUND_PUBLIC_URL" not in environ
