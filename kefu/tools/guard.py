"""Refuse tool calls to addresses inside the network (SSRF) unless their host is allow-listed.

A tool URL built from a template could be pointed at loopback, the cloud metadata service or an internal
admin API; only hosts a deployer names in the allow-list may resolve to such addresses.

The address that was checked is the address that is called (:func:`pin`): resolving once to check and letting
the HTTP client resolve again would let a DNS answer that changes in between (rebinding) reach an internal
address. A host that does not resolve is refused (fail closed).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


@dataclass(frozen=True, slots=True)
class Approval:
    """The guard's answer: why a call is refused, or the address to call (None: the client may resolve, as for an
    allow-listed host or an in-process app)."""

    refusal: str | None = None
    address: str | None = None


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

    def __init__(self, allow_hosts: Collection[str] = (), *, resolver: Resolver | None = None) -> None:
        self.allow_hosts = frozenset(h.strip().lower() for h in allow_hosts if h.strip())
        self._resolve = resolver or resolve

    def allowed_by_list(self, url: httpx.URL) -> bool:
        """True when the host (or ``host:port``) is allow-listed."""
        host = url.host.lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        shown = f"[{host}]" if ":" in host else host
        return host in self.allow_hosts or f"{shown}:{port}" in self.allow_hosts

    async def check(self, url: httpx.URL) -> str | None:
        """None when the call may go ahead, otherwise why it is refused."""
        return (await self.approve(url)).refusal

    async def approve(self, url: httpx.URL) -> Approval:
        """Whether the call may go ahead, and to which address (see :func:`pin`)."""
        if url.scheme not in ("http", "https"):
            return Approval(f"scheme {url.scheme or '(none)'!r} is not allowed (http or https only)")
        if not url.host:
            return Approval("the URL has no host")
        if self.allowed_by_list(url):
            return Approval()
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await self._resolve(url.host, port)
        except OSError:
            return Approval(f"{url.host} could not be resolved")
        if not addresses:
            return Approval(f"{url.host} could not be resolved")
        for ip in addresses:
            if is_internal(ip):
                return Approval(
                    f"{url.host} resolves to an internal address ({ip}); add it to the allow-list to call it"
                )
        return Approval(address=str(addresses[0]))


def pin(request: httpx.Request, address: str) -> None:
    """Send ``request`` to ``address`` (the one the guard checked) instead of resolving its host again. The
    ``Host`` header keeps the name, and TLS still sends it (SNI) and verifies the certificate against it."""
    host = request.url.host
    if host == address:
        return
    request.extensions = {**request.extensions, "sni_hostname": host}
    request.url = request.url.copy_with(host=address)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal is itself); raises ``OSError`` when it does not resolve."""
    return await _addresses(host, port)


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    # getaddrinfo on the loop runs in the default executor: resolution never blocks the event loop.
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for *_, sockaddr in infos:
        try:
            out.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out
