from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NicState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NIC_STATE_UNSPECIFIED: _ClassVar[NicState]
    NIC_STATE_CREATED: _ClassVar[NicState]
    NIC_STATE_ACTIVE: _ClassVar[NicState]
    NIC_STATE_ERROR: _ClassVar[NicState]
NIC_STATE_UNSPECIFIED: NicState
NIC_STATE_CREATED: NicState
NIC_STATE_ACTIVE: NicState
NIC_STATE_ERROR: NicState

class GetVersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class Network(_message.Message):
    __slots__ = ("id", "name", "ipv4_enabled", "ipv4_subnet", "ipv6_enabled", "ipv6_prefix", "dns_servers", "ntp_servers", "nic_count", "created_at", "updated_at", "is_public")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IPV4_ENABLED_FIELD_NUMBER: _ClassVar[int]
    IPV4_SUBNET_FIELD_NUMBER: _ClassVar[int]
    IPV6_ENABLED_FIELD_NUMBER: _ClassVar[int]
    IPV6_PREFIX_FIELD_NUMBER: _ClassVar[int]
    DNS_SERVERS_FIELD_NUMBER: _ClassVar[int]
    NTP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    NIC_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    IS_PUBLIC_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    ipv4_enabled: bool
    ipv4_subnet: str
    ipv6_enabled: bool
    ipv6_prefix: str
    dns_servers: _containers.RepeatedScalarFieldContainer[str]
    ntp_servers: _containers.RepeatedScalarFieldContainer[str]
    nic_count: int
    created_at: str
    updated_at: str
    is_public: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., ipv4_enabled: bool = ..., ipv4_subnet: _Optional[str] = ..., ipv6_enabled: bool = ..., ipv6_prefix: _Optional[str] = ..., dns_servers: _Optional[_Iterable[str]] = ..., ntp_servers: _Optional[_Iterable[str]] = ..., nic_count: _Optional[int] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., is_public: bool = ...) -> None: ...

class Nic(_message.Message):
    __slots__ = ("id", "name", "network_id", "mac_address", "ipv4_address", "ipv6_address", "routed_ipv4_prefixes", "routed_ipv6_prefixes", "socket_path", "state", "created_at", "updated_at", "tap_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IPV4_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IPV6_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROUTED_IPV4_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    ROUTED_IPV6_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    SOCKET_PATH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TAP_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    network_id: str
    mac_address: str
    ipv4_address: str
    ipv6_address: str
    routed_ipv4_prefixes: _containers.RepeatedScalarFieldContainer[str]
    routed_ipv6_prefixes: _containers.RepeatedScalarFieldContainer[str]
    socket_path: str
    state: NicState
    created_at: str
    updated_at: str
    tap_name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., network_id: _Optional[str] = ..., mac_address: _Optional[str] = ..., ipv4_address: _Optional[str] = ..., ipv6_address: _Optional[str] = ..., routed_ipv4_prefixes: _Optional[_Iterable[str]] = ..., routed_ipv6_prefixes: _Optional[_Iterable[str]] = ..., socket_path: _Optional[str] = ..., state: _Optional[_Union[NicState, str]] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., tap_name: _Optional[str] = ...) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("name", "ipv4_enabled", "ipv4_subnet", "ipv6_enabled", "ipv6_prefix", "dns_servers", "ntp_servers", "is_public")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IPV4_ENABLED_FIELD_NUMBER: _ClassVar[int]
    IPV4_SUBNET_FIELD_NUMBER: _ClassVar[int]
    IPV6_ENABLED_FIELD_NUMBER: _ClassVar[int]
    IPV6_PREFIX_FIELD_NUMBER: _ClassVar[int]
    DNS_SERVERS_FIELD_NUMBER: _ClassVar[int]
    NTP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    IS_PUBLIC_FIELD_NUMBER: _ClassVar[int]
    name: str
    ipv4_enabled: bool
    ipv4_subnet: str
    ipv6_enabled: bool
    ipv6_prefix: str
    dns_servers: _containers.RepeatedScalarFieldContainer[str]
    ntp_servers: _containers.RepeatedScalarFieldContainer[str]
    is_public: bool
    def __init__(self, name: _Optional[str] = ..., ipv4_enabled: bool = ..., ipv4_subnet: _Optional[str] = ..., ipv6_enabled: bool = ..., ipv6_prefix: _Optional[str] = ..., dns_servers: _Optional[_Iterable[str]] = ..., ntp_servers: _Optional[_Iterable[str]] = ..., is_public: bool = ...) -> None: ...

class GetNetworkRequest(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[Network]
    def __init__(self, networks: _Optional[_Iterable[_Union[Network, _Mapping]]] = ...) -> None: ...

class UpdateNetworkRequest(_message.Message):
    __slots__ = ("id", "dns_servers", "ntp_servers")
    ID_FIELD_NUMBER: _ClassVar[int]
    DNS_SERVERS_FIELD_NUMBER: _ClassVar[int]
    NTP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    dns_servers: _containers.RepeatedScalarFieldContainer[str]
    ntp_servers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., dns_servers: _Optional[_Iterable[str]] = ..., ntp_servers: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteNetworkRequest(_message.Message):
    __slots__ = ("id", "force")
    ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    force: bool
    def __init__(self, id: _Optional[str] = ..., force: bool = ...) -> None: ...

class DeleteNetworkResponse(_message.Message):
    __slots__ = ("deleted", "nics_deleted")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    NICS_DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    nics_deleted: int
    def __init__(self, deleted: bool = ..., nics_deleted: _Optional[int] = ...) -> None: ...

class CreateNicRequest(_message.Message):
    __slots__ = ("network_id", "name", "mac_address", "ipv4_address", "ipv6_address", "routed_ipv4_prefixes", "routed_ipv6_prefixes")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IPV4_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IPV6_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROUTED_IPV4_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    ROUTED_IPV6_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    name: str
    mac_address: str
    ipv4_address: str
    ipv6_address: str
    routed_ipv4_prefixes: _containers.RepeatedScalarFieldContainer[str]
    routed_ipv6_prefixes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network_id: _Optional[str] = ..., name: _Optional[str] = ..., mac_address: _Optional[str] = ..., ipv4_address: _Optional[str] = ..., ipv6_address: _Optional[str] = ..., routed_ipv4_prefixes: _Optional[_Iterable[str]] = ..., routed_ipv6_prefixes: _Optional[_Iterable[str]] = ...) -> None: ...

class GetNicRequest(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListNicsRequest(_message.Message):
    __slots__ = ("network_id",)
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    def __init__(self, network_id: _Optional[str] = ...) -> None: ...

class ListNicsResponse(_message.Message):
    __slots__ = ("nics",)
    NICS_FIELD_NUMBER: _ClassVar[int]
    nics: _containers.RepeatedCompositeFieldContainer[Nic]
    def __init__(self, nics: _Optional[_Iterable[_Union[Nic, _Mapping]]] = ...) -> None: ...

class UpdateNicRequest(_message.Message):
    __slots__ = ("id", "routed_ipv4_prefixes", "routed_ipv6_prefixes")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROUTED_IPV4_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    ROUTED_IPV6_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    id: str
    routed_ipv4_prefixes: _containers.RepeatedScalarFieldContainer[str]
    routed_ipv6_prefixes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., routed_ipv4_prefixes: _Optional[_Iterable[str]] = ..., routed_ipv6_prefixes: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteNicRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteNicResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: bool = ...) -> None: ...
