from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VmState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VM_STATE_UNSPECIFIED: _ClassVar[VmState]
    VM_STATE_STOPPED: _ClassVar[VmState]
    VM_STATE_STARTING: _ClassVar[VmState]
    VM_STATE_RUNNING: _ClassVar[VmState]
    VM_STATE_STOPPING: _ClassVar[VmState]

class BootMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BOOT_MODE_UNSPECIFIED: _ClassVar[BootMode]
    BOOT_MODE_DISK: _ClassVar[BootMode]
    BOOT_MODE_KERNEL: _ClassVar[BootMode]

class VmEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VM_EVENT_UNSPECIFIED: _ClassVar[VmEventType]
    VM_EVENT_CREATED: _ClassVar[VmEventType]
    VM_EVENT_STARTED: _ClassVar[VmEventType]
    VM_EVENT_STOPPED: _ClassVar[VmEventType]
    VM_EVENT_DELETED: _ClassVar[VmEventType]
VM_STATE_UNSPECIFIED: VmState
VM_STATE_STOPPED: VmState
VM_STATE_STARTING: VmState
VM_STATE_RUNNING: VmState
VM_STATE_STOPPING: VmState
BOOT_MODE_UNSPECIFIED: BootMode
BOOT_MODE_DISK: BootMode
BOOT_MODE_KERNEL: BootMode
VM_EVENT_UNSPECIFIED: VmEventType
VM_EVENT_CREATED: VmEventType
VM_EVENT_STARTED: VmEventType
VM_EVENT_STOPPED: VmEventType
VM_EVENT_DELETED: VmEventType

class GetVersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class Vm(_message.Message):
    __slots__ = ("id", "name", "state", "config", "created_at", "started_at", "stop_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: VmState
    config: VmConfig
    created_at: int
    started_at: int
    stop_reason: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[VmState, str]] = ..., config: _Optional[_Union[VmConfig, _Mapping]] = ..., created_at: _Optional[int] = ..., started_at: _Optional[int] = ..., stop_reason: _Optional[str] = ...) -> None: ...

class VmConfig(_message.Message):
    __slots__ = ("vcpus", "memory_mb", "kernel", "initramfs", "cmdline", "disks", "nics", "user_data", "boot_mode", "nested_virt")
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    INITRAMFS_FIELD_NUMBER: _ClassVar[int]
    CMDLINE_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    BOOT_MODE_FIELD_NUMBER: _ClassVar[int]
    NESTED_VIRT_FIELD_NUMBER: _ClassVar[int]
    vcpus: int
    memory_mb: int
    kernel: str
    initramfs: str
    cmdline: str
    disks: _containers.RepeatedCompositeFieldContainer[DiskConfig]
    nics: _containers.RepeatedCompositeFieldContainer[NicConfig]
    user_data: str
    boot_mode: BootMode
    nested_virt: bool
    def __init__(self, vcpus: _Optional[int] = ..., memory_mb: _Optional[int] = ..., kernel: _Optional[str] = ..., initramfs: _Optional[str] = ..., cmdline: _Optional[str] = ..., disks: _Optional[_Iterable[_Union[DiskConfig, _Mapping]]] = ..., nics: _Optional[_Iterable[_Union[NicConfig, _Mapping]]] = ..., user_data: _Optional[str] = ..., boot_mode: _Optional[_Union[BootMode, str]] = ..., nested_virt: bool = ...) -> None: ...

class DiskConfig(_message.Message):
    __slots__ = ("path", "readonly")
    PATH_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    path: str
    readonly: bool
    def __init__(self, path: _Optional[str] = ..., readonly: bool = ...) -> None: ...

class NicConfig(_message.Message):
    __slots__ = ("tap", "mac", "vhost_socket")
    TAP_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    VHOST_SOCKET_FIELD_NUMBER: _ClassVar[int]
    tap: str
    mac: str
    vhost_socket: str
    def __init__(self, tap: _Optional[str] = ..., mac: _Optional[str] = ..., vhost_socket: _Optional[str] = ...) -> None: ...

class GetSystemInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SystemInfo(_message.Message):
    __slots__ = ("total_cpus", "total_memory_mb", "allocated_cpus", "allocated_memory_mb", "load_1", "load_5", "load_15", "host", "cpu", "memory", "numa_nodes", "disks", "nics")
    TOTAL_CPUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_CPUS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    LOAD_1_FIELD_NUMBER: _ClassVar[int]
    LOAD_5_FIELD_NUMBER: _ClassVar[int]
    LOAD_15_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODES_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
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
    numa_nodes: _containers.RepeatedCompositeFieldContainer[NumaNode]
    disks: _containers.RepeatedCompositeFieldContainer[DiskInfo]
    nics: _containers.RepeatedCompositeFieldContainer[NicInfo]
    def __init__(self, total_cpus: _Optional[int] = ..., total_memory_mb: _Optional[int] = ..., allocated_cpus: _Optional[int] = ..., allocated_memory_mb: _Optional[int] = ..., load_1: _Optional[float] = ..., load_5: _Optional[float] = ..., load_15: _Optional[float] = ..., host: _Optional[_Union[HostInfo, _Mapping]] = ..., cpu: _Optional[_Union[CpuInfo, _Mapping]] = ..., memory: _Optional[_Union[MemoryInfo, _Mapping]] = ..., numa_nodes: _Optional[_Iterable[_Union[NumaNode, _Mapping]]] = ..., disks: _Optional[_Iterable[_Union[DiskInfo, _Mapping]]] = ..., nics: _Optional[_Iterable[_Union[NicInfo, _Mapping]]] = ...) -> None: ...

class HostInfo(_message.Message):
    __slots__ = ("hostname", "kernel_version", "uptime_seconds")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    KERNEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    kernel_version: str
    uptime_seconds: int
    def __init__(self, hostname: _Optional[str] = ..., kernel_version: _Optional[str] = ..., uptime_seconds: _Optional[int] = ...) -> None: ...

class CpuInfo(_message.Message):
    __slots__ = ("model", "vendor", "physical_cores", "logical_cores", "sockets", "cores", "flags")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_CORES_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_CORES_FIELD_NUMBER: _ClassVar[int]
    SOCKETS_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    model: str
    vendor: str
    physical_cores: int
    logical_cores: int
    sockets: int
    cores: _containers.RepeatedCompositeFieldContainer[CpuCore]
    flags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., vendor: _Optional[str] = ..., physical_cores: _Optional[int] = ..., logical_cores: _Optional[int] = ..., sockets: _Optional[int] = ..., cores: _Optional[_Iterable[_Union[CpuCore, _Mapping]]] = ..., flags: _Optional[_Iterable[str]] = ...) -> None: ...

class CpuCore(_message.Message):
    __slots__ = ("id", "frequency_mhz", "usage_percent", "numa_node")
    ID_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_MHZ_FIELD_NUMBER: _ClassVar[int]
    USAGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODE_FIELD_NUMBER: _ClassVar[int]
    id: int
    frequency_mhz: int
    usage_percent: float
    numa_node: int
    def __init__(self, id: _Optional[int] = ..., frequency_mhz: _Optional[int] = ..., usage_percent: _Optional[float] = ..., numa_node: _Optional[int] = ...) -> None: ...

class MemoryInfo(_message.Message):
    __slots__ = ("total_bytes", "available_bytes", "cached_bytes", "swap_total_bytes", "swap_used_bytes", "hugepages_total", "hugepages_free", "hugepage_size_kb")
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHED_BYTES_FIELD_NUMBER: _ClassVar[int]
    SWAP_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SWAP_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    HUGEPAGES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    HUGEPAGES_FREE_FIELD_NUMBER: _ClassVar[int]
    HUGEPAGE_SIZE_KB_FIELD_NUMBER: _ClassVar[int]
    total_bytes: int
    available_bytes: int
    cached_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    hugepages_total: int
    hugepages_free: int
    hugepage_size_kb: int
    def __init__(self, total_bytes: _Optional[int] = ..., available_bytes: _Optional[int] = ..., cached_bytes: _Optional[int] = ..., swap_total_bytes: _Optional[int] = ..., swap_used_bytes: _Optional[int] = ..., hugepages_total: _Optional[int] = ..., hugepages_free: _Optional[int] = ..., hugepage_size_kb: _Optional[int] = ...) -> None: ...

class NumaNode(_message.Message):
    __slots__ = ("id", "total_memory_bytes", "free_memory_bytes", "cpu_ids")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_IDS_FIELD_NUMBER: _ClassVar[int]
    id: int
    total_memory_bytes: int
    free_memory_bytes: int
    cpu_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, id: _Optional[int] = ..., total_memory_bytes: _Optional[int] = ..., free_memory_bytes: _Optional[int] = ..., cpu_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DiskInfo(_message.Message):
    __slots__ = ("device", "model", "serial", "size_bytes", "smart_available", "smart_healthy", "temperature_celsius", "power_on_hours")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SMART_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    SMART_HEALTHY_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    POWER_ON_HOURS_FIELD_NUMBER: _ClassVar[int]
    device: str
    model: str
    serial: str
    size_bytes: int
    smart_available: bool
    smart_healthy: bool
    temperature_celsius: int
    power_on_hours: int
    def __init__(self, device: _Optional[str] = ..., model: _Optional[str] = ..., serial: _Optional[str] = ..., size_bytes: _Optional[int] = ..., smart_available: bool = ..., smart_healthy: bool = ..., temperature_celsius: _Optional[int] = ..., power_on_hours: _Optional[int] = ...) -> None: ...

class NicInfo(_message.Message):
    __slots__ = ("name", "mac", "is_up", "speed_mbps", "duplex", "ipv4", "ipv6", "driver", "rx_bytes", "tx_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IS_UP_FIELD_NUMBER: _ClassVar[int]
    SPEED_MBPS_FIELD_NUMBER: _ClassVar[int]
    DUPLEX_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    mac: str
    is_up: bool
    speed_mbps: int
    duplex: str
    ipv4: _containers.RepeatedScalarFieldContainer[str]
    ipv6: _containers.RepeatedScalarFieldContainer[str]
    driver: str
    rx_bytes: int
    tx_bytes: int
    def __init__(self, name: _Optional[str] = ..., mac: _Optional[str] = ..., is_up: bool = ..., speed_mbps: _Optional[int] = ..., duplex: _Optional[str] = ..., ipv4: _Optional[_Iterable[str]] = ..., ipv6: _Optional[_Iterable[str]] = ..., driver: _Optional[str] = ..., rx_bytes: _Optional[int] = ..., tx_bytes: _Optional[int] = ...) -> None: ...

class CreateVmRequest(_message.Message):
    __slots__ = ("name", "config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    config: VmConfig
    def __init__(self, name: _Optional[str] = ..., config: _Optional[_Union[VmConfig, _Mapping]] = ...) -> None: ...

class GetVmRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListVmsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVmsResponse(_message.Message):
    __slots__ = ("vms",)
    VMS_FIELD_NUMBER: _ClassVar[int]
    vms: _containers.RepeatedCompositeFieldContainer[Vm]
    def __init__(self, vms: _Optional[_Iterable[_Union[Vm, _Mapping]]] = ...) -> None: ...

class DeleteVmRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteVmResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartVmRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StopVmRequest(_message.Message):
    __slots__ = ("id", "timeout_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    timeout_seconds: int
    def __init__(self, id: _Optional[str] = ..., timeout_seconds: _Optional[int] = ...) -> None: ...

class KillVmRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class AttachDiskRequest(_message.Message):
    __slots__ = ("vm_id", "disk")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    disk: DiskConfig
    def __init__(self, vm_id: _Optional[str] = ..., disk: _Optional[_Union[DiskConfig, _Mapping]] = ...) -> None: ...

class DetachDiskRequest(_message.Message):
    __slots__ = ("vm_id", "path")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    path: str
    def __init__(self, vm_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class AttachNicRequest(_message.Message):
    __slots__ = ("vm_id", "nic")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    NIC_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    nic: NicConfig
    def __init__(self, vm_id: _Optional[str] = ..., nic: _Optional[_Union[NicConfig, _Mapping]] = ...) -> None: ...

class DetachNicRequest(_message.Message):
    __slots__ = ("vm_id", "mac")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    mac: str
    def __init__(self, vm_id: _Optional[str] = ..., mac: _Optional[str] = ...) -> None: ...

class ConsoleInput(_message.Message):
    __slots__ = ("vm_id", "data")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    data: bytes
    def __init__(self, vm_id: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ConsoleOutput(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class WatchVmsRequest(_message.Message):
    __slots__ = ("vm_id",)
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    def __init__(self, vm_id: _Optional[str] = ...) -> None: ...

class VmEvent(_message.Message):
    __slots__ = ("vm_id", "type", "timestamp", "vm")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VM_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    type: VmEventType
    timestamp: int
    vm: Vm
    def __init__(self, vm_id: _Optional[str] = ..., type: _Optional[_Union[VmEventType, str]] = ..., timestamp: _Optional[int] = ..., vm: _Optional[_Union[Vm, _Mapping]] = ...) -> None: ...
