"""The foundation every mvirt daemon shares: server bootstrap, error mapping, audit client.

A daemon plugs in with a :class:`DaemonSpec` and :func:`run`; see docs/daemons.md.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mvirt.daemon.audit import AuditLogger
    from mvirt.daemon.errors import (
        AlreadyExistsError,
        FailedPreconditionError,
        InvalidArgumentError,
        MvirtError,
        NotFoundError,
        ResourceExhaustedError,
        UnavailableError,
    )
    from mvirt.daemon.server import DaemonContext, DaemonSpec, Service, StartupError, run

# Loaded on first use, so a client importing one small module of this package (the endpoint
# parser, say) does not pay for the server, asyncio and the audit client.
_HOMES = {
    "AuditLogger": "mvirt.daemon.audit",
    **dict.fromkeys(
        (
            "AlreadyExistsError",
            "FailedPreconditionError",
            "InvalidArgumentError",
            "MvirtError",
            "NotFoundError",
            "ResourceExhaustedError",
            "UnavailableError",
        ),
        "mvirt.daemon.errors",
    ),
    **dict.fromkeys(
        ("DaemonContext", "DaemonSpec", "Service", "StartupError", "run"), "mvirt.daemon.server"
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mvirt.daemon' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "AlreadyExistsError",
    "AuditLogger",
    "DaemonContext",
    "DaemonSpec",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "MvirtError",
    "NotFoundError",
    "ResourceExhaustedError",
    "Service",
    "StartupError",
    "UnavailableError",
    "run",
]
