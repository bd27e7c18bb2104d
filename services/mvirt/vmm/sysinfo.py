"""GetSystemInfo: facts about the host from /proc and /sys (plus ``ip -j addr`` for addresses).

Per-core usage is measured between two calls of :meth:`SystemInfoCollector.collect` (the
first call reports usage since boot), so answering never has to sleep.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path

from mvirt.vmm.process import CommandError, run


@dataclass
class HostInfo:
    """``mvirt.HostInfo``."""

    hostname: str
    kernel_version: str
    uptime_seconds: int


@dataclass
class CpuCore:
    """``mvirt.CpuCore``."""

    id: int
    frequency_mhz: int
    usage_percent: float
    numa_node: int


@dataclass
class CpuInfo:
    """``mvirt.CpuInfo``."""

    model: str
    vendor: str
    physical_cores: int
    logical_cores: int
    sockets: int
    cores: list[CpuCore]
    flags: list[str]


@dataclass
class MemoryInfo:
    """``mvirt.MemoryInfo``."""

    total_bytes: int
    available_bytes: int
    cached_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    hugepages_total: int
    hugepages_free: int
    hugepage_size_kb: int


@dataclass
class NumaNode:
    """``mvirt.NumaNode``."""

    id: int
    total_memory_bytes: int
    free_memory_bytes: int
    cpu_ids: list[int]


@dataclass
class DiskInfo:
    """``mvirt.DiskInfo`` (SMART data needs smartctl and real disks: reported unavailable)."""

    device: str
    model: str
    serial: str
    size_bytes: int
    smart_available: bool = False
    smart_healthy: bool = False


@dataclass
class NicInfo:
    """``mvirt.NicInfo``."""

    name: str
    mac: str
    is_up: bool
    speed_mbps: int | None
    duplex: str
    ipv4: list[str]
    ipv6: list[str]
    driver: str
    rx_bytes: int
    tx_bytes: int


@dataclass
class SystemInfo:
    """``mvirt.SystemInfo``."""

    total_cpus: int
    total_memory_mb: int
    allocated_cpus: int
    allocated_memory_mb: int
    load_1: float
    load_5: float
    load_15: float
    host: HostInfo
    cpu: CpuInfo
    memory: MemoryInfo
    numa_nodes: list[NumaNode] = field(default_factory=list)
    disks: list[DiskInfo] = field(default_factory=list)
    nics: list[NicInfo] = field(default_factory=list)


def _read(path: Path | str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as a dict of values in bytes (kB lines) or counts."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return values


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU."""
    cpus: list[dict[str, str]] = []
    for block in text.strip().split("\n\n"):
        entry: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
        if entry:
            cpus.append(entry)
    return cpus


def parse_cpu_list(text: str) -> list[int]:
    """A kernel CPU list such as ``0-3,8`` as a list of ids."""
    ids: list[int] = []
    for part in text.split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    return ids


def _proc_stat_times() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    times: dict[int, tuple[int, int]] = {}
    for line in _read("/proc/stat").splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            times[int(name[3:])] = (sum(values) - idle, sum(values))
    return times


def _entries(folder: Path) -> list[Path]:
    """The sorted entries of a /sys folder; none where it is absent (a container or chroot
    without sysfs answers with what it has instead of failing the whole call)."""
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


class SystemInfoCollector:
    """Collects :class:`SystemInfo`; keeps the last /proc/stat sample for per-core usage."""

    def __init__(self, sys_root: Path = Path("/sys")) -> None:
        self._sys = sys_root
        self._last_times: dict[int, tuple[int, int]] = {}

    async def collect(self, allocated_cpus: int, allocated_memory_mb: int) -> SystemInfo:
        """Everything GetSystemInfo answers."""
        mem = parse_meminfo(_read("/proc/meminfo"))
        load = os.getloadavg()
        cpu = self._cpu()
        return SystemInfo(
            total_cpus=cpu.logical_cores,
            total_memory_mb=mem.get("MemTotal", 0) // (1024 * 1024),
            allocated_cpus=allocated_cpus,
            allocated_memory_mb=allocated_memory_mb,
            load_1=load[0],
            load_5=load[1],
            load_15=load[2],
            host=HostInfo(
                hostname=socket.gethostname(),
                kernel_version=platform.release(),
                uptime_seconds=int(float(_read("/proc/uptime", "0").split()[0])),
            ),
            cpu=cpu,
            memory=MemoryInfo(
                total_bytes=mem.get("MemTotal", 0),
                available_bytes=mem.get("MemAvailable", 0),
                cached_bytes=mem.get("Cached", 0),
                swap_total_bytes=mem.get("SwapTotal", 0),
                swap_used_bytes=mem.get("SwapTotal", 0) - mem.get("SwapFree", 0),
                hugepages_total=mem.get("HugePages_Total", 0),
                hugepages_free=mem.get("HugePages_Free", 0),
                hugepage_size_kb=mem.get("Hugepagesize", 0) // 1024,
            ),
            numa_nodes=self._numa_nodes(),
            disks=self._disks(),
            nics=await self._nics(),
        )

    def _cpu_node(self) -> dict[int, int]:
        nodes: dict[int, int] = {}
        for node in (self._sys / "devices/system/node").glob("node[0-9]*"):
            for cpu_id in parse_cpu_list(_read(node / "cpulist")):
                nodes[cpu_id] = int(node.name[4:])
        return nodes

    def _cpu(self) -> CpuInfo:
        cpus = parse_cpuinfo(_read("/proc/cpuinfo"))
        first = cpus[0] if cpus else {}
        times = _proc_stat_times()
        node_of = self._cpu_node()
        cores: list[CpuCore] = []
        for entry in cpus:
            cpu_id = _int(entry.get("processor", "0"))
            busy, total = times.get(cpu_id, (0, 0))
            last_busy, last_total = self._last_times.get(cpu_id, (0, 0))
            span = total - last_total
            usage = 100.0 * (busy - last_busy) / span if span > 0 else 0.0
            cores.append(
                CpuCore(
                    id=cpu_id,
                    frequency_mhz=int(float(entry.get("cpu MHz", "0") or 0)),
                    usage_percent=round(usage, 1),
                    numa_node=node_of.get(cpu_id, 0),
                )
            )
        self._last_times = times
        physical = {(e.get("physical id", "0"), e.get("core id", e.get("processor"))) for e in cpus}
        return CpuInfo(
            model=first.get("model name", platform.processor()),
            vendor=first.get("vendor_id", ""),
            physical_cores=len(physical),
            logical_cores=len(cpus) or (os.cpu_count() or 0),
            sockets=len({e.get("physical id", "0") for e in cpus}) or 1,
            cores=cores,
            flags=first.get("flags", "").split(),
        )

    def _numa_nodes(self) -> list[NumaNode]:
        nodes: list[NumaNode] = []
        for node in sorted((self._sys / "devices/system/node").glob("node[0-9]*")):
            mem = parse_meminfo(
                "\n".join(
                    line.split(" ", 2)[-1] if line.startswith("Node") else line
                    for line in _read(node / "meminfo").splitlines()
                )
            )
            nodes.append(
                NumaNode(
                    id=int(node.name[4:]),
                    total_memory_bytes=mem.get("MemTotal", 0),
                    free_memory_bytes=mem.get("MemFree", 0),
                    cpu_ids=parse_cpu_list(_read(node / "cpulist")),
                )
            )
        return nodes

    def _disks(self) -> list[DiskInfo]:
        disks: list[DiskInfo] = []
        for dev in _entries(self._sys / "block"):
            if dev.name.startswith(("loop", "ram", "zram", "dm-", "sr")):
                continue
            disks.append(
                DiskInfo(
                    device=f"/dev/{dev.name}",
                    model=_read(dev / "device/model"),
                    serial=_read(dev / "serial") or _read(dev / "device/serial"),
                    size_bytes=_int(_read(dev / "size")) * 512,
                )
            )
        return disks

    async def _addresses(self) -> dict[str, tuple[list[str], list[str]]]:
        try:
            result = await run(["ip", "-j", "addr", "show"], timeout=5)
            links = json.loads(result.stdout)
        except (CommandError, OSError, ValueError):
            return {}
        addresses: dict[str, tuple[list[str], list[str]]] = {}
        for link in links:
            v4 = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                  if a.get("family") == "inet"]  # fmt: skip
            v6 = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                  if a.get("family") == "inet6"]  # fmt: skip
            addresses[link["ifname"]] = (v4, v6)
        return addresses

    async def _nics(self) -> list[NicInfo]:
        addresses = await self._addresses()
        nics: list[NicInfo] = []
        for dev in _entries(self._sys / "class/net"):
            speed = _int(_read(dev / "speed", "-1"), -1)
            driver_link = dev / "device/driver"
            v4, v6 = addresses.get(dev.name, ([], []))
            nics.append(
                NicInfo(
                    name=dev.name,
                    mac=_read(dev / "address"),
                    # IFF_UP: administratively up (operstate is "unknown" for lo and tun)
                    is_up=bool(int(_read(dev / "flags", "0x0"), 16) & 0x1),
                    speed_mbps=speed if speed > 0 else None,
                    duplex=_read(dev / "duplex", "unknown"),
                    ipv4=v4,
                    ipv6=v6,
                    driver=os.path.basename(os.readlink(driver_link))
                    if driver_link.is_symlink()
                    else "",
                    rx_bytes=_int(_read(dev / "statistics/rx_bytes")),
                    tx_bytes=_int(_read(dev / "statistics/tx_bytes")),
                )
            )
        return nics
