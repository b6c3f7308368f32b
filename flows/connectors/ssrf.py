"""Server-side request forgery checks shared by every connector.

A flow's URL is written by a tenant, so without these checks a flow could read the cloud
metadata service (169.254.169.254), our own Redis and PostgreSQL on loopback, or anything
else on the private network the workers sit in. The checks look at the addresses a host
*resolves to*, not at the name, because a public-looking name can point anywhere.

Checking is only half of it: the caller must then connect to the address returned here
rather than resolving the name again (see ``flows.connectors.http``), or a DNS answer that
changes between the check and the connect (DNS rebinding) would get around the check.
"""

from __future__ import annotations

import ipaddress
import socket
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from flows.connectors import ConnectorError, SSRFRefused

if TYPE_CHECKING:
    from flows.connectors.http import HttpPolicy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")

# 100.64.0.0/10 is carrier-grade NAT space: inside a cloud it is often the provider's own
# internal network, so it is as private as 10/8 even though it is not in RFC 1918.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# NAT64 (RFC 6052) carries an IPv4 address in the last 32 bits; a gateway would forward
# 64:ff9b::a00:5 to 10.0.0.5.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def check_scheme(scheme: str) -> None:
    """Refuse anything but http and https (file://, gopher://, ftp:// … reach local resources)."""
    if not scheme:
        raise SSRFRefused("the URL has no scheme; only http and https are allowed")
    if scheme.lower() not in ALLOWED_SCHEMES:
        raise SSRFRefused(f"scheme {scheme!r} is not allowed; only http and https are")


def normalize_host(host: str) -> str:
    """The form hosts are compared in: lower case, no IPv6 brackets, no trailing dot."""
    return host.strip().strip("[]").rstrip(".").lower()


def host_allowed(host: str, allowed_hosts: list[str]) -> bool:
    """Whether ``host`` matches one of the fnmatch-style patterns (``*.example.com``)."""
    name = normalize_host(host)
    return any(fnmatchcase(name, normalize_host(pattern)) for pattern in allowed_hosts)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the tunnelling forms.

    ``::ffff:127.0.0.1`` connects to 127.0.0.1 on a dual-stack socket, so it must be judged
    as 127.0.0.1, not as an IPv6 address.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(ip: str | IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address a connector may call by default.

    Loopback, private (RFC 1918, fc00::/7), link-local (169.254/16 with the metadata
    service, fe80::/10), multicast, reserved, unspecified (0.0.0.0 reaches localhost on
    Linux), CGNAT and documentation ranges are not public; IPv6 forms that embed an IPv4
    address are judged by that address.
    """
    address = ip if isinstance(ip, IPAddress) else ipaddress.ip_address(str(ip).split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _describe(address: IPAddress) -> str:
    """A word for why an address is refused, for messages a builder can act on."""
    if isinstance(address, ipaddress.IPv6Address) and _embedded_ipv4(address) is not None:
        return f"IPv4-embedding address (stands for {_embedded_ipv4(address)})"
    for label, flag in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return f"{label} address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "carrier-grade NAT address"
    return "non-public address"


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates.

    The lookup has no timeout of its own: it is bounded by the system resolver's settings
    (``/etc/resolv.conf`` timeout and attempts). A temporary resolver failure is retryable;
    a name that does not exist is not, since retrying will not create it.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        retryable = exc.errno == socket.EAI_AGAIN
        raise ConnectorError(f"could not resolve host {host}: {exc.strerror}", retryable=retryable) from exc
    except UnicodeError as exc:
        raise ConnectorError(f"host {host!r} is not a valid host name") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ConnectorError(f"host {host} resolved to no address", retryable=True)
    return addresses


def check_host(host: str, port: int, policy: HttpPolicy) -> list[str]:
    """The addresses ``host`` resolves to, all of them allowed by ``policy``; else SSRFRefused.

    A non-empty ``allowed_hosts`` is checked on the name first. Then every resolved address
    must be public: a name that resolves to one public and one private address is refused,
    because the connection could land on either. ``allow_private`` lifts that only for a
    host that matched a non-empty ``allowed_hosts``, so a tenant opts in per named host and
    never for "anything".
    """
    name = normalize_host(host)
    if not name:
        raise SSRFRefused("the URL has no host")
    if policy.allowed_hosts and not host_allowed(name, policy.allowed_hosts):
        raise SSRFRefused(f"host {name} is not in allowed_hosts ({', '.join(policy.allowed_hosts)})")
    private_opt_in = policy.allow_private and bool(policy.allowed_hosts)
    addresses = resolve(name, port)
    for address in addresses:
        parsed = ipaddress.ip_address(address)
        if is_public_address(parsed) or private_opt_in:
            continue
        hint = " (allow_private applies only to hosts in allowed_hosts)" if policy.allow_private else ""
        raise SSRFRefused(f"host {name} resolves to {_describe(parsed)} {address}{hint}")
    return addresses
