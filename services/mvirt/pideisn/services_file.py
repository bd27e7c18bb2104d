"""The services file (`/etc/pideisn/services.toml`): parsed once into validated objects.

```toml
[services.web]
command = ["/usr/bin/python3", "-m", "http.server", "8080"]
environment = { LANG = "C.UTF-8" }
after = ["db"]                 # started once these are ready
restart = "always"             # always | on-failure | never
restart_delay = 1.0            # first backoff (s), doubled per quick failure
restart_delay_max = 30.0
ready = { tcp = 8080 }         # or { tcp = 8080, host = "::1" } (an IP literal, no names)
                               # or { file = "/run/web.ready" }
                               # or { command = ["/usr/bin/probe", "--quiet"] } (exit status 0)
                               # with timeout = SECONDS: the probe is killed after that long
ready_timeout = 30.0
stop_timeout = 5.0             # SIGTERM, then SIGKILL after this many seconds
working_directory = "/"

[services.web.cmdline_arguments]  # appended to command when the kernel command line has the word
"web.debug" = ["--debug"]
```

A service can depend on a kernel command-line option `NAME=VALUE`:

```toml
[services.pool]
command = ["/usr/bin/pool-setup"]
when_cmdline = "pool.disk"     # started only when the command line has pool.disk=VALUE
                               # (or the bare word pool.disk); otherwise reported, not started

[services.pool.cmdline_values]  # the option's VALUE appended as one argument after these
"pool.disk" = ["--disk"]       # pool.disk=/dev/vdb -> ... --disk /dev/vdb
```

A value is passed as one argument of its own (never joined into another string); the service
checks it like any other argument.

The TOML is the source of truth. Parsing it at boot would cost PID 1 the import of `tomllib`
(with `re`, `string` and `typing`, ~0.2 s under emulation), so the image builder also stores
the parsed tables next to it, `PATH.marshal` (see `COMPILED_SUFFIX`): a `marshal` dump of
`(COMPILED_FORMAT, the TOML's bytes, the parsed tables)`. `load` uses that only when the bytes
it holds are exactly the TOML's current bytes; otherwise (no such file, another format, a
TOML edited since the build, anything unreadable) it parses the TOML itself. Either way the
tables go through the same validation (`parse`).
"""

from __future__ import annotations

import _socket
import marshal
import os

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# The compiled form the image builder writes next to the TOML (mvirt_build's services_compile
# writes the same layout; the builder imports nothing of pideisn).
COMPILED_SUFFIX = ".marshal"
COMPILED_FORMAT = "pideisn-services-1"
RESTART_POLICIES = ("always", "on-failure", "never")
_KEYS = {
    "command",
    "environment",
    "after",
    "restart",
    "restart_delay",
    "restart_delay_max",
    "ready",
    "ready_timeout",
    "stop_timeout",
    "working_directory",
    "cmdline_arguments",
    "cmdline_values",
    "when_cmdline",
}


class ServicesFileError(ValueError):
    """The services file is unreadable or invalid; the message names the place and the fix."""


class Readiness:
    """How to tell a service is ready: a TCP port accepting, a file existing, a probe command
    exiting with status 0 (run in a child process, again while it fails), or nothing.

    `timeout` is how long one run of a probe command may take before it is killed (None: the
    supervisor's default). `problem` says what is wrong with a probe that cannot be used;
    such a service is reported and not started, and the other services start as usual.
    """

    __slots__ = ("command", "file", "host", "port", "problem", "timeout")

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        file: str | None = None,
        command: list[str] | None = None,
        problem: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.file = file
        self.command = command
        self.problem = problem
        self.timeout = timeout

    def describe(self) -> str:
        """`tcp 127.0.0.1:8080`, `file /run/x`, `command probe args` or `started`."""
        if self.port is not None:
            return f"tcp {self.host}:{self.port}"
        if self.file is not None:
            return f"file {self.file}"
        if self.command is not None:
            return "command " + " ".join(self.command)
        return "started"


class ServiceSpec:
    """One declared service."""

    __slots__ = (
        "after",
        "cmdline_arguments",
        "cmdline_values",
        "command",
        "environment",
        "name",
        "ready",
        "ready_timeout",
        "restart",
        "restart_delay",
        "restart_delay_max",
        "stop_timeout",
        "when_cmdline",
        "working_directory",
    )

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        environment: dict[str, str] | None = None,
        after: list[str] | None = None,
        restart: str = "on-failure",
        restart_delay: float = 1.0,
        restart_delay_max: float = 30.0,
        ready: Readiness | None = None,
        ready_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        working_directory: str = "/",
        cmdline_arguments: dict[str, list[str]] | None = None,
        cmdline_values: dict[str, list[str]] | None = None,
        when_cmdline: str | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.environment = environment or {}
        self.after = after or []
        self.restart = restart
        self.restart_delay = restart_delay
        self.restart_delay_max = restart_delay_max
        self.ready = ready or Readiness()
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.working_directory = working_directory
        self.cmdline_arguments = cmdline_arguments or {}
        self.cmdline_values = cmdline_values or {}
        self.when_cmdline = when_cmdline

    def wanted(self, cmdline_words: set[str] | frozenset[str]) -> bool:
        """False when `when_cmdline` names an option the kernel command line does not carry."""
        if self.when_cmdline is None:
            return True
        return self.when_cmdline in cmdline_words or (
            cmdline_value(cmdline_words, self.when_cmdline) is not None
        )

    def cmdline_options(self) -> set[str]:
        """The command-line words and option names this service reads (not "unknown")."""
        found = set(self.cmdline_arguments) | set(self.cmdline_values)
        if self.when_cmdline is not None:
            found.add(self.when_cmdline)
        return found

    def argv(self, cmdline_words: set[str] | frozenset[str]) -> list[str]:
        """The command, plus the arguments of every `cmdline_arguments` word the kernel
        command line contains, then those of every `cmdline_values` option it carries with
        the option's value as one more argument (each in the file's order)."""
        argv = list(self.command)
        for word, arguments in self.cmdline_arguments.items():
            if word in cmdline_words:
                argv.extend(arguments)
        for option, arguments in self.cmdline_values.items():
            value = cmdline_value(cmdline_words, option)
            if value is not None:
                argv.extend([*arguments, value])
        return argv

    def __repr__(self) -> str:
        return f"ServiceSpec({self.name!r}, {self.command!r})"


def cmdline_value(cmdline_words: set[str] | frozenset[str], option: str) -> str | None:
    """VALUE of the word `option=VALUE` on the command line (the last one when repeated, as
    the kernel does), or None."""
    prefix = option + "="
    found = None
    for word in sorted(cmdline_words):  # a set has no order: repeated options are rare
        if word.startswith(prefix):
            found = word[len(prefix) :]
    return found


def load(path: str) -> list[ServiceSpec]:
    """Read and validate a services file; a missing file means no services."""
    try:
        with open(path, "rb") as source:
            text = source.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ServicesFileError(f"{path}: {exc}") from exc
    data = compiled_tables(path + COMPILED_SUFFIX, text)
    if data is None:
        data = parse_toml(text, path)
    return parse(data, path)


def compiled_tables(path: str, text: bytes) -> dict[str, object] | None:
    """The parsed tables stored at `path` when they were made from exactly `text`, else None
    (missing, unreadable, another format or a TOML changed since)."""
    try:
        with open(path, "rb") as source:
            stored = marshal.load(source)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if (
        isinstance(stored, tuple)
        and len(stored) == 3
        and stored[0] == COMPILED_FORMAT
        and stored[1] == text
        and isinstance(stored[2], dict)
    ):
        return stored[2]
    return None


def parse_toml(text: bytes, where: str) -> dict[str, object]:
    """The TOML's tables; tomllib is imported only here (it is slow to import at boot)."""
    import tomllib  # noqa: PLC0415

    try:
        return tomllib.loads(text.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ServicesFileError(f"{where}: {exc}") from exc


def parse(data: Mapping[str, object], where: str = "services file") -> list[ServiceSpec]:
    """Validate parsed TOML into specs, in dependency order (a service after what it needs)."""
    extra = set(data) - {"services"}
    if extra:
        raise ServicesFileError(
            f"{where}: unknown top-level key(s) {', '.join(sorted(extra))}; "
            "services are declared as [services.NAME] tables"
        )
    table = data.get("services", {})
    if not isinstance(table, dict):
        raise ServicesFileError(f"{where}: 'services' must be a table of [services.NAME] tables")
    specs = [_service(name, body, where) for name, body in table.items()]
    return _ordered(specs, where)


def _service(name: str, body: object, where: str) -> ServiceSpec:
    here = f"{where}: service {name!r}"
    if not isinstance(body, dict):
        raise ServicesFileError(f"{here} must be a table")
    unknown = set(body) - _KEYS
    if unknown:
        raise ServicesFileError(
            f"{here}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"known keys are {', '.join(sorted(_KEYS))}"
        )
    command = body.get("command")
    if isinstance(command, str):
        command = command.split()
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise ServicesFileError(f"{here}: 'command' must be a non-empty list of strings")
    environment = body.get("environment", {})
    if not isinstance(environment, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool)
        for k, v in environment.items()
    ):
        raise ServicesFileError(f"{here}: 'environment' must be a table of strings")
    after = body.get("after", [])
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise ServicesFileError(f"{here}: 'after' must be a list of service names")
    restart = body.get("restart", "on-failure")
    if restart not in RESTART_POLICIES:
        raise ServicesFileError(
            f"{here}: 'restart' is {restart!r}; use one of {', '.join(RESTART_POLICIES)}"
        )
    working_directory = body.get("working_directory", "/")
    if not isinstance(working_directory, str):
        raise ServicesFileError(f"{here}: 'working_directory' must be a path")
    return ServiceSpec(
        name,
        command,
        environment={k: str(v) for k, v in environment.items()},
        after=after,
        restart=str(restart),
        restart_delay=_seconds(body, "restart_delay", 1.0, here),
        restart_delay_max=_seconds(body, "restart_delay_max", 30.0, here),
        ready=_readiness(body.get("ready"), here),
        ready_timeout=_seconds(body, "ready_timeout", 30.0, here),
        stop_timeout=_seconds(body, "stop_timeout", 5.0, here),
        working_directory=working_directory,
        cmdline_arguments=_cmdline_table(
            body.get("cmdline_arguments", {}), here, "cmdline_arguments", _cmdline_word, "WORD"
        ),
        cmdline_values=_cmdline_table(
            body.get("cmdline_values", {}), here, "cmdline_values", _option_name, "OPTION"
        ),
        when_cmdline=_when_cmdline(body.get("when_cmdline"), here),
    )


def _option_name(name: object) -> bool:
    """A command-line option name: one word, no `=` or quote."""
    return isinstance(name, str) and bool(name) and not any(c.isspace() or c in '="' for c in name)


def _when_cmdline(value: object, here: str) -> str | None:
    if value is None:
        return None
    if not _option_name(value):
        raise ServicesFileError(
            f"{here}: 'when_cmdline' must be one command-line option name without '=' "
            '(e.g. "mvirt.zfs.disk")'
        )
    return str(value)


def _cmdline_word(word: str) -> bool:
    return bool(word) and not any(c.isspace() or c == '"' for c in word)


def _cmdline_table(
    value: object, here: str, key: str, valid: Callable[[str], bool], what: str
) -> dict[str, list[str]]:
    """A table of command-line KEY = [ARGUMENT, ...] whose keys `valid` accepts."""
    if not isinstance(value, dict):
        raise ServicesFileError(f"{here}: '{key}' must be a table of {what} = [ARGUMENT, ...]")
    result: dict[str, list[str]] = {}
    for name, arguments in value.items():
        if not valid(name):
            raise ServicesFileError(f"{here}: {key} key {name!r} must be {_WHAT[what]}")
        if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
            raise ServicesFileError(f"{here}: {key}.{name!r} must be a list of strings")
        result[name] = arguments
    return result


_WHAT = {
    "OPTION": "one command-line option name without '=' (e.g. \"mvirt.zfs.disk\")",
    "WORD": 'one command-line word (e.g. "mvirt.api=tls")',
}


def _seconds(body: dict[str, object], key: str, default: float, here: str) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ServicesFileError(f"{here}: {key!r} must be a number of seconds >= 0")
    return float(value)


def _readiness(value: object, here: str) -> Readiness:
    if value is None:
        return Readiness()
    if not isinstance(value, dict) or set(value) - {"tcp", "host", "file", "command", "timeout"}:
        raise ServicesFileError(
            f"{here}: 'ready' must be {{ tcp = PORT }} (optionally host = ADDRESS), "
            "{ file = PATH } or { command = [PROGRAM, ARGUMENT, ...] } (optionally "
            "timeout = SECONDS)"
        )
    if len({"tcp", "file", "command"} & set(value)) > 1:
        raise ServicesFileError(f"{here}: 'ready' takes one of tcp, file or command")
    if "timeout" in value and "command" not in value:
        raise ServicesFileError(
            f"{here}: ready.timeout applies to a probe command only "
            "(ready = { command = [PROGRAM, ...], timeout = SECONDS })"
        )
    if "command" in value:
        timeout = _probe_timeout(value.get("timeout"), here)
        command = value["command"]
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(c, str) for c in command)
        ):
            raise ServicesFileError(f"{here}: ready.command must be a non-empty list of strings")
        program = command[0]
        if not program.startswith("/"):
            raise ServicesFileError(
                f"{here}: ready.command must start with an absolute path (e.g. /usr/bin/python3)"
            )
        if not executable_file(program):
            # Reported for this service alone (the others still start), like a probe host
            # that is not an IP address: a probe that cannot run never makes it ready.
            return Readiness(
                command=command,
                problem=f"ready.command program {program} is not an executable file",
                timeout=timeout,
            )
        return Readiness(command=command, timeout=timeout)
    if "tcp" in value:
        port = value["tcp"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ServicesFileError(f"{here}: ready.tcp must be a port number 1-65535")
        host = value.get("host", "127.0.0.1")
        if not isinstance(host, str) or not ip_literal(host):
            # Reported for this service alone (the others still start): a name would need a
            # blocking resolution in PID 1, so only an IPv4 or IPv6 literal is accepted.
            return Readiness(
                port=port,
                problem=f"ready.host is {host!r}; it must be an IP address such as "
                "127.0.0.1 or ::1 (no names)",
            )
        return Readiness(port=port, host=host)
    path = value.get("file")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ServicesFileError(f"{here}: ready.file must be an absolute path")
    return Readiness(file=path)


def _probe_timeout(value: object, here: str) -> float | None:
    """ready.timeout: seconds one run of a probe command may take (None: the default)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ServicesFileError(
            f"{here}: ready.timeout must be a number of seconds > 0 (how long one run of the "
            "probe command may take before it is killed)"
        )
    return float(value)


def executable_file(path: str) -> bool:
    """True when `path` is a file this process may execute (a probe program)."""
    return os.access(path, os.X_OK) and not os.path.isdir(path)


def ip_literal(text: str) -> bool:
    """True for an IPv4 or IPv6 address literal (a probe never resolves names)."""
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, text)
            return True
        except (OSError, ValueError):
            continue
    return False


def _ordered(specs: list[ServiceSpec], where: str) -> list[ServiceSpec]:
    by_name = {s.name: s for s in specs}
    for spec in specs:
        for dep in spec.after:
            if dep not in by_name:
                raise ServicesFileError(
                    f"{where}: service {spec.name!r} is after {dep!r}, which is not declared"
                )
    ordered: list[ServiceSpec] = []
    state: dict[str, str] = {}

    def visit(spec: ServiceSpec, chain: list[str]) -> None:
        if state.get(spec.name) == "done":
            return
        if state.get(spec.name) == "visiting":
            cycle = " -> ".join([*chain[chain.index(spec.name) :], spec.name])
            raise ServicesFileError(f"{where}: dependency cycle {cycle}")
        state[spec.name] = "visiting"
        for dep in spec.after:
            visit(by_name[dep], [*chain, spec.name])
        state[spec.name] = "done"
        ordered.append(spec)

    for spec in specs:
        visit(spec, [])
    return ordered
