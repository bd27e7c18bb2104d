"""Where the node image puts what mvirt-vmm runs, in one place: mvirt-vmm's defaults come from
here, and the image build installs the files at these paths (docs/vmm.md lists them)."""

from __future__ import annotations

import shutil

SHARED_FILES = "/usr/share/mvirt"
"""The image's read-only boot files (firmware): VMs may boot from them (a default image root)."""
CLOUD_HYPERVISOR = "/usr/bin/cloud-hypervisor"
"""The cloud-hypervisor binary (static release build)."""
CLOUDHV_FIRMWARE = f"{SHARED_FILES}/CLOUDHV.fd"
"""UEFI firmware for cloud-hypervisor (Debian's cloudhv-efi-x86-64): disk boot."""
HYPERVISOR_FW = f"{SHARED_FILES}/hypervisor-fw"
"""rust-hypervisor-firmware, the alternative firmware for cloud-hypervisor."""
API_CLIENT_CA = "/etc/mvirt/api-ca.crt"
"""The CA the node's daemons admit API clients by (``--tls-client-ca``)."""
KVM_DEVICE = "/dev/kvm"
"""The device cloud-hypervisor needs: it has no emulation to fall back to."""


def default_ch_binary() -> str:
    """``cloud-hypervisor`` as found on PATH, else where the image installs it."""
    return shutil.which("cloud-hypervisor") or CLOUD_HYPERVISOR
