"""The client's IP address, the one answer used by rate limits, login throttling (axes) and logs.

Behind a reverse proxy every request arrives from the proxy, so REMOTE_ADDR alone
would put every citizen in one bucket. X-Forwarded-For is trusted only as far as
the proxies listed in TRUSTED_PROXIES: the chain is walked from the right (the
entry the nearest proxy wrote) and the first address that is not a trusted proxy
is the client. Anything a client wrote further left is ignored, and with no
trusted proxies (the default) the header is ignored altogether.
"""
from __future__ import annotations

import functools
import ipaddress

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES must be a list of CIDRs such as 10.0.0.0/8: {exc}") from None


def trusted_networks() -> tuple[Network, ...]:
    return _networks(tuple(settings.TRUSTED_PROXIES))


def _parse(value: str) -> Address | None:
    """An address as proxies write it ('203.0.113.7', '2001:db8::1', '[2001:db8::1]:443', '203.0.113.7:5000')."""
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return (address.ipv4_mapped or address) if isinstance(address, ipaddress.IPv6Address) else address


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_ip(request) -> str:
    """The address of whoever sent `request` (a Django or DRF request), as a string."""
    remote = request.META.get("REMOTE_ADDR", "")
    networks = trusted_networks()
    current = _parse(remote)
    if current is None or not networks:
        return remote
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    while _trusted(current, networks) and hops:
        previous = _parse(hops.pop())
        if previous is None:  # garbage left of a trusted proxy: that proxy's peer is as far as we can see
            break
        current = previous
    return str(current)
