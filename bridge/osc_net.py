"""Addresses and the socket of the OSC door: which clients may talk to it, which addresses are
its own, and a UDP socket that serves both IP families on ``::`` and can take a burst.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence

from .errors import BridgeError, UsageError

log = logging.getLogger("longplay.osc")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Asked of the kernel for the receive buffer. Linux's default (~208 KB) holds ~90 one-KB requests:
# a DAW script firing a burst loses most of it before the server reads a byte. 4 MB holds ~1,700;
# the kernel caps it at net.core.rmem_max, and what it granted is logged.
RCVBUF_BYTES = 4 << 20


def plain_ip(host: str) -> IP | None:
    """A host as the checks see it: no ``%scope``, and an IPv4 client on a dual-stack socket
    (reported as ``::ffff:a.b.c.d``) as the IPv4 address it is. None if not an IP address."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    ip = plain_ip(host)
    return ip is not None and ip.is_loopback


def networks(allow: Sequence[str]) -> list[Network]:
    """Allow-list entries (IP, CIDR or host name) -> networks; host names are resolved once.
    v4-mapped entries (``::ffff:10.0.0.0/104``) become the IPv4 networks they mean."""
    nets: list[Network] = []
    for entry in allow:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            try:
                infos = socket.getaddrinfo(entry, None, type=socket.SOCK_DGRAM)
            except OSError as err:
                raise UsageError(f"--allow {entry}: not an IP address, network or known host name ({err})") from None
            nets += [ipaddress.ip_network(plain_ip(str(info[4][0])) or str(info[4][0])) for info in infos]
            continue
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
            v4 = net.network_address.ipv4_mapped
            if v4 is not None:
                net = ipaddress.IPv4Network(f"{v4}/{net.prefixlen - 96}")
        nets.append(net)
    return nets


def is_allowed(host: str, allowed: Sequence[Network]) -> bool:
    """Loopback always; others when in an allow-list network (both families, v4-mapped as IPv4)."""
    ip = plain_ip(host)
    return ip is not None and (ip.is_loopback or any(ip in net for net in allowed))


def is_local(ip: IP) -> bool:
    """Whether ``ip`` reaches this machine. Binding to an address succeeds only for this machine's
    own addresses, which covers every interface without listing them."""
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(ip), 0))
        return True
    except OSError:
        return False


def is_own(host: str, port: int, bound_host: str, bound_port: int) -> bool:
    """Whether (host, port) is the socket bound to (bound_host, bound_port): on a wildcard bind,
    any address of this machine on that port."""
    if port != bound_port:
        return False
    ip, bound = plain_ip(host), plain_ip(bound_host)
    if ip is None:
        return False
    if bound is None or bound.is_unspecified:
        return is_local(ip)
    return ip == bound


def open_udp(host: str, port: int) -> tuple[socket.socket, str]:
    """A bound UDP socket -> (socket, the bound host as an IP). ``::`` serves IPv4 too, or is
    refused with the reason; the receive buffer asked for is ``RCVBUF_BYTES``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as err:
        raise UsageError(f"--host {host}: not an address or known host name ({err.strerror})") from None
    # A name with both families ("localhost" on many systems) binds its IPv4 address: that is what
    # DAW scripts send to, and an IPv6-only socket would hear none of them.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, addr = infos[0][0], infos[0][4]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        bound = plain_ip(str(addr[0]))
        if family == socket.AF_INET6 and bound is not None and bound.is_unspecified:
            # "::" means every address of this machine, IPv4 ones included (their clients arrive
            # as ::ffff:a.b.c.d). Some systems default to IPv6 only (net.ipv6.bindv6only, BSDs).
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except (OSError, AttributeError) as err:
                raise BridgeError(
                    f"cannot serve IPv4 and IPv6 on one socket here ({err}); listen on "
                    "--host 0.0.0.0 for IPv4 clients or on an IPv6 address for IPv6 ones"
                ) from None
        _grow_receive_buffer(sock)
        sock.bind(addr)
    except OSError as err:
        sock.close()
        raise BridgeError(f"cannot listen for OSC on {host}:{port}: {err.strerror or err}") from None
    except BaseException:
        sock.close()
        raise
    return sock, str(addr[0])


def _grow_receive_buffer(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    except OSError as err:
        log.warning("OSC receive buffer: could not ask for %d bytes (%s)", RCVBUF_BYTES, err)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # Linux reports twice what was set (the other half is its bookkeeping), capped at rmem_max.
    if granted < RCVBUF_BYTES:
        log.warning(
            "OSC receive buffer: asked for %d bytes, the kernel granted %d; bursts of requests "
            "may be dropped (raise net.core.rmem_max to allow more)",
            RCVBUF_BYTES,
            granted,
        )
    else:
        log.info("OSC receive buffer: asked for %d bytes, the kernel granted %d", RCVBUF_BYTES, granted)
