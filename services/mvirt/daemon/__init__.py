"""The foundation every mvirt daemon shares: server bootstrap, error mapping, audit client.

A daemon plugs in with a :class:`DaemonSpec` and :func:`run`; see docs/daemons.md.
"""

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
