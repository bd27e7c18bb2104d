"""The committed generated code matches the .proto files, and the wire contract holds."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

from mvirt.proto import generate, log_pb2, net_pb2, vmm_pb2, zfs_pb2


def test_committed_code_is_what_the_generator_writes(tmp_path: Path) -> None:
    generate.generate(tmp_path)
    stale = [
        name
        for name in generate.generated_names()
        if (tmp_path / "mvirt" / "proto" / name).read_bytes()
        != (generate.PROTO_DIR / name).read_bytes()
    ]
    assert not stale, f"run 'python -m mvirt.proto.generate': out of date: {stale}"


def test_generated_modules_import_without_warnings() -> None:

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("vmm", "log", "zfs", "net"):
            importlib.reload(importlib.import_module(f"mvirt.proto.{name}_pb2_grpc"))


def _fields(message: type) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]


def test_wire_names_and_numbers_follow_the_reference() -> None:
    assert log_pb2.DESCRIPTOR.package == "mvirt.log"
    assert _fields(log_pb2.LogEntry) == {
        "id": 1,
        "timestamp_ns": 2,
        "message": 3,
        "level": 4,
        "component": 5,
        "related_object_ids": 6,
    }
    assert dict(log_pb2.LogLevel.items()) == {
        "INFO": 0,
        "WARN": 1,
        "ERROR": 2,
        "DEBUG": 3,
        "AUDIT": 4,
    }
    query = _fields(log_pb2.QueryRequest)
    assert {
        k: query[k] for k in ("object_id", "start_time_ns", "end_time_ns", "limit", "follow")
    } == {"object_id": 1, "start_time_ns": 2, "end_time_ns": 3, "limit": 4, "follow": 5}
    assert vmm_pb2.DESCRIPTOR.package == "mvirt"
    assert vmm_pb2.VmState.Value("VM_STATE_STOPPING") == 4
    assert vmm_pb2.VmEventType.Value("VM_EVENT_DELETED") == 4
    assert _fields(vmm_pb2.VmConfig)["boot_mode"] == 9
    assert _fields(vmm_pb2.SystemInfo)["nics"] == 15
    assert zfs_pb2.DESCRIPTOR.package == "mvirt.zfs"
    assert zfs_pb2.ImportJobState.Value("IMPORT_JOB_STATE_CANCELLED") == 7
    assert net_pb2.DESCRIPTOR.package == "mvirt.net"
    assert net_pb2.NicState.Value("NIC_STATE_ERROR") == 3
    assert [o.name for o in net_pb2.GetNicRequest.DESCRIPTOR.oneofs] == ["identifier"]
    for module, service in (
        (vmm_pb2, "VmService"),
        (log_pb2, "LogService"),
        (zfs_pb2, "ZfsService"),
        (net_pb2, "NetService"),
    ):
        assert "GetVersion" in module.DESCRIPTOR.services_by_name[service].methods_by_name
