"""Where ``mvirt`` finds its daemons and how it talks to them: the endpoint table and the
config file.

One table declares every daemon endpoint; its flag (``--zfs-server``), environment variable
(``MVIRT_ZFS_SERVER``) and config key (``zfs_server``) all come from it, so they can never
disagree. A value is taken from, first to last: the command's option, the option given before
the command, the environment, the config file, the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvirt.cli.exit_codes import CliError, ExitCode

CONFIG_ENV = "MVIRT_CONFIG"
DEADLINE_ENV = "MVIRT_DEADLINE"
OUTPUT_ENV = "MVIRT_OUTPUT"
DEFAULT_DEADLINE = 30.0
"""Seconds a request/response call may take before the CLI gives up on it."""


@dataclass(frozen=True)
class Endpoint:
    """A daemon endpoint: its flag, environment variable, default and service name."""

    flag: str
    envvar: str
    default: str
    service: str

    @property
    def key(self) -> str:
        """The config file key: ``zfs_server`` for ``--zfs-server``."""
        return self.flag.removeprefix("--").replace("-", "_")


ENDPOINTS: dict[str, Endpoint] = {
    e.flag: e
    for e in (
        Endpoint("--server", "MVIRT_SERVER", "http://[::1]:50051", "mvirt-vmm"),
        Endpoint("--log-server", "MVIRT_LOG_SERVER", "http://[::1]:50052", "mvirt-log"),
        Endpoint("--zfs-server", "MVIRT_ZFS_SERVER", "http://[::1]:50053", "mvirt-zfs"),
        Endpoint("--net-server", "MVIRT_NET_SERVER", "http://[::1]:50054", "mvirt-net"),
    )
}
"""Every daemon the CLI talks to, by flag."""

_STRING_KEYS = {*(e.key for e in ENDPOINTS.values()), "tls", "tls_fingerprint", "output"}
KEYS = frozenset({*_STRING_KEYS, "deadline"})
"""The keys a config file may set."""


def config_path() -> Path:
    """``$MVIRT_CONFIG``, else ``$XDG_CONFIG_HOME/mvirt/config.toml`` (by default
    ``~/.config/mvirt/config.toml``)."""
    if given := os.environ.get(CONFIG_ENV):
        return Path(given)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mvirt" / "config.toml"


def _config_error(path: Path, problem: str) -> CliError:
    return CliError(f"config file {path}: {problem}", ExitCode.USAGE)


@dataclass(frozen=True)
class Config:
    """The settings of a config file, checked when loaded."""

    values: dict[str, Any]
    path: Path

    def get(self, key: str) -> Any:
        """The value of ``key``, or None when the file does not set it."""
        return self.values.get(key)

    @property
    def tls_dir(self) -> Path | None:
        """``tls``, with ``~`` expanded and relative to the file's folder."""
        value = self.values.get("tls")
        if value is None:
            return None
        return self.path.parent / Path(value).expanduser()


def load_config(path: Path | None = None) -> Config:
    """The config file at ``path`` (default :func:`config_path`); a missing default file is
    an empty config, a file named by ``$MVIRT_CONFIG`` must exist."""
    explicit = path is not None or CONFIG_ENV in os.environ
    path = path or config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        if explicit:
            raise _config_error(path, f"does not exist (named by {CONFIG_ENV})") from None
        return Config({}, path)
    except (OSError, UnicodeDecodeError) as exc:
        raise _config_error(path, f"cannot be read ({exc})") from None
    import tomllib  # noqa: PLC0415 - only when there is a file to read

    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _config_error(path, f"is not valid TOML ({exc})") from None
    for key, value in values.items():
        if key not in KEYS:
            raise _config_error(path, f"unknown key {key!r}; known keys: {', '.join(sorted(KEYS))}")
        if key == "deadline":
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise _config_error(path, "deadline must be a number of seconds above 0")
        elif not isinstance(value, str) or not value:
            raise _config_error(path, f"{key} must be a non-empty string")
    if values.get("output", "table") not in ("table", "json"):
        raise _config_error(path, "output must be 'table' or 'json'")
    return Config(values, path)
