"""Which client a request comes from, as the playground's per-address limits count it."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The address of the client, which the playground's per-address limits count by.

    The peer of the connection (REMOTE_ADDR), unless that peer is one of
    settings.TRUSTED_PROXIES: then the last address X-Forwarded-For names that is not a
    trusted proxy itself (each proxy appends the peer it saw; whatever a client wrote in the
    header comes before, so it cannot choose its own address). daphne's --proxy-headers is
    not used for this: it believes the header from any peer, and its first address.
    """
    peer = str(request.META.get("REMOTE_ADDR") or "")
    trusted = settings.TRUSTED_PROXIES
    if not trusted or not _within(peer, trusted):
        return peer
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a proxy of ours writes addresses: this hop is not one of ours
        if not any(address in network for network in trusted):
            return str(address)
    return hops[0] if hops else peer


def _within(address: str, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
