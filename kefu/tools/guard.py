"""Refuse tool calls to addresses inside the network (SSRF) unless their host is allow-listed.

A tool URL built from a template could be pointed at loopback, the cloud metadata service or an internal
admin API; only hosts a deployer names in the allow-list may resolve to such addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_internal(ip: IPAddress) -> bool:
    """True for loopback, private, link-local, reserved, multicast, unspecified and other non-public addresses."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


class AddressGuard:
    """Checks a URL before a tool calls it. ``allow_hosts`` entries are ``host`` or ``host:port``."""

    def __init__(self, allow_hosts: Collection[str] = ()) -> None:
        self.allow_hosts = frozenset(h.strip().lower() for h in allow_hosts if h.strip())

    def allowed_by_list(self, url: httpx.URL) -> bool:
        """True when the host (or ``host:port``) is allow-listed."""
        host = url.host.lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        shown = f"[{host}]" if ":" in host else host
        return host in self.allow_hosts or f"{shown}:{port}" in self.allow_hosts

    async def check(self, url: httpx.URL) -> str | None:
        """None when the call may go ahead, otherwise why it is refused."""
        if url.scheme not in ("http", "https"):
            return f"scheme {url.scheme or '(none)'!r} is not allowed (http or https only)"
        if not url.host:
            return "the URL has no host"
        if self.allowed_by_list(url):
            return None
        for ip in await _addresses(url.host, url.port or 443):
            if is_internal(ip):
                return f"{url.host} resolves to an internal address ({ip}); add it to the allow-list to call it"
        return None


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        # getaddrinfo on the loop runs in the default executor: resolution never blocks the event loop.
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []  # unresolvable: the HTTP client reports it as unavailable
    out: list[IPAddress] = []
    for *_, sockaddr in infos:
        try:
            out.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out
