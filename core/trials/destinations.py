"""Where a webhook may go: not into the service's own network unless the operator says so.

A ``callback_url`` is chosen by whoever submits a comparison, and the worker that POSTs to it
sits inside the deployment, next to Postgres, Redis and a cloud metadata endpoint. With
``ARCHBENCH_WEBHOOK_ALLOW_PRIVATE`` false (the default under ``ARCHBENCH_ENV=production``),
a destination that is, or resolves to, a loopback, private, link-local, shared, multicast,
reserved or unspecified address is refused: at submit time when the URL names such an
address (or ``localhost``), and again at every delivery after resolving the name, and the
POST then goes to the very address that was checked (the name is sent as ``Host`` and as the
TLS server name), so a DNS answer that changes between the check and the connection cannot
steer it inside. In development the default allows private destinations: a receiver on the
same machine is the common case there.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

from core.config import Settings

__all__ = ["Refused", "allows_private", "literal_refusal", "resolve_public"]


class Refused(ValueError):
    """The destination is inside the service's network and private ones are not allowed."""


def allows_private(settings: Settings) -> bool:
    """Whether webhooks may go to private addresses (explicit setting, else not production)."""
    if settings.webhook_allow_private is not None:
        return settings.webhook_allow_private
    return settings.env != "production"


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT, RFC 2765: ::ffff:0:a.b.c.d


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to (IPv4-mapped, IPv4-translated, NAT64, 6to4,
    Teredo, IPv4-compatible), or None. Such an address reaches that IPv4 host through a translator
    or tunnel, so it is judged as that host: ``64:ff9b::a9fe:a9fe`` is 169.254.169.254."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _IPV4_TRANSLATED or any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # ::a.b.c.d (deprecated); not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and (not embedded.is_global or embedded.is_multicast):
            return True
        if ip.is_site_local:  # fec0::/10: deprecated, yet still routed inside some networks
            return True
    return not ip.is_global or ip.is_multicast


def literal_refusal(url: str) -> str | None:
    """Why ``url`` is refused without resolving anything (an address or localhost), or None."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine"
    try:
        blocked = _blocked(host)
    except ValueError:
        return None  # a name: checked when resolved, at delivery
    return f"{host} is not a public address" if blocked else None


def resolve_public(url: str) -> tuple[str, str]:
    """``url`` with its host replaced by a checked public address, and the original host.

    Raises Refused when any address the name resolves to is not public (saying "private
    address", never which: the error is shown to whoever chose the URL, and the service's
    internal DNS answers are not theirs to learn), and OSError when it does not resolve.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    reason = literal_refusal(url)
    if reason:
        raise Refused(reason)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = sorted({str(info[4][0]) for info in infos})
    if any(_blocked(a) for a in addresses):
        raise Refused("private address")
    address = addresses[0]
    netloc_host = f"[{address}]" if ":" in address else address
    netloc = f"{netloc_host}:{parts.port}" if parts.port else netloc_host
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit(parts._replace(netloc=netloc)), host
