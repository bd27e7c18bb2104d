"""Services file parsing: defaults, dependency order and actionable errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from mvirt.pideisn import services_file
from mvirt.pideisn.services_file import ServicesFileError


def test_full_service_is_parsed(tmp_path):
    path = tmp_path / "services.toml"
    path.write_text(
        """
[services.db]
command = ["/usr/bin/db", "--serve"]
ready = { file = "/run/db.ready" }

[services.web]
command = ["python3", "-m", "http.server", "8080"]
environment = { LANG = "C.UTF-8", WORKERS = 4 }
after = ["db"]
restart = "always"
restart_delay = 0.5
restart_delay_max = 8
ready = { tcp = 8080 }
ready_timeout = 10
stop_timeout = 2
working_directory = "/srv"
"""
    )
    db, web = services_file.load(str(path))
    assert db.ready.file == "/run/db.ready" and db.restart == "on-failure"
    assert web.command == ["python3", "-m", "http.server", "8080"]
    assert web.environment == {"LANG": "C.UTF-8", "WORKERS": "4"}
    assert (web.ready.host, web.ready.port) == ("127.0.0.1", 8080)
    assert (web.restart, web.restart_delay, web.restart_delay_max) == ("always", 0.5, 8.0)
    assert (web.ready_timeout, web.stop_timeout, web.working_directory) == (10.0, 2.0, "/srv")


def test_missing_file_means_no_services(tmp_path):
    assert services_file.load(str(tmp_path / "absent.toml")) == []


def test_services_are_ordered_after_their_dependencies():
    data = {
        "services": {
            "c": {"command": ["c"], "after": ["b"]},
            "b": {"command": ["b"], "after": ["a"]},
            "a": {"command": ["a"]},
        }
    }
    assert [s.name for s in services_file.parse(data)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"service": {}}, "unknown top-level key"),
        ({"services": {"a": {}}}, "'command' must be a non-empty list"),
        ({"services": {"a": {"command": ["x"], "restart": "sometimes"}}}, "use one of always"),
        ({"services": {"a": {"command": ["x"], "after": ["b"]}}}, "'b', which is not declared"),
        ({"services": {"a": {"command": ["x"], "colour": 1}}}, "unknown key"),
        ({"services": {"a": {"command": ["x"], "ready": {"tcp": 70000}}}}, "port number"),
        ({"services": {"a": {"command": ["x"], "ready": {"file": "rel"}}}}, "absolute path"),
        ({"services": {"a": {"command": ["x"], "stop_timeout": -1}}}, "seconds >= 0"),
        (
            {
                "services": {
                    "a": {"command": ["x"], "after": ["b"]},
                    "b": {"command": ["x"], "after": ["a"]},
                }
            },
            "dependency cycle a -> b -> a",
        ),
    ],
)
def test_invalid_files_are_refused_with_the_reason(data, message):
    with pytest.raises(ServicesFileError, match=message):
        services_file.parse(data)


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "services.toml"
    path.write_text("[services.a\n")
    with pytest.raises(ServicesFileError, match=str(path)):
        services_file.load(str(path))


@pytest.mark.parametrize("host", ["localhost", "web.example", "300.1.1.1", "", 8080])
def test_a_probe_host_that_is_not_an_ip_literal_is_reported_for_that_service_alone(host):
    data = {
        "services": {
            "a": {"command": ["x"], "ready": {"tcp": 80, "host": host}},
            "b": {"command": ["y"], "ready": {"tcp": 81, "host": "::1"}},
        }
    }
    a, b = services_file.parse(data)
    assert a.ready.problem is not None and "IP address" in a.ready.problem
    assert (b.ready.problem, b.ready.host) == (None, "::1")


def test_ready_command_and_cmdline_arguments_are_parsed():
    (spec,) = services_file.parse(
        {
            "services": {
                "vmm": {
                    "command": ["/usr/bin/python3", "-m", "mvirt.vmm"],
                    "ready": {"command": ["/usr/bin/probe", "[::1]:50051"]},
                    "cmdline_arguments": {
                        "mvirt.api=tls": ["--tls-listen", "[::]:50051"],
                        "mvirt.debug": ["--log-level", "debug"],
                    },
                }
            }
        }
    )
    assert spec.ready.command == ["/usr/bin/probe", "[::1]:50051"]
    assert spec.ready.describe() == "command /usr/bin/probe [::1]:50051"
    base = ["/usr/bin/python3", "-m", "mvirt.vmm"]
    assert spec.argv(frozenset()) == base
    # Only an exact word adds arguments: mvirt.api=plain is not mvirt.api=tls.
    assert spec.argv(frozenset({"mvirt.api=plain", "quiet"})) == base
    assert spec.argv(frozenset({"mvirt.debug", "mvirt.api=tls"})) == [
        *base, "--tls-listen", "[::]:50051", "--log-level", "debug"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"ready": {"command": []}}, "ready.command must be a non-empty list"),
        ({"ready": {"command": "probe"}}, "ready.command must be a non-empty list"),
        ({"ready": {"command": ["p"], "tcp": 1}}, "one of tcp, file or command"),
        ({"ready": {"command": ["/bin/true"], "timeout": 0}}, "ready.timeout must be a number"),
        ({"ready": {"command": ["/bin/true"], "timeout": -1}}, "ready.timeout must be a number"),
        ({"ready": {"command": ["/bin/true"], "timeout": "9"}}, "ready.timeout must be a number"),
        ({"ready": {"command": ["/bin/true"], "timeout": True}}, "ready.timeout must be a number"),
        ({"ready": {"tcp": 80, "timeout": 5}}, "ready.timeout applies to a probe command only"),
        ({"ready": {"file": "/run/x", "timeout": 5}}, "applies to a probe command only"),
        ({"cmdline_arguments": ["x"]}, "'cmdline_arguments' must be a table"),
        ({"cmdline_arguments": {"a b": ["x"]}}, "must be one command-line word"),
        ({"cmdline_arguments": {"x": "--flag"}}, "cmdline_arguments.'x' must be a list"),
    ],
)
def test_bad_ready_command_or_cmdline_arguments_are_named(body, message):
    with pytest.raises(ServicesFileError, match=message):
        services_file.parse({"services": {"a": {"command": ["x"], **body}}})


def test_when_cmdline_and_cmdline_values_are_parsed():
    (spec,) = services_file.parse(
        {
            "services": {
                "pool": {
                    "command": ["/usr/bin/pool-setup", "--pool", "tank"],
                    "when_cmdline": "mvirt.zfs.disk",
                    "cmdline_values": {
                        "mvirt.zfs.disk": ["--disk"],
                        "mvirt.zfs.pool": ["--pool"],
                    },
                }
            }
        }
    )
    base = ["/usr/bin/pool-setup", "--pool", "tank"]
    assert not spec.wanted(frozenset({"console=ttyS0", "mvirt.zfs.diskette=/dev/vdb"}))
    assert spec.wanted(frozenset({"mvirt.zfs.disk=/dev/vdb"}))
    assert spec.wanted(frozenset({"mvirt.zfs.disk"}))  # the bare word counts too
    assert spec.argv(frozenset({"mvirt.zfs.disk"})) == base  # but carries no value
    # The value is one argument of its own, whatever it holds (the service checks it).
    words = frozenset({"mvirt.zfs.disk=/dev/vdb --force", "mvirt.zfs.pool=data"})
    assert spec.argv(words) == [*base, "--disk", "/dev/vdb --force", "--pool", "data"]
    assert spec.argv(frozenset({"mvirt.zfs.disk="})) == [*base, "--disk", ""]


def test_a_service_without_when_cmdline_is_always_wanted():
    (spec,) = services_file.parse({"services": {"a": {"command": ["x"]}}})
    assert spec.wanted(frozenset()) and spec.when_cmdline is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"when_cmdline": ""}, "'when_cmdline' must be one command-line option name"),
        ({"when_cmdline": "a=b"}, "'when_cmdline' must be one command-line option name"),
        ({"when_cmdline": ["a"]}, "'when_cmdline' must be one command-line option name"),
        ({"cmdline_values": ["--disk"]}, "'cmdline_values' must be a table"),
        ({"cmdline_values": {"a=b": ["--x"]}}, "cmdline_values key 'a=b' must be one"),
        ({"cmdline_values": {"a b": ["--x"]}}, "cmdline_values key 'a b' must be one"),
        ({"cmdline_values": {"a": "--x"}}, "cmdline_values.'a' must be a list"),
    ],
)
def test_bad_when_cmdline_or_cmdline_values_are_named(body, message):
    with pytest.raises(ServicesFileError, match=message):
        services_file.parse({"services": {"a": {"command": ["x"], **body}}})


def test_a_probe_commands_timeout_is_read_from_the_ready_table(tmp_path):
    path = tmp_path / "services.toml"
    path.write_text(
        '[services.a]\ncommand = ["x"]\nready = { command = ["/bin/true"], timeout = 45 }\n'
        '[services.b]\ncommand = ["x"]\nready = { command = ["/bin/true"] }\n'
    )
    a, b = services_file.load(str(path))
    assert (a.ready.command, a.ready.timeout) == (["/bin/true"], 45.0)
    assert b.ready.timeout is None  # the supervisor's default


def test_the_images_services_file_starts_the_node_daemons():
    """mvirt-log, mvirt-net, then mvirt-vmm; the pool and mvirt-zfs only with
    mvirt.zfs.disk. Each daemon is probed on its own loopback listener; with mvirt.api=tls
    each adds a TLS listener on a port its loopback listener does not hold (Linux refuses
    [::]:P while [::1]:P listens)."""
    path = Path(__file__).resolve().parents[2] / "mkosi.extra/etc/pideisn/services.toml"
    specs = {spec.name: spec for spec in services_file.load(str(path))}
    order = list(specs)
    assert set(order) == {"mvirt-log", "mvirt-net", "mvirt-vmm", "zfs-pool", "mvirt-zfs"}
    log, net, vmm, pool, zfs = (
        specs[n] for n in ("mvirt-log", "mvirt-net", "mvirt-vmm", "zfs-pool", "mvirt-zfs")
    )
    assert order.index("mvirt-net") < order.index("mvirt-vmm")
    assert set(vmm.after) == {"mvirt-log", "mvirt-net"}
    assert set(zfs.after) == {"mvirt-log", "zfs-pool"}
    for spec, api_port in ((log, 50052), (vmm, 50051), (zfs, 50053), (net, 50054)):
        argv = spec.argv(frozenset({"mvirt.api=tls"}))
        listen = argv[argv.index("--listen") + 1]
        assert listen.startswith("[::1]:")
        assert spec.ready.command is not None
        assert "mvirt.daemon.health_probe" in spec.ready.command
        assert listen in spec.ready.command
        # The probe gives up on its own (--wait) before pideisn would kill it as hung.
        wait = float(spec.ready.command[spec.ready.command.index("--wait") + 1])
        assert spec.ready.timeout is not None and wait < spec.ready.timeout
        assert argv[argv.index("--tls-listen") + 1] == f"[::]:{api_port}"
        assert not listen.endswith(f":{api_port}")
        assert argv[argv.index("--tls-client-ca") + 1] == "/etc/mvirt/api-ca.crt"
        assert "--tls-listen" not in spec.argv(frozenset())
        if spec is not log:
            assert (
                spec.command[spec.command.index("--log-endpoint") + 1]
                == (log.command[log.command.index("--listen") + 1])
            )
    # Storage only with a pool disk; its value reaches the pool set-up as one argument.
    for spec in (log, net, vmm):
        assert spec.wanted(frozenset())
    for spec in (pool, zfs):
        assert not spec.wanted(frozenset({"mvirt.api=tls"}))
    words = frozenset({"mvirt.zfs.disk=/dev/vdb", "mvirt.zfs.pool=tank"})
    argv = pool.argv(words)
    assert argv[argv.index("--disk") + 1] == "/dev/vdb"
    assert argv[len(argv) - 1 - argv[::-1].index("--pool") + 1] == "tank"  # the last wins
    argv = zfs.argv(words)
    assert argv[len(argv) - 1 - argv[::-1].index("--pool") + 1] == "tank"
    assert (
        zfs.argv(frozenset())[zfs.argv(frozenset()).index("--data-dir") + 1]
        == (pool.argv(frozenset())[pool.argv(frozenset()).index("--state-dir") + 1])
    )  # mvirt-zfs's records live on the pool
    assert pool.ready.file is not None
    # The uplink is eth0 unless the command line names another.
    argv = net.argv(frozenset({"mvirt.net.uplink=eth1"}))
    assert argv[len(argv) - 1 - argv[::-1].index("--uplink") + 1] == "eth1"
    assert net.argv(frozenset())[net.argv(frozenset()).index("--uplink") + 1] == "eth0"


def test_a_probe_command_that_is_not_an_absolute_path_is_refused():
    with pytest.raises(ServicesFileError, match="must start with an absolute path"):
        services_file.parse(
            {"services": {"a": {"command": ["x"], "ready": {"command": ["probe", "--quiet"]}}}}
        )


def test_a_probe_program_that_cannot_run_is_reported_for_that_service_alone(tmp_path):
    not_executable = tmp_path / "probe"
    not_executable.write_text("#!/bin/sh\n")
    data = {
        "services": {
            "a": {"command": ["x"], "ready": {"command": [str(tmp_path / "missing")]}},
            "b": {"command": ["x"], "ready": {"command": [str(not_executable)]}},
            "c": {"command": ["x"], "ready": {"command": [str(tmp_path)]}},
            "d": {"command": ["y"], "ready": {"command": ["/bin/true"]}},
        }
    }
    a, b, c, d = services_file.parse(data)
    for spec in (a, b, c):
        assert spec.ready.problem is not None and "not an executable file" in spec.ready.problem
    assert (d.ready.problem, d.ready.command) == (None, ["/bin/true"])


SERVICE_TOML = b'[services.web]\ncommand = ["/usr/bin/web"]\nready = { tcp = 8080 }\n'


def write_compiled(path: Path, text: bytes) -> None:
    """The TOML and its compiled form, as the image builder writes them."""
    from mvirt_build.cpio import Archive, Entry  # noqa: PLC0415
    from mvirt_build.services_compile import add_compiled_services  # noqa: PLC0415

    archive = Archive()
    archive.add(Entry("/etc/pideisn/services.toml", "file", 0o644, text))
    assert add_compiled_services(archive) == ["/etc/pideisn/services.toml.marshal"]
    path.write_bytes(text)
    compiled = archive.entries["/etc/pideisn/services.toml.marshal"].data
    (path.parent / (path.name + services_file.COMPILED_SUFFIX)).write_bytes(compiled)


def test_a_compiled_services_file_is_loaded_without_tomllib(tmp_path):
    # PID 1 pays for every import at boot: with the builder's compiled form next to the TOML,
    # loading the services file must not import tomllib (with re, string and typing).
    path = tmp_path / "services.toml"
    write_compiled(path, SERVICE_TOML)
    script = (
        "import sys\n"
        "from mvirt.pideisn import services_file\n"
        f"specs = services_file.load({str(path)!r})\n"
        "print(specs[0].name, specs[0].command, specs[0].ready.port, 'tomllib' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert proc.stdout.split() == ["web", "['/usr/bin/web']", "8080", "False"]


def test_a_services_file_edited_after_the_build_wins_over_its_compiled_form(tmp_path):
    path = tmp_path / "services.toml"
    write_compiled(path, SERVICE_TOML)
    path.write_bytes(SERVICE_TOML.replace(b"web", b"api"))
    [spec] = services_file.load(str(path))
    assert (spec.name, spec.command) == ("api", ["/usr/bin/api"])


@pytest.mark.parametrize("damage", [b"", b"\x00garbage", b"\xe9"])
def test_a_damaged_compiled_form_falls_back_to_the_toml(tmp_path, damage):
    path = tmp_path / "services.toml"
    write_compiled(path, SERVICE_TOML)
    (tmp_path / "services.toml.marshal").write_bytes(damage)
    [spec] = services_file.load(str(path))
    assert spec.name == "web"


def test_compiled_tables_are_validated_like_the_toml(tmp_path):
    path = tmp_path / "services.toml"
    write_compiled(path, b'[services.web]\ncommand = ["/usr/bin/web"]\nrestart = "sometimes"\n')
    with pytest.raises(ServicesFileError, match="'restart' is 'sometimes'"):
        services_file.load(str(path))


def test_the_builder_and_the_loader_agree_on_the_compiled_layout():
    from mvirt_build import services_compile  # noqa: PLC0415

    assert services_compile.SUFFIX == services_file.COMPILED_SUFFIX
    assert services_compile.FORMAT == services_file.COMPILED_FORMAT
