"""What every ``mvirt`` command shares: exit codes, no tracebacks, the config file, the call
deadline, escaped server text and shell completion. Against a real mvirt-vmm (on the fake
cloud-hypervisor, so no guest needs to boot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import unicodedata
from concurrent import futures
from pathlib import Path

import click
import grpc
import pytest
from click.testing import CliRunner

from mvirt.cli.exit_codes import ExitCode
from mvirt.cli.main import cli, main
from mvirt.cli.output import print_columns
from mvirt.cli.settings import ENDPOINTS
from mvirt.proto import vmm_pb2, vmm_pb2_grpc
from tests.cli.boot_file import BOOT_FILE
from tests.conftest import free_port
from tests.vmm.conftest import FAKE_CH, start_vmm  # noqa: F401 (fixture used below)

DOCUMENTED = {int(code) for code in ExitCode} - {ExitCode.INTERNAL}


@pytest.fixture
def vmm_server(start_vmm):  # noqa: F811
    return start_vmm("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No MVIRT_* settings from the caller; a config folder of our own."""
    for name in list(os.environ):
        if name.startswith("MVIRT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "mvirt" / "config.toml"


def run_mvirt(*args: str, env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mvirt.cli", *args],
        input=stdin,
        check=False,
        capture_output=True,
        env={**os.environ, **env},
        timeout=60,
    )


def commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    """Every command a user can run, by its words (``volume create``): groups are walked."""
    ctx = click.Context(group)
    found: dict[str, click.Command] = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            found.update(commands(command, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = command
    return found


def _value_for(param: click.Parameter) -> str:
    choices = getattr(param.type, "choices", None)
    if choices:
        return str(choices[0])
    return "1G" if param.type.name == "size" else "web"


def required_arguments(command: click.Command) -> list[str]:
    """A command line with every required argument and option given a plausible value."""
    args = []
    for param in command.params:
        if isinstance(param, click.Option) and param.required:
            args += [param.opts[-1], _value_for(param)]
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            args.append(_value_for(param))
    return args


def bad_arguments(command: click.Command) -> list[list[str]]:
    """Command lines that are wrong in each way click can tell: an unknown option, a missing
    argument, an out-of-range number, a value outside a choice."""
    cases = [[*required_arguments(command), "--no-such-option"]]
    if required_arguments(command):
        cases.append([])
    for param in command.params:
        if not isinstance(param, click.Option) or param.is_flag:
            continue
        flag = param.opts[-1]
        if isinstance(param.type, click.IntRange | click.FloatRange):
            cases.append([*required_arguments(command), flag, "-5"])
        elif isinstance(param.type, click.Choice):
            cases.append([*required_arguments(command), flag, "bogus"])
    return cases


def test_every_command_against_a_stopped_daemon_is_one_line_and_exit_5(vmm_server, clean_env):
    endpoint = vmm_server.daemon.endpoint
    assert vmm_server.daemon.terminate() == 0
    env = {e.envvar: endpoint for e in ENDPOINTS.values()}
    daemonless = {"completion": ExitCode.OK, "tui": ExitCode.USAGE}  # no terminal here
    for name, command in commands().items():
        result = run_mvirt(*name.split(), *required_arguments(command), env=env)
        out = result.stdout.decode() + result.stderr.decode()
        assert "Traceback" not in out, (name, out)
        if name in daemonless:
            assert result.returncode == daemonless[name], (name, out)
            continue
        assert result.returncode == ExitCode.UNAVAILABLE, (name, out)
        assert out.count("\n") == 1 and "UNAVAILABLE: cannot reach" in out, (name, out)


def test_bad_arguments_to_every_command_are_usage_errors(clean_env, capsys):
    for name, command in commands().items():
        for args in bad_arguments(command):
            with pytest.raises(SystemExit) as exit_:
                main([*name.split(), *args])
            captured = capsys.readouterr()
            assert exit_.value.code == ExitCode.USAGE, (name, args, captured)
            assert "Traceback" not in captured.out + captured.err
            assert "Error:" in captured.err, (name, args, captured.err)


def test_a_fault_in_mvirt_is_one_line_with_exit_70(clean_env, capsys, monkeypatch):
    def broken(**_kwargs):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(commands()["completion"], "callback", broken)
    with pytest.raises(SystemExit) as exit_:
        main(["completion", "bash"])
    err = capsys.readouterr().err
    assert exit_.value.code == ExitCode.INTERNAL
    assert err == (
        "mvirt: internal error: RuntimeError: broken on purpose (a fault in mvirt; "
        "MVIRT_DEBUG=1 shows the traceback)\n"
    )


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_config_file_sets_defaults_and_the_environment_and_options_win(
    vmm_server, clean_env, tmp_path, monkeypatch
):
    config = clean_env
    config.parent.mkdir(parents=True)
    config.write_text(f'server = "{vmm_server.daemon.endpoint}"\noutput = "json"\n')
    created = invoke("create", "cfg", "--kernel", str(BOOT_FILE))
    assert created.exit_code == 0, created.output
    listed = invoke("list")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["name"] == "cfg"  # output = "json" from the file
    table = invoke("list", "-o", "table").output
    assert "cfg" in table and "STATE" in table

    closed = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("MVIRT_SERVER", closed)
    assert invoke("list").exit_code == ExitCode.UNAVAILABLE  # the environment beats the file
    assert invoke("--server", vmm_server.daemon.endpoint, "list").exit_code == 0
    assert invoke("list", "--server", vmm_server.daemon.endpoint).exit_code == 0

    config.write_text('serve = "x"\n')
    typo = invoke("list")
    assert typo.exit_code == ExitCode.USAGE
    assert f"config file {config}: unknown key 'serve'" in typo.output
    config.write_text("deadline = -1\n")
    assert "deadline must be a number" in invoke("list").output
    monkeypatch.setenv("MVIRT_CONFIG", str(tmp_path / "absent.toml"))
    assert "does not exist (named by MVIRT_CONFIG)" in invoke("list").output


class FakeSilentVmm(vmm_pb2_grpc.VmServiceServicer):
    """A daemon that accepts calls and never answers: what a hung mvirt-vmm looks like."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def ListVms(self, request, context):  # noqa: N802 - the gRPC method's name
        self.release.wait(60)
        return vmm_pb2.ListVmsResponse()


def fake_silent_vmm() -> tuple[FakeSilentVmm, grpc.Server, int]:
    """A hung mvirt-vmm on a free loopback port."""
    servicer = FakeSilentVmm()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    vmm_pb2_grpc.add_VmServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return servicer, server, port


def test_every_call_has_a_deadline(clean_env):
    servicer, server, port = fake_silent_vmm()
    try:
        result = run_mvirt("--deadline", "0.5", "list", env={"MVIRT_SERVER": f"127.0.0.1:{port}"})
        err = result.stderr.decode()
        assert result.returncode == ExitCode.UNAVAILABLE, err
        assert "DEADLINE_EXCEEDED" in err and "--deadline" in err
    finally:
        servicer.release.set()
        server.stop(None)


def test_control_characters_from_the_daemon_never_reach_the_terminal(vmm_server, clean_env):
    cmdline = "console=ttyS0 \x1b]0;owned\x07\x1b[2J\x9b31m \u202eevil"
    env = {"MVIRT_SERVER": vmm_server.daemon.endpoint}
    created = run_mvirt("create", "esc", "--kernel", str(BOOT_FILE), "--cmdline", cmdline, env=env)
    assert created.returncode == 0, created.stderr
    for args in (("get", "esc"), ("get", "esc", "-o", "json"), ("list", "-o", "json")):
        out = run_mvirt(*args, env=env).stdout.decode()
        for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert raw not in out, (args, out)
    shown = run_mvirt("get", "esc", env=env).stdout.decode()
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x9b31m \\u202eevil" in shown
    as_json = json.loads(run_mvirt("get", "esc", "-o", "json", env=env).stdout)
    assert as_json["config"]["cmdline"] == cmdline  # scripts still get the exact value


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_columns_line_up_on_the_terminal_with_wide_and_escaped_text(capsys):
    rows = [("web", "ok"), ("ウェブ", "ok"), ("a\x1bb", "ok"), ("plain-name", "ok")]
    print_columns(("NAME", "STATE"), rows)
    header, *lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("a\\x1bb ")  # escaped: four cells for the control character
    # Where STATE starts, in terminal cells, is the same on every line: a wide character
    # takes two cells.
    starts = {display_width(header[: header.index("STATE")])}
    starts |= {display_width(line[: line.index("ok")]) for line in lines}
    assert starts == {len("plain-name  ")}, [header, *lines]


def complete(words: str, env: dict[str, str]) -> list[str]:
    result = run_mvirt(
        env={
            **env,
            "_MVIRT_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
        }
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    return [line for line in result.stdout.decode().splitlines() if line]


def test_completion_offers_vm_names_from_the_daemon(vmm_server, clean_env):
    env = {"MVIRT_SERVER": vmm_server.daemon.endpoint}
    for name in ("web", "worker", "db"):
        assert run_mvirt("create", name, "--kernel", str(BOOT_FILE), env=env).returncode == 0
    assert complete("mvirt start w", env) == ["plain,web", "plain,worker"]
    assert complete("mvirt get ", env) == ["plain,db", "plain,web", "plain,worker"]
    assert "plain,list" in complete("mvirt li", env)
    other = {"MVIRT_SERVER": f"127.0.0.1:{free_port()}"}
    assert complete("mvirt get ", other) == []  # no daemon: no suggestions, no error
    for shell in ("bash", "zsh", "fish"):
        script = run_mvirt("completion", shell, env=env)
        assert script.returncode == 0 and b"_MVIRT_COMPLETE" in script.stdout


def test_exit_codes_table_in_docs_matches_the_code():
    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in docs, code
