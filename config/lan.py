"""The machine's LAN addresses: what students type to reach `make run` on a teacher's laptop
(HOST=0.0.0.0). Standard library only (plus `ip -j addr` when it is installed); sends no
packet and needs no internet. Never returns a loopback or link-local address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import socket
import subprocess
from collections.abc import Iterable
from typing import Any

# What a wildcard HOST serves: 0.0.0.0 is IPv4 only; `::` is both on Linux's default
# (net.ipv6.bindv6only=0, and Twisted sets no IPV6_V6ONLY).
WILDCARDS: dict[str, tuple[int, ...]] = {"0.0.0.0": (4,), "::": (4, 6), "[::]": (4, 6)}
# Documentation addresses (RFC 5737, RFC 3849): a UDP connect() to them only asks the kernel
# which source address its route would use; nothing is sent.
PROBES = (("203.0.113.1", socket.AF_INET), ("2001:db8::1", socket.AF_INET6))


def is_wildcard(host: str) -> bool:
    return host in WILDCARDS


def usable(address: str) -> bool:
    """An address another machine on the LAN can type: not loopback, link-local (it would
    need a zone), multicast or unspecified."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def url_host(address: str) -> str:
    """The address as it appears in a URL and in ALLOWED_HOSTS (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def join_url(address: str, port: int | str) -> str:
    return f"http://{url_host(address)}:{port}"


def routed() -> list[str]:
    """The source address of the default route, per family (none offline)."""
    found = []
    for target, family in PROBES:
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((target, 9))
            found.append(probe.getsockname()[0])
    return found


def interfaces(ip_json: Iterable[dict[str, Any]]) -> list[str]:
    """Global addresses of the interfaces that are up with a carrier, from `ip -j addr`:
    a classroom's own network often has no default route, so `routed()` finds nothing."""
    return [
        info["local"]
        for link in ip_json
        if "UP" in link.get("flags", ()) and "NO-CARRIER" not in link.get("flags", ())
        for info in link.get("addr_info", ())
        if info.get("scope") == "global" and "local" in info
    ]


def _ip_addr() -> list[dict[str, Any]]:
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if ip is None:
        return []
    try:
        result = subprocess.run([ip, "-j", "addr"], capture_output=True, text=True, timeout=5)
        links = json.loads(result.stdout) if result.returncode == 0 else []
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    return links if isinstance(links, list) else []


def resolved() -> list[str]:
    """What the machine's own name resolves to (often only 127.0.1.1 on Debian)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]


def lan_addresses(*, families: Iterable[int] = (4, 6)) -> list[str]:
    """The machine's usable addresses of these IP versions, the default route's first."""
    wanted = set(families)
    candidates = [*routed(), *interfaces(_ip_addr()), *resolved()]
    return [
        address
        for address in dict.fromkeys(candidates)  # once each, in order
        if usable(address) and ipaddress.ip_address(address).version in wanted
    ]
