"""A file for VMs on the fake cloud-hypervisor to "boot", inside the VM manager's image roots
(/tmp): the daemon refuses boot files from anywhere else, such as the test tree."""

import atexit
import shutil
import tempfile
from pathlib import Path

from tests.vmm.conftest import FAKE_CH

_FOLDER = Path(tempfile.mkdtemp(prefix="mvirt-cli-boot-"))
atexit.register(shutil.rmtree, _FOLDER, True)
BOOT_FILE = _FOLDER / "kernel"
shutil.copyfile(FAKE_CH, BOOT_FILE)
