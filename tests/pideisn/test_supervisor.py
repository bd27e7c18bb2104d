"""The supervisor with real child processes: readiness, restart policies with backoff,
output prefixing, reverse-order stop with SIGTERM then SIGKILL."""

import _signal
import itertools
import os
import socket
import sys
import time

import pytest

from mvirt.pideisn import services_file
from mvirt.pideisn.loop import Loop
from mvirt.pideisn.signals import Reaper, SignalDispatcher
from mvirt.pideisn.supervisor import EXITED, PROBE_INTERVAL, STOPPED, Supervisor

PY = sys.executable


@pytest.fixture
def runtime():
    loop = Loop()
    reaper = Reaper()
    signals = SignalDispatcher(loop)
    signals.on(_signal.SIGCHLD, reaper.reap)
    yield loop, reaper
    signals.close()
    loop.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make(runtime, services: dict, output=None):
    loop, reaper = runtime
    lines: list[bytes] = []
    specs = services_file.parse({"services": services})
    supervisor = Supervisor(
        loop,
        reaper,
        specs,
        base_env={"PATH": os.environ["PATH"]},
        output=output or lines.append,
    )
    return supervisor, lines


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def test_ready_by_tcp_port_and_output_prefixed(runtime):
    loop, _ = runtime
    port = free_port()
    code = (
        "import socket, time; print('hello', flush=True); time.sleep(0.3); "
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"
    )
    supervisor, lines = make(
        runtime, {"web": {"command": py(code), "ready": {"tcp": port}, "stop_timeout": 2}}
    )
    supervisor.start()
    assert not supervisor.all_settled()
    assert loop.run_until(supervisor.all_settled, 20)
    web = supervisor.by_name["web"]
    assert web.ever_ready and not web.gave_up
    loop.run_until(lambda: bool(lines), 5)
    assert lines[0] == b"web | hello\n"
    supervisor.stop_all()
    assert web.state == STOPPED


def test_a_service_is_seen_ready_when_its_port_accepts_not_a_poll_later():
    # The loop's clock stands still, so the readiness poll timer never comes due: only the
    # probe's connect, watched on the loop, can tell that the port accepts (a non-blocking
    # connect is in progress when the call returns, even on loopback).
    now = [1000.0]
    loop = Loop(clock=lambda: now[0])
    reaper = Reaper()
    signals = SignalDispatcher(loop)
    signals.on(_signal.SIGCHLD, reaper.reap)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    service = {"command": py("import time; time.sleep(60)"), "stop_timeout": 2}
    service["ready"] = {"tcp": listener.getsockname()[1]}
    try:
        supervisor, _ = make((loop, reaper), {"web": service})
        supervisor.start()
        for _ in range(100):  # at most 5 s of real time
            if supervisor.all_settled():
                break
            loop.run_once(0.05)
        assert supervisor.by_name["web"].ever_ready
        loop.clock = time.monotonic  # stopping waits on real time
        supervisor.stop_all()
    finally:
        listener.close()
        signals.close()
        loop.close()


def test_ready_by_file_and_dependents_wait(runtime, tmp_path):
    loop, _ = runtime
    flag = tmp_path / "ready"
    order = tmp_path / "order"
    first = f"import time; open({str(order)!r}, 'a').write('a\\n'); time.sleep(0.3); "
    first += f"open({str(flag)!r}, 'w').close(); time.sleep(60)"
    second = f"import time; open({str(order)!r}, 'a').write('b\\n'); time.sleep(60)"
    supervisor, _ = make(
        runtime,
        {
            "b": {"command": py(second), "after": ["a"]},
            "a": {"command": py(first), "ready": {"file": str(flag)}},
        },
    )
    supervisor.start()
    assert supervisor.by_name["b"].pid is None  # waits for a's readiness file
    assert loop.run_until(supervisor.all_settled, 20)
    assert loop.run_until(lambda: order.exists() and order.read_text().count("\n") == 2, 10)
    assert order.read_text() == "a\nb\n"
    supervisor.stop_all()


def test_always_restarts_with_growing_backoff(runtime, tmp_path):
    loop, _ = runtime
    starts = tmp_path / "starts"
    code = f"import time; open({str(starts)!r}, 'a').write(f'{{time.monotonic()}}\\n')"
    supervisor, _ = make(
        runtime,
        {"flaky": {"command": py(code), "restart": "always", "restart_delay": 0.2}},
    )
    supervisor.start()
    assert loop.run_until(lambda: starts.exists() and len(starts.read_text().split()) >= 4, 30)
    times = [float(t) for t in starts.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # The delay doubles per quick exit: at least 0.2, 0.4, 0.8 s between starts.
    for gap, delay in zip(gaps, [0.2, 0.4, 0.8], strict=False):
        assert gap >= delay
    supervisor.stop_all()
    count = len(starts.read_text().split())
    loop.run_until(lambda: False, 2.0)
    assert len(starts.read_text().split()) == count  # no restart once stopping


def test_on_failure_restarts_only_failures(runtime, tmp_path):
    loop, _ = runtime
    counter = tmp_path / "count"
    fail_once = (
        f"import os, sys; p = {str(counter)!r}; n = len(open(p).read()) if os.path.exists(p) "
        "else 0; open(p, 'a').write('x'); sys.exit(1 if n == 0 else 0)"
    )
    supervisor, _ = make(
        runtime,
        {"job": {"command": py(fail_once), "restart": "on-failure", "restart_delay": 0.1}},
    )
    supervisor.start()
    job = supervisor.by_name["job"]
    assert loop.run_until(lambda: job.state == EXITED, 20)
    assert counter.read_text() == "xx"  # failed once, restarted, then exited 0 and stayed down
    assert job.starts == 2


def test_never_and_missing_executable_give_up(runtime):
    loop, _ = runtime
    supervisor, _ = make(
        runtime,
        {
            "gone": {"command": ["/nonexistent/binary"], "restart": "never"},
            "after-gone": {"command": py("import time; time.sleep(60)"), "after": ["gone"]},
        },
    )
    supervisor.start()
    assert loop.run_until(supervisor.all_settled, 10)
    assert supervisor.by_name["gone"].gave_up
    # A dependency that gave up does not block the boot: its dependents still start.
    assert supervisor.by_name["after-gone"].pid is not None
    supervisor.stop_all()


def test_stop_is_reverse_order_and_escalates_to_sigkill(runtime, tmp_path):
    loop, _ = runtime
    log = tmp_path / "stops"
    graceful = (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        f"    open({str(log)!r}, 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "while True: time.sleep(1)\n"
    )
    stubborn = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True: time.sleep(1)\n"
    )
    supervisor, _ = make(
        runtime,
        {
            "first": {"command": [PY, "-c", graceful, "first"]},
            "second": {"command": [PY, "-c", graceful, "second"], "after": ["first"]},
            "third": {"command": py(stubborn), "after": ["second"], "stop_timeout": 0.5},
        },
    )
    supervisor.start()
    assert loop.run_until(lambda: all(s.pid for s in supervisor.services), 20)
    loop.run_until(lambda: False, 1.0)  # let the children install their handlers
    supervisor.stop_all()
    assert log.read_text() == "second\nfirst\n"
    third = supervisor.by_name["third"]
    assert third.state == STOPPED
    assert os.WIFSIGNALED(third.last_status) and os.WTERMSIG(third.last_status) == 9


def test_misconfigured_probe_is_reported_and_the_others_still_start(runtime, capfd):
    loop, _ = runtime
    supervisor, _lines = make(
        runtime,
        {
            "bad": {
                "command": py("import time; time.sleep(60)"),
                "ready": {"tcp": 80, "host": "localhost"},
            },
            "good": {"command": py("import time; time.sleep(60)"), "after": ["bad"]},
        },
    )
    supervisor.start()
    assert loop.run_until(supervisor.all_settled, 20)
    bad, good = supervisor.by_name["bad"], supervisor.by_name["good"]
    assert bad.pid is None and bad.gave_up
    assert good.ever_ready
    assert "bad: not started: ready.host is 'localhost'" in capfd.readouterr().err
    supervisor.stop_all()


def test_a_probe_that_fails_never_raises_into_the_supervisor(runtime):
    loop, _ = runtime
    specs = services_file.parse(
        {
            "services": {
                "odd": {"command": py("import time; time.sleep(60)"), "ready_timeout": 1},
                "good": {"command": py("import time; time.sleep(60)")},
            }
        }
    )
    # A probe the parser would refuse, as a caller building specs by hand could make one.
    specs[0].ready = services_file.Readiness(port=80, host="no.such.name.invalid")
    supervisor = Supervisor(loop, runtime[1], specs, base_env={"PATH": os.environ["PATH"]})
    supervisor.start()
    assert loop.run_until(supervisor.all_settled, 20)
    assert supervisor.by_name["good"].ever_ready
    assert supervisor.by_name["odd"].gave_up
    supervisor.stop_all()


def test_ready_by_probe_command_in_a_child_process(runtime, tmp_path):
    """The probe runs again after each failure; the service is ready once it exits 0, and
    its dependents start only then. The probe's output is prefixed on the console."""
    loop, _ = runtime
    flag = tmp_path / "serving"
    attempts = tmp_path / "attempts"
    service = f"import time; time.sleep(0.5); open({str(flag)!r}, 'w').close(); time.sleep(60)"
    probe = (
        f"import os, sys; open({str(attempts)!r}, 'a').write('x'); "
        f"ok = os.path.exists({str(flag)!r}); print('probe', ok); sys.exit(0 if ok else 1)"
    )
    supervisor, lines = make(
        runtime,
        {
            "daemon": {"command": py(service), "ready": {"command": py(probe)}},
            "client": {"command": py("import time; time.sleep(60)"), "after": ["daemon"]},
        },
    )
    supervisor.start()
    daemon, client = supervisor.by_name["daemon"], supervisor.by_name["client"]
    assert loop.run_until(lambda: daemon.ever_ready, 20)
    assert flag.exists()
    assert len(attempts.read_text()) >= 2  # failed at least once before the flag existed
    assert daemon.probe_pid is None
    assert loop.run_until(lambda: client.pid is not None, 10)
    assert loop.run_until(lambda: b"daemon (ready) | probe True\n" in lines, 5)
    supervisor.stop_all()


def test_a_probe_that_never_succeeds_gives_up_after_ready_timeout(runtime):
    loop, _ = runtime
    supervisor, _ = make(
        runtime,
        {
            "daemon": {
                "command": py("import time; time.sleep(60)"),
                "ready": {"command": py("import sys; sys.exit(3)")},
                "ready_timeout": 1.0,
            }
        },
    )
    supervisor.start()
    daemon = supervisor.by_name["daemon"]
    assert loop.run_until(supervisor.all_settled, 20)
    assert daemon.gave_up and not daemon.ever_ready
    supervisor.stop_all()
    assert loop.run_until(lambda: daemon.probe_pid is None, 5)  # no probe left behind


def test_cmdline_arguments_reach_the_service(runtime, tmp_path):
    loop, reaper = runtime
    out = tmp_path / "argv"
    code = f"import sys; open({str(out)!r}, 'w').write(' '.join(sys.argv[1:]))"
    specs = services_file.parse(
        {
            "services": {
                "d": {
                    "command": [PY, "-c", code, "--listen", "[::1]:1"],
                    "restart": "never",
                    "cmdline_arguments": {"mvirt.api=tls": ["--tls-listen", "[::]:1"]},
                }
            }
        }
    )
    supervisor = Supervisor(
        loop,
        reaper,
        specs,
        base_env={"PATH": os.environ["PATH"]},
        output=lambda _line: None,
        cmdline_words=frozenset({"console=ttyS0", "mvirt.api=tls"}),
    )
    supervisor.start()
    assert loop.run_until(lambda: supervisor.by_name["d"].state == EXITED, 20)
    assert out.read_text() == "--listen [::1]:1 --tls-listen [::]:1"


def test_a_service_whose_cmdline_option_is_absent_is_not_started(runtime, tmp_path, capfd):
    """Without the option the service and what comes after it with the same condition are
    reported and not started; the others start and the boot settles. With the option, its
    value reaches the command as one argument."""
    loop, reaper = runtime
    out = tmp_path / "argv"
    code = f"import sys; open({str(out)!r}, 'w').write(repr(sys.argv[1:]))"
    services = {
        "pool": {
            "command": [PY, "-c", code, "--pool", "p"],
            "restart": "never",
            "when_cmdline": "test.disk",
            "cmdline_values": {"test.disk": ["--disk"]},
        },
        "storage": {
            "command": py("import time; time.sleep(60)"),
            "after": ["pool"],
            "when_cmdline": "test.disk",
        },
        "other": {"command": py("import time; time.sleep(60)")},
    }

    def supervise(words: frozenset[str]) -> Supervisor:
        supervisor = Supervisor(
            loop,
            reaper,
            services_file.parse({"services": services}),
            base_env={"PATH": os.environ["PATH"]},
            output=lambda _line: None,
            cmdline_words=words,
        )
        supervisor.start()
        return supervisor

    without = supervise(frozenset({"console=ttyS0", "test.diskless=1"}))
    assert loop.run_until(without.all_settled, 20)
    assert without.by_name["other"].ever_ready
    for name in ("pool", "storage"):
        assert without.by_name[name].pid is None and without.by_name[name].state == STOPPED
        assert without.by_name[name].starts == 0
    assert not out.exists()
    assert "pool: not started (no test.disk on the kernel command line)" in capfd.readouterr().err
    without.stop_all()
    assert loop.run_until(lambda: without.by_name["other"].state == STOPPED, 20)

    with_disk = supervise(frozenset({"test.disk=/dev/vdb"}))
    assert loop.run_until(lambda: with_disk.by_name["pool"].state == EXITED, 20)
    assert out.read_text() == repr(["--pool", "p", "--disk", "/dev/vdb"])
    assert with_disk.by_name["storage"].starts == 1
    with_disk.stop_all()


def test_a_probe_command_that_cannot_run_is_reported_and_the_others_still_start(
    runtime, tmp_path, capfd
):
    loop, _ = runtime
    supervisor, _lines = make(
        runtime,
        {
            "bad": {
                "command": py("import time; time.sleep(60)"),
                "ready": {"command": [str(tmp_path / "no-such-probe")]},
            },
            "good": {"command": py("import time; time.sleep(60)"), "after": ["bad"]},
        },
    )
    supervisor.start()
    assert loop.run_until(supervisor.all_settled, 20)
    bad, good = supervisor.by_name["bad"], supervisor.by_name["good"]
    assert bad.pid is None and bad.gave_up
    assert good.ever_ready
    assert "bad: not started: ready.command program" in capfd.readouterr().err
    supervisor.stop_all()


def test_a_probe_command_that_fails_to_start_never_raises_and_is_logged_once(
    runtime, tmp_path, capfd
):
    loop, reaper = runtime
    specs = services_file.parse(
        {
            "services": {
                "odd": {"command": py("import time; time.sleep(60)"), "ready_timeout": 1},
                "good": {"command": py("import time; time.sleep(60)")},
            }
        }
    )
    # A probe the parser would report, as a caller building specs by hand could make one.
    specs[0].ready = services_file.Readiness(command=[str(tmp_path / "gone")])
    supervisor = Supervisor(loop, reaper, specs, base_env={"PATH": os.environ["PATH"]})
    supervisor.start()
    odd = supervisor.by_name["odd"]
    assert loop.run_until(supervisor.all_settled, 20)
    assert supervisor.by_name["good"].ever_ready
    assert odd.gave_up and not odd.ever_ready
    # Retried while the service is starting (two more attempts here), but reported once.
    first_retry = odd.probe_after
    assert loop.run_until(lambda: odd.probe_after >= first_retry + 2 * PROBE_INTERVAL, 10)
    assert capfd.readouterr().err.count("odd: readiness probe command") == 1
    supervisor.stop_all()
