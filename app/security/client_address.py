# The citizen's (or admin's) address behind a reverse proxy: X-Forwarded-For is believed only
# through the proxies that app.trusted_proxies names. Used by the Flask views and the fast paths.
"""`client_address(environ, settings)` for every caller that records or limits by address.

`app.trusted_proxies` is empty (the header is ignored: REMOTE_ADDR is the client), a count N
(the client is the N-th address from the right of X-Forwarded-For, as werkzeug's ProxyFix
counts: the last N hops are our own proxies), or comma-separated CIDRs (walking right to left
from REMOTE_ADDR, every address inside them is a proxy of ours; the first one outside is the
client). A forged header from a client that is not a trusted proxy changes nothing.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    count: int = 0
    networks: tuple[Network, ...] = ()

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


@functools.lru_cache(maxsize=16)
def parse_trusted_proxies(text: str) -> TrustedProxies:
    """The setting's value as TrustedProxies; ValueError with a one-line reason when malformed."""
    text = (text or "").strip()
    if not text:
        return TrustedProxies()
    if text.isdigit():
        count = int(text)
        if count > 10:
            raise ValueError(f"a count of proxies is 0..10, got {count}")
        return TrustedProxies(count=count)
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is neither a CIDR nor an address") from None
    return TrustedProxies(networks=tuple(networks))


def forwarded_chain(environ: Mapping[str, Any]) -> list[str]:
    """Every address of every X-Forwarded-For header, left to right (WSGI joins repeats with ',')."""
    header = environ.get("HTTP_X_FORWARDED_FOR") or ""
    return [part.strip() for part in header.split(",") if part.strip()]


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def client_address(environ: Mapping[str, Any], settings) -> str | None:
    """The client's address for this WSGI environ under settings.app.trusted_proxies."""
    remote = environ.get("REMOTE_ADDR")
    proxies = parse_trusted_proxies(settings.app.trusted_proxies)
    if not proxies.count and not proxies.networks:
        return remote
    chain = forwarded_chain(environ)
    if proxies.count:
        if len(chain) < proxies.count:
            return remote  # fewer hops than our proxies add: the header is not theirs
        candidate = chain[-proxies.count]
        return candidate if _valid(candidate) else remote
    if remote is None or not proxies.trusts(remote):
        return remote
    nearest = remote
    for address in reversed(chain):
        if not _valid(address):
            return nearest  # junk sent by the client itself: keep the last hop we can vouch for
        if not proxies.trusts(address):
            return address
        nearest = address
    return nearest
