"""Which addresses a tool may connect to (SSRF): public ones, and internal ones only when allow-listed.

A tool URL built from a template could point at loopback, the cloud metadata service or an internal admin API.
The guard resolves a host once and checks every address it gets; the connection is then opened to one of those
addresses (:mod:`kefu.tools.transport`), never to a second DNS answer, so a name whose answer changes between the
check and the connect (DNS rebinding) cannot reach an internal address. A host that does not resolve is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Collection
from urllib.parse import urlsplit

import httpx

from kefu.errors import AddressRefused, ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

# A bare host in the allow-list means its standard ports only: naming any other port is the deployer's choice.
STANDARD_PORTS = (80, 443)

# NAT64 (RFC 6052): the address reaches the IPv4 address in its last 32 bits, and only that address counts (Python
# calls the whole range reserved, which would refuse every host behind DNS64).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215) is not global, although Python 3.11 says it is.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def is_internal(ip: IPAddress) -> bool:
    """True for loopback, private, link-local, reserved, multicast, unspecified and other non-public addresses, and
    for IPv6 addresses that stand for such an IPv4 address (mapped, NAT64, 6to4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_internal(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_internal(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
        if ip in _LOCAL_NAT64 or (ip.sixtofour is not None and is_internal(ip.sixtofour)):
            return True
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def allow_list_entry(item: str) -> list[tuple[str, int]]:
    """``host:port`` → that pair; a bare ``host`` → its standard ports. The host is normalised as httpx does
    (lower case, IDNA, IPv6 without brackets); anything else is a :class:`ConfigError`."""
    try:
        item = item.strip()
        url = httpx.URL(f"http://{item}")
        port = urlsplit(f"//{item}").port  # httpx drops a default port; ":80" must still mean port 80 only
    except (httpx.InvalidURL, ValueError) as exc:
        raise ConfigError(f"tools allow-list: {item!r} is not host or host:port ({exc})") from exc
    if not url.raw_host or url.userinfo or url.raw_path != b"/" or url.query or url.fragment:
        raise ConfigError(f"tools allow-list: {item!r} is not host or host:port")
    host = url.raw_host.decode("ascii")
    return [(host, port)] if port is not None else [(host, p) for p in STANDARD_PORTS]


def screen(url: httpx.URL) -> None:
    """Refuse a URL that is not http(s) or has no host, before anything is resolved or sent."""
    if url.scheme not in ("http", "https"):
        raise AddressRefused(f"scheme {url.scheme or '(none)'!r} is not allowed (http or https only)")
    if not url.raw_host:
        raise AddressRefused("the URL has no host")


class AddressGuard:
    """Decides which addresses a tool connection may use. ``allow_hosts`` entries are ``host:port`` (that name or
    that address on that port) or a bare ``host`` (its ports 80 and 443); ``resolver`` replaces DNS in tests."""

    def __init__(self, allow_hosts: Collection[str] = (), *, resolver: Resolver | None = None) -> None:
        self.allowed = frozenset(pair for item in allow_hosts if item.strip() for pair in allow_list_entry(item))
        self._resolve = resolver or resolve

    def allows(self, host: str, port: int) -> bool:
        """True when ``host`` (a name or an address) is allow-listed with ``port``."""
        return (host.lower(), port) in self.allowed

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses a connection to ``host:port`` may use, in the resolver's order. Each is public, or the
        name or the address is allow-listed with this port; otherwise :class:`AddressRefused`, as for a host
        that does not resolve."""
        try:
            found = await self._resolve(host, port)
        except (OSError, UnicodeError) as exc:  # gaierror is an OSError; a malformed name fails IDNA encoding
            raise AddressRefused(f"{host} could not be resolved") from exc
        if not found:
            raise AddressRefused(f"{host} could not be resolved")
        by_name = self.allows(host, port)
        for ip in found:
            if is_internal(ip) and not by_name and not self.allows(str(ip), port):
                shown = f"[{host}]" if ":" in host else host
                raise AddressRefused(
                    f"{host} resolves to an internal address ({ip}); allow-list {shown}:{port} to call it"
                )
        return found


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, without repeats (an IP literal is itself); raises ``OSError`` when it
    does not resolve."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    # getaddrinfo on the loop runs in the default executor: resolution never blocks the event loop.
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for *_, sockaddr in infos:
        try:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        except ValueError:
            continue
        if ip not in out:
            out.append(ip)
    return out
