"""/etc/resolv.conf from the DNS servers and search domains DHCP and RAs handed out."""

from __future__ import annotations

import os


def write_resolv_conf(path: str, servers: list[str], domains: list[str]) -> None:
    """Write resolv.conf atomically; nothing is written without any server."""
    if not servers:
        return
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
