"""The UKI size budget: components of the initramfs and the table against the goal."""

from mvirt_build import budget


def test_paths_fall_into_the_components_the_budget_names():
    site = budget.SITE_DIR
    assert budget.component_of(f"{site}/grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so") == (
        "grpc + protobuf"
    )
    assert budget.component_of(f"{site}/grpc_health/v1/health.pyc") == "grpc + protobuf"
    assert budget.component_of(f"{site}/google/protobuf/message.pyc") == "grpc + protobuf"
    assert budget.component_of(f"{site}/qemu/qmp/__init__.pyc") == "other Python packages"
    assert budget.component_of(f"{site}/mvirt/vmm/daemon.pyc") == "our code"
    assert budget.component_of("/etc/pideisn/services.toml") == "our code"
    assert budget.component_of("/usr/bin/python3.11") == "interpreter + stdlib"
    assert budget.component_of("/usr/lib/x86_64-linux-gnu/libc.so.6") == "interpreter + stdlib"
    assert budget.component_of("/usr/bin/cloud-hypervisor") == "cloud-hypervisor"
    assert budget.component_of("/usr/share/mvirt/CLOUDHV.fd") == "firmware"


def test_measure_counts_raw_and_compressed_bytes_per_component():
    sizes = budget.measure(
        [("/usr/share/mvirt/hypervisor-fw", b"a" * 10000), ("/init", b"#!/usr/bin/python3\n")], 3
    )
    assert sizes["firmware"]["raw"] == 10000
    assert 0 < sizes["firmware"]["compressed"] < 10000
    assert sizes["our code"]["raw"] == 19
    assert sizes["cloud-hypervisor"] == {"raw": 0, "compressed": 0}


def test_table_says_how_far_over_the_goal():
    mib = 2**20
    sizes = budget.measure([("/usr/bin/python3.11", bytes(range(256)) * 4096)], 3)
    over = budget.uki_table(3 * mib, 8 * mib, sizes, 13 * mib)
    assert over[0].split() == ["kernel", "(bzImage)", "3.00", "MiB"]
    assert any(line.split()[:3] == ["interpreter", "+", "stdlib"] for line in over)
    assert over[-1].endswith("goal 12.00 MiB: 1.00 MiB over")
    assert budget.uki_table(3 * mib, 8 * mib, {}, 12 * mib)[-1].endswith(": within")
