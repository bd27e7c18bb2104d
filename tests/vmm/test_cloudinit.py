"""The NoCloud seed is an ISO9660 image labelled cidata that standard tools read."""

import shutil
import subprocess
import sys

import pytest

from mvirt.vmm.cloudinit import network_config, write_seed

pytestmark = pytest.mark.skipif(shutil.which("xorriso") is None, reason="xorriso not installed")

USER_DATA = "#cloud-config\nusers:\n  - name: ops\n"


def test_seed_is_iso9660_labelled_cidata_with_the_three_files(tmp_path):
    seed = tmp_path / "cidata.iso"
    write_seed(seed, user_data=USER_DATA, vm_id="vm-1", hostname="web", macs=["52:54:00:AA:00:01"])

    info = subprocess.run(
        ["xorriso", "-indev", str(seed), "-pvd_info"], capture_output=True, text=True, check=True
    )
    assert "Volume Id    : cidata" in info.stdout
    out = tmp_path / "out"
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(seed), "-extract", "/", str(out)],
        capture_output=True,
        check=True,
    )
    assert sorted(p.name for p in out.iterdir()) == ["meta-data", "network-config", "user-data"]
    assert (out / "user-data").read_text() == USER_DATA
    assert (out / "meta-data").read_text() == "instance-id: vm-1\nlocal-hostname: web\n"
    assert 'macaddress: "52:54:00:aa:00:01"' in (out / "network-config").read_text()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.skipif(shutil.which("blkid") is None, reason="blkid not installed")
def test_blkid_sees_the_label(tmp_path):
    seed = tmp_path / "cidata.iso"
    write_seed(seed, user_data="", vm_id="x", hostname="x", macs=[])
    result = subprocess.run(
        ["blkid", "-p", "-o", "export", str(seed)], capture_output=True, text=True, check=True
    )
    assert "LABEL=cidata" in result.stdout.splitlines()
    assert "TYPE=iso9660" in result.stdout.splitlines()


def test_network_config_without_nics_is_valid_yaml_shape():
    assert network_config([]) == "version: 2\nethernets: {}\n"


def test_without_libarchive_the_daemon_still_imports_and_user_data_is_a_precondition(tmp_path):
    """The node image carries no libarchive: mvirt-vmm must start there, and a VM with user
    data is refused with FAILED_PRECONDITION naming what is missing."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import mvirt.vmm.daemon\n"
        "from mvirt.vmm import cloudinit\n"
        "from mvirt.daemon.errors import FailedPreconditionError\n"
        "try:\n"
        "    cloudinit.write_seed(Path(sys.argv[1]), user_data='#cloud-config', vm_id='x',\n"
        "                         hostname='x', macs=[])\n"
        "except FailedPreconditionError as exc:\n"
        "    print(exc)\n"
    )
    seed = tmp_path / "seed.iso"
    result = subprocess.run(
        [sys.executable, "-c", code, str(seed)],
        env={"LIBARCHIVE": str(tmp_path / "no-libarchive.so"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config.user_data needs libarchive")
    assert not seed.exists() and not seed.with_suffix(".tmp").exists()
