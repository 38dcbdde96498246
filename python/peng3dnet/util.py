"""Address helpers.

Accepted forms: a ``(host, port)`` tuple or list, ``"host"``, ``"host:port"``, and, as
extensions over the original library, IPv6 literals (``"::1"``, ``"[::1]"`` and
``"[::1]:8080"``) and in-process addresses (``"memory:NAME"``, see :func:`memory_name`).
"""

import ipaddress

from . import errors

__all__ = [
    "MEMORY_SCHEME",
    "memory_name",
    "normalize_addr_formatted",
    "normalize_addr_socketstyle",
    "parse_address",
]

MEMORY_SCHEME = "memory:"
"""The prefix of in-process addresses (an extension: servers and clients of one process
that talk without sockets)."""


def memory_name(addr):
    """The name of an in-process address, or None for any other address.

    ``addr`` is ``"memory:NAME"`` or a ``("memory:NAME", port)`` pair (the form
    ``Server.addr`` and ``getpeername()`` take for such addresses; the port is ignored).
    Raises :class:`~peng3dnet.errors.InvalidAddressError` for ``"memory:"`` without a
    name or with spaces in it.
    """
    if isinstance(addr, (tuple, list)) and addr:
        addr = addr[0]
    if not isinstance(addr, str) or not addr.startswith(MEMORY_SCHEME):
        return None
    name = addr[len(MEMORY_SCHEME) :]
    if not name or any(c.isspace() for c in name):
        raise errors.InvalidAddressError(
            f"{addr!r} is not a valid in-process address: give a name without spaces, e.g. 'memory:game1'"
        )
    return name


def _check_port(port):
    if isinstance(port, bool) or not isinstance(port, int):
        try:
            port = int(str(port).strip())
        except ValueError:
            raise errors.InvalidPortError(
                f"port {port!r} is not an integer; give a number from 0 to 65535"
            ) from None
    if not 0 <= port <= 65535:
        raise errors.InvalidPortError(f"port {port} is out of range; give a number from 0 to 65535")
    return port


def _check_host(host):
    if not isinstance(host, str):
        raise errors.InvalidHostError(f"host {host!r} must be a string, not {type(host).__name__}")
    if host == "" or any(c.isspace() for c in host):
        raise errors.InvalidHostError(f"host {host!r} is not a valid host name or IP address")
    return host


def _ipv6_literal(text):
    """``text`` if it is an IPv6 address (with an optional ``%zone``); anything else with
    several colons is refused as the original refused every such address."""
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        raise errors.UnsupportedAddressError(
            f"{text!r} is not an IPv6 address (the only addresses with several colons); "
            "give 'host:port', an IPv6 address such as '::1', or '[::1]:8080'"
        ) from None
    return text


def parse_address(addr, default_port=8080):
    """Split an address string into ``(host, port)``.

    ``default_port`` is used when the string names no port. Raises
    :class:`~peng3dnet.errors.InvalidPortError` for a port that is not an integer in
    0-65535 and :class:`~peng3dnet.errors.InvalidHostError` for an empty host.
    """
    text = str(addr).strip()
    if text.startswith("["):
        # [IPv6] or [IPv6]:port
        end = text.find("]")
        if end < 0:
            raise errors.InvalidAddressError(f"address {text!r} has an unclosed '['")
        host, rest = _ipv6_literal(text[1:end]), text[end + 1 :]
        if rest == "":
            port = default_port
        elif rest.startswith(":"):
            port = rest[1:]
        else:
            raise errors.InvalidAddressError(f"unexpected {rest!r} after the IPv6 address in {text!r}")
    elif text.count(":") > 1:
        # A bare IPv6 literal cannot carry a port (the last group would be ambiguous).
        host, port = _ipv6_literal(text), default_port
    elif ":" in text:
        host, port = text.split(":")
    else:
        host, port = text, default_port
    return _check_host(host), _check_port(port)


def normalize_addr_socketstyle(addr, default_port=8080):
    """Return ``addr`` as a ``(host, port)`` tuple, as the :mod:`socket` module takes it.

    ``addr`` may be a 2-tuple or 2-list, or any string :func:`parse_address` accepts.
    """
    if isinstance(addr, (tuple, list)):
        if len(addr) != 2:
            raise errors.InvalidAddressError(
                f"address {addr!r} must be a (host, port) pair, not {len(addr)} items"
            )
        return _check_host(addr[0]), _check_port(addr[1])
    return parse_address(addr, default_port)


def normalize_addr_formatted(addr, default_port=8080):
    """Return ``addr`` as one string: ``"host:port"``, or ``"[v6]:port"`` for IPv6.

    The original library documents this function but raises ``NotImplementedError``.
    """
    host, port = normalize_addr_socketstyle(addr, default_port)
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"
