"""TCP readiness probes do not block PID 1: a connect to an address that never answers stays
in flight between polls (in a network namespace of the test; needs root, skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.namespaces import namespace_name

CODE = """
import time
from mvirt.pideisn.readiness import Probe
from mvirt.pideisn.services_file import Readiness
probe = Probe("web", Readiness(port=80, host="10.9.9.2"))
start = time.monotonic()
answers = [probe.ready(time.monotonic()) for _ in range(20)]
print(answers.count(True), time.monotonic() - start)
"""


def test_a_probe_to_an_address_that_never_answers_does_not_block():
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace (CI runs as root)")
    name = namespace_name("probe")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (
            ["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
            ["addr", "add", "10.9.9.1/24", "dev", "v0"],
            ["link", "set", "v0", "up"],  # the peer stays down: nobody ever answers ARP
        ):
            subprocess.run(["ip", "-n", name, *argv], check=True)
        out = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-c", CODE],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.split()  # fmt: skip
        ready, elapsed = int(out[0]), float(out[1])
        assert ready == 0
        # A blocking probe waits for the connect (seconds, or its own timeout each time);
        # twenty non-blocking polls take well under a second even on a loaded machine.
        assert elapsed < 1.0
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
