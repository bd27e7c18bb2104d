from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImportJobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPORT_JOB_STATE_UNSPECIFIED: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_PENDING: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_DOWNLOADING: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_CONVERTING: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_WRITING: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_COMPLETED: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_FAILED: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_CANCELLED: _ClassVar[ImportJobState]
IMPORT_JOB_STATE_UNSPECIFIED: ImportJobState
IMPORT_JOB_STATE_PENDING: ImportJobState
IMPORT_JOB_STATE_DOWNLOADING: ImportJobState
IMPORT_JOB_STATE_CONVERTING: ImportJobState
IMPORT_JOB_STATE_WRITING: ImportJobState
IMPORT_JOB_STATE_COMPLETED: ImportJobState
IMPORT_JOB_STATE_FAILED: ImportJobState
IMPORT_JOB_STATE_CANCELLED: ImportJobState

class GetVersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class PoolStats(_message.Message):
    __slots__ = ("name", "total_bytes", "available_bytes", "used_bytes", "provisioned_bytes", "compression_ratio")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PROVISIONED_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    name: str
    total_bytes: int
    available_bytes: int
    used_bytes: int
    provisioned_bytes: int
    compression_ratio: float
    def __init__(self, name: _Optional[str] = ..., total_bytes: _Optional[int] = ..., available_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., provisioned_bytes: _Optional[int] = ..., compression_ratio: _Optional[float] = ...) -> None: ...

class Volume(_message.Message):
    __slots__ = ("id", "name", "path", "volsize_bytes", "used_bytes", "volblocksize", "compression_ratio", "created_at", "snapshots")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VOLSIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    VOLBLOCKSIZE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    path: str
    volsize_bytes: int
    used_bytes: int
    volblocksize: int
    compression_ratio: float
    created_at: str
    snapshots: _containers.RepeatedCompositeFieldContainer[Snapshot]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., path: _Optional[str] = ..., volsize_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., volblocksize: _Optional[int] = ..., compression_ratio: _Optional[float] = ..., created_at: _Optional[str] = ..., snapshots: _Optional[_Iterable[_Union[Snapshot, _Mapping]]] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("id", "name", "full_name", "used_bytes", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    full_name: str
    used_bytes: int
    created_at: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., full_name: _Optional[str] = ..., used_bytes: _Optional[int] = ..., created_at: _Optional[str] = ...) -> None: ...

class Template(_message.Message):
    __slots__ = ("id", "name", "snapshot_path", "source_volume", "size_bytes", "created_at", "clone_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CLONE_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    snapshot_path: str
    source_volume: str
    size_bytes: int
    created_at: str
    clone_count: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., snapshot_path: _Optional[str] = ..., source_volume: _Optional[str] = ..., size_bytes: _Optional[int] = ..., created_at: _Optional[str] = ..., clone_count: _Optional[int] = ...) -> None: ...

class ImportJob(_message.Message):
    __slots__ = ("id", "template_name", "source", "state", "bytes_written", "total_bytes", "error", "template", "created_at", "completed_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    template_name: str
    source: str
    state: ImportJobState
    bytes_written: int
    total_bytes: int
    error: str
    template: Template
    created_at: str
    completed_at: str
    def __init__(self, id: _Optional[str] = ..., template_name: _Optional[str] = ..., source: _Optional[str] = ..., state: _Optional[_Union[ImportJobState, str]] = ..., bytes_written: _Optional[int] = ..., total_bytes: _Optional[int] = ..., error: _Optional[str] = ..., template: _Optional[_Union[Template, _Mapping]] = ..., created_at: _Optional[str] = ..., completed_at: _Optional[str] = ...) -> None: ...

class GetPoolStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateVolumeRequest(_message.Message):
    __slots__ = ("name", "size_bytes", "volblocksize")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    VOLBLOCKSIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: int
    volblocksize: int
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., volblocksize: _Optional[int] = ...) -> None: ...

class ListVolumesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVolumesResponse(_message.Message):
    __slots__ = ("volumes",)
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[Volume]
    def __init__(self, volumes: _Optional[_Iterable[_Union[Volume, _Mapping]]] = ...) -> None: ...

class GetVolumeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteVolumeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteVolumeResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: bool = ...) -> None: ...

class ResizeVolumeRequest(_message.Message):
    __slots__ = ("name", "new_size_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    new_size_bytes: int
    def __init__(self, name: _Optional[str] = ..., new_size_bytes: _Optional[int] = ...) -> None: ...

class CreateSnapshotRequest(_message.Message):
    __slots__ = ("volume_name", "snapshot_name")
    VOLUME_NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_NAME_FIELD_NUMBER: _ClassVar[int]
    volume_name: str
    snapshot_name: str
    def __init__(self, volume_name: _Optional[str] = ..., snapshot_name: _Optional[str] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ("volume_name",)
    VOLUME_NAME_FIELD_NUMBER: _ClassVar[int]
    volume_name: str
    def __init__(self, volume_name: _Optional[str] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[Snapshot]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[Snapshot, _Mapping]]] = ...) -> None: ...

class DeleteSnapshotRequest(_message.Message):
    __slots__ = ("volume_name", "snapshot_name")
    VOLUME_NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_NAME_FIELD_NUMBER: _ClassVar[int]
    volume_name: str
    snapshot_name: str
    def __init__(self, volume_name: _Optional[str] = ..., snapshot_name: _Optional[str] = ...) -> None: ...

class DeleteSnapshotResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: bool = ...) -> None: ...

class RollbackSnapshotRequest(_message.Message):
    __slots__ = ("volume_name", "snapshot_name")
    VOLUME_NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_NAME_FIELD_NUMBER: _ClassVar[int]
    volume_name: str
    snapshot_name: str
    def __init__(self, volume_name: _Optional[str] = ..., snapshot_name: _Optional[str] = ...) -> None: ...

class ImportTemplateRequest(_message.Message):
    __slots__ = ("name", "source", "size_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    size_bytes: int
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class GetImportJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListImportJobsRequest(_message.Message):
    __slots__ = ("include_completed",)
    INCLUDE_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    include_completed: bool
    def __init__(self, include_completed: bool = ...) -> None: ...

class ListImportJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[ImportJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[ImportJob, _Mapping]]] = ...) -> None: ...

class CancelImportJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelImportJobResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: bool = ...) -> None: ...

class ListTemplatesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTemplatesResponse(_message.Message):
    __slots__ = ("templates",)
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[Template]
    def __init__(self, templates: _Optional[_Iterable[_Union[Template, _Mapping]]] = ...) -> None: ...

class DeleteTemplateRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTemplateResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: bool = ...) -> None: ...

class CloneFromTemplateRequest(_message.Message):
    __slots__ = ("template_name", "new_volume_name", "size_bytes")
    TEMPLATE_NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_VOLUME_NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    template_name: str
    new_volume_name: str
    size_bytes: int
    def __init__(self, template_name: _Optional[str] = ..., new_volume_name: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class PromoteSnapshotRequest(_message.Message):
    __slots__ = ("volume_name", "snapshot_name", "template_name")
    VOLUME_NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_NAME_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_NAME_FIELD_NUMBER: _ClassVar[int]
    volume_name: str
    snapshot_name: str
    template_name: str
    def __init__(self, volume_name: _Optional[str] = ..., snapshot_name: _Optional[str] = ..., template_name: _Optional[str] = ...) -> None: ...
