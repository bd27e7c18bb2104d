"""/etc/resolv.conf from the DNS servers and search domains DHCP and RAs handed out."""

from __future__ import annotations

import _socket
import os

from mvirt.pideisn.dns_names import labels_ok


def _ip_literal(text: str) -> bool:
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, text)
            return True
        except (OSError, ValueError):
            continue
    return False


def write_resolv_conf(
    path: str, servers: list[str], domains: list[str], *, allow_empty: bool = False
) -> bool:
    """Write resolv.conf atomically; True if written. Without any server nothing is written,
    unless `allow_empty` (servers that were written before have expired).

    Only IP literals and valid DNS names are written, whatever the caller passes: every line
    stays one `nameserver` or the `search` line, never something a DHCP server made up.
    """
    servers = [s for s in servers if _ip_literal(s)]
    domains = [d for d in domains if labels_ok(d)]
    if not servers and not allow_empty:
        return False
    lines = ["# written by pideisn from DHCP and router advertisements\n"]
    if domains:
        lines.append("search " + " ".join(domains) + "\n")
    lines += [f"nameserver {server}\n" for server in servers]
    tmp = path + ".pideisn.tmp"
    with open(tmp, "w") as out:
        out.writelines(lines)
    try:
        os.replace(tmp, path)
    except OSError:
        # A bind-mounted resolv.conf (containers, tests) cannot be replaced: write in place.
        os.unlink(tmp)
        with open(path, "w") as out:
            out.writelines(lines)
    return True
