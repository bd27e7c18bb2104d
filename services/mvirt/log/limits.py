"""mvirt-log's input limits now live in :mod:`mvirt.daemon.log_limits` (the audit client in
``mvirt.daemon`` applies them, and ``mvirt.daemon`` imports no service package); this name
stays for code that still imports it from here."""

from mvirt.daemon.log_limits import *  # noqa: F403
