"""GetSystemInfo's parsers and the collector against this host's /proc and /sys."""

import asyncio
import os

from mvirt.vmm.sysinfo import SystemInfoCollector, parse_cpu_list, parse_cpuinfo, parse_meminfo


def test_cpu_lists():
    assert parse_cpu_list("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpu_list("") == []


def test_meminfo_values_are_bytes_or_counts():
    values = parse_meminfo("MemTotal:  1024 kB\nHugePages_Total:   4\nHugepagesize: 2048 kB\n")
    assert values == {"MemTotal": 1024 * 1024, "HugePages_Total": 4, "Hugepagesize": 2048 * 1024}


def test_cpuinfo_blocks():
    cpus = parse_cpuinfo("processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n")
    assert [c["processor"] for c in cpus] == ["0", "1"]


def test_collect_matches_the_host():
    collector = SystemInfoCollector()

    async def twice():
        await collector.collect(0, 0)
        return await collector.collect(3, 768)

    info = asyncio.run(twice())
    assert info.total_cpus == os.cpu_count()
    assert (info.allocated_cpus, info.allocated_memory_mb) == (3, 768)
    assert all(0.0 <= core.usage_percent <= 100.0 for core in info.cpu.cores)
    assert info.memory.available_bytes <= info.memory.total_bytes
    assert [nic.name for nic in info.nics] == sorted(os.listdir("/sys/class/net"))
    assert len(info.cpu.cores) == info.cpu.logical_cores


def test_collect_without_sysfs_answers_with_what_there_is(tmp_path):
    # A host whose /sys is not mounted (a chroot, some containers): no disks or NICs, no error.
    info = asyncio.run(SystemInfoCollector(sys_root=tmp_path).collect(0, 0))
    assert list(info.disks) == [] and list(info.nics) == []
    assert info.total_cpus == os.cpu_count()
