"""Kernel command line options pideisn reads (documented in docs/pideisn.md)."""

from __future__ import annotations

SERVICES_FILE = "/etc/pideisn/services.toml"


def split_words(text: str) -> list[str]:
    """Split like the kernel does: whitespace-separated, double quotes group words."""
    words = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.lower() not in ("0", "no", "off", "false")


def _seconds(value: str | None, default: float) -> float:
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


class BootOptions:
    """`mvirt.*` options of the kernel command line, with their defaults."""

    __slots__ = (
        "dhcp6",
        "hostname",
        "ipv4",
        "ipv6",
        "network",
        "network_timeout",
        "services_file",
        "services_timeout",
        "unknown",
        "words",
    )

    def __init__(self, words: list[str]) -> None:
        self.words = frozenset(words)
        options: dict[str, str | None] = {}
        for word in words:
            key, sep, value = word.partition("=")
            if key.startswith("mvirt."):
                options[key] = value if sep else "1"
        self.hostname = options.pop("mvirt.hostname", None) or None
        self.network = _flag(options.pop("mvirt.net", None), True)
        self.ipv4 = _flag(options.pop("mvirt.net.ipv4", None), True)
        self.ipv6 = _flag(options.pop("mvirt.net.ipv6", None), True)
        self.dhcp6 = _flag(options.pop("mvirt.net.dhcp6", None), True)
        self.network_timeout = _seconds(options.pop("mvirt.net.timeout", None), 15.0)
        self.services_file = options.pop("mvirt.services", None) or SERVICES_FILE
        self.services_timeout = _seconds(options.pop("mvirt.services.timeout", None), 60.0)
        self.unknown = sorted(options)

    def unknown_besides(self, consumed: set[str]) -> list[str]:
        """Unknown `mvirt.*` options that no service's `cmdline_arguments` asks for
        (`consumed` holds words such as `mvirt.api=tls`; their keys count as known)."""
        keys = {word.partition("=")[0] for word in consumed}
        return [name for name in self.unknown if name not in keys]

    @classmethod
    def from_proc(cls, path: str = "/proc/cmdline") -> BootOptions:
        """Options of the running kernel (defaults if /proc/cmdline is unreadable)."""
        # Bytes, decoded tolerantly: the command line is whatever the boot loader passed, and
        # one byte that is not UTF-8 must not cost PID 1 its options (or its boot).
        try:
            with open(path, "rb") as source:
                text = source.read().decode("utf-8", errors="replace")
        except OSError:
            return cls([])
        return cls(split_words(text))
