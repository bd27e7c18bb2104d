"""The builder stands on its own: it imports no daemon and not the VM manager."""

import subprocess
import sys

PROBE = """
import pkgutil, importlib, sys
import mvirt_build
for info in pkgutil.walk_packages(mvirt_build.__path__, "mvirt_build."):
    if info.name != "mvirt_build.collect_modules":  # runs inside the image only
        importlib.import_module(info.name)
print(" ".join(sorted(m for m in sys.modules if m == "mvirt" or m.startswith("mvirt."))))
"""


def test_builder_imports_neither_the_vm_manager_nor_a_daemon() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [m for m in loaded if m.startswith(("mvirt.vmm", "mvirt.daemon"))], loaded
    assert "mvirt.accel" in loaded  # the shared accelerator probe
