"""The clean-up of network namespaces a killed test run left behind."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.namespaces import NETNS_DIR, namespace_name, remove_stale


def test_namespaces_of_exited_processes_are_removed_and_no_others():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2's ip to create network namespaces")
    exited = subprocess.Popen(["true"])
    exited.wait()
    pid_namespace = os.stat("/proc/self/ns/pid").st_ino
    stale = f"mvtest-test-{pid_namespace}-{exited.pid}-0123abcd"
    live = namespace_name("test")
    # Made in another pid namespace: whether its process lives cannot be told from here.
    foreign = f"mvtest-test-{pid_namespace + 1}-{exited.pid}-0123abcd"
    names = (stale, live, foreign)
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert stale in remove_stale()
        assert not (NETNS_DIR / stale).exists()
        assert (NETNS_DIR / live).exists()
        assert (NETNS_DIR / foreign).exists()
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
