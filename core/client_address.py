"""The client address of a request: the direct peer, or what trusted proxies forwarded.

Behind a reverse proxy every connection comes from the proxy, so throttling and logs
keyed on the peer would treat all users as one client. ``X-Forwarded-For`` fixes that,
but anyone can send the header, so it is believed only when the direct peer is one of
``ARCHNEST_TRUSTED_PROXIES``. The list is then walked from the right (the hop closest to
us) past every trusted proxy; the first address that is not a trusted proxy is the
client. Entries further left were written by the client or by proxies we do not know
and are never believed — this is what nginx's ``real_ip_recursive`` and HAProxy do.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .keys import SETTINGS_KEY
from .settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse_ip(value: str) -> IPAddress | None:
    """One address as proxies write it: bare, ``[v6]``, ``[v6]:port`` or ``v4:port``."""
    value = value.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # IPv4 with a port; a bare IPv6 has two or more colons
        value = value.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; they are IPv4 clients.
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _is_trusted(addr: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    # Checked per version: an IPv4 address "in" an IPv6 network compares raw integers.
    return any(addr.version == net.version and addr in net for net in trusted)


def resolve_client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]
) -> str:
    """The client address from the direct peer and the ``X-Forwarded-For`` header values."""
    peer_addr = _parse_ip(peer) if peer else None
    if peer_addr is None:
        return peer or "-"
    if not trusted or not _is_trusted(peer_addr, trusted):
        return str(peer_addr)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    client = peer_addr
    for hop in reversed(hops):
        addr = _parse_ip(hop)
        if addr is None:
            # Garbage from a trusted hop: keep the last address we could believe.
            break
        client = addr
        if not _is_trusted(addr, trusted):
            break
    return str(client)


def client_address(request: web.BaseRequest, trusted: Sequence[IPNetwork] | None = None) -> str:
    """The client address of this request (the one logs and login throttling use).

    ``trusted`` defaults to the app's ``Settings.trusted_proxies``.
    """
    if trusted is None:
        trusted = request.app[SETTINGS_KEY].trusted_proxies  # type: ignore[attr-defined]
    if not trusted:
        return request.remote or "-"
    return resolve_client_address(
        request.remote, request.headers.getall("X-Forwarded-For", ()), trusted
    )


def access_logger_class(trusted: Sequence[IPNetwork]) -> type[AbstractAccessLogger]:
    """An aiohttp access logger whose ``remote=`` is the client address, not the proxy.

    The log format is fixed (key=value, like the other log lines); the request line is
    logged because credentials travel in headers or bodies, never in it.
    """
    networks = tuple(trusted)

    class ClientAddressAccessLogger(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            if request is None:  # aiohttp answered before a request could be parsed
                remote, line = "-", "-"
            else:
                remote = client_address(request, networks)
                version = request.version
                line = f"{request.method} {request.path_qs} HTTP/{version.major}.{version.minor}"
            self.logger.info(
                'remote=%s request="%s" status=%s bytes=%s seconds=%.6f',
                remote,
                line,
                response.status,
                response.body_length,
                time,
            )

        @property
        def enabled(self) -> bool:
            return self.logger.isEnabledFor(logging.INFO)

    return ClientAddressAccessLogger


__all__ = ["access_logger_class", "client_address", "resolve_client_address"]
