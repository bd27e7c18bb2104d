"""Endpoint strings as users write them (``host:port``, ``[::1]:port``, ``http://host:port``)."""

from __future__ import annotations

import re

_ENDPOINT = re.compile(
    r"^(?:(?:https?|grpc)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+):(?P<port>\d{1,5})/?$"
)


def grpc_target(endpoint: str) -> str:
    """Returns the ``host:port`` form gRPC dials, or raises ValueError saying what is wrong."""
    match = _ENDPOINT.match(endpoint.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ValueError(
            f"invalid endpoint {endpoint!r}: expected host:port, [ipv6]:port or http://host:port"
        )
    return f"{match['host']}:{int(match['port'])}"
