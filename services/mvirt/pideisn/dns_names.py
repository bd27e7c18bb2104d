"""DNS names received from the network, validated before they reach /etc/resolv.conf or the
hostname: a server can send any bytes, and a newline in a "domain" would add lines to
resolv.conf.
"""

from __future__ import annotations


def labels_ok(name: str) -> bool:
    """True for dot-separated RFC 1123 labels (letters, digits, inner hyphens), ≤ 253 bytes."""
    labels = name.split(".")
    for label in labels:
        if not 0 < len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(c.isascii() and (c.isalnum() or c == "-") for c in label):
            return False
    return len(name) <= 253


def valid_domain(raw: bytes) -> str | None:
    """A DNS domain name (letters, digits, hyphens, dots; RFC 1123), or None if it is not one."""
    try:
        name = raw.rstrip(b"\0").decode("ascii").rstrip(".")
    except UnicodeDecodeError:
        return None
    return name if name and labels_ok(name) else None


def valid_hostname(raw: bytes) -> str | None:
    """A host name (one or more RFC 1123 labels, at most 64 bytes), or None."""
    name = valid_domain(raw)
    return name if name is not None and len(name) <= 64 else None
