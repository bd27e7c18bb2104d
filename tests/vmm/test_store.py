"""The SQLite store: persistence, names, migrations."""

import sqlite3

import pytest

from mvirt.vmm.backend import DiskSpec, NicSpec
from mvirt.vmm.model import BootMode, VmConfig, VmRecord, VmState
from mvirt.vmm.store import MIGRATIONS, NameTakenError, VmStore

CONFIG = VmConfig(
    vcpus=2,
    memory_mb=512,
    boot_mode=BootMode.KERNEL,
    kernel="/k",
    cmdline="console=ttyS0",
    disks=(DiskSpec("/d1", readonly=True),),
    nics=(NicSpec("52:54:00:00:00:01", tap="tap0"),),
    user_data="#cloud-config\n",
)


def record(vm_id: str, name: str | None) -> VmRecord:
    return VmRecord(id=vm_id, name=name, state=VmState.STOPPED, config=CONFIG, created_at=100)


def test_records_survive_reopening(tmp_path):
    store = VmStore(tmp_path / "vmm.db")
    store.insert(record("a", "web"))
    store.insert(record("b", None))
    stored = store.get("a")
    assert stored is not None
    running = store.set_state(stored, VmState.RUNNING, pid=42, started_at=200)
    store.close()

    store = VmStore(tmp_path / "vmm.db")
    assert store.get("a") == running
    assert store.get_by_name("web") == running
    other = store.get("b")
    assert other is not None and other.config == CONFIG
    assert [vm.id for vm in store.list()] == ["a", "b"]
    store.delete("a")
    assert store.get("a") is None
    store.close()


def test_names_are_unique_but_optional(tmp_path):
    store = VmStore(tmp_path / "vmm.db")
    store.insert(record("a", "web"))
    store.insert(record("b", None))
    store.insert(record("c", None))
    with pytest.raises(NameTakenError):
        store.insert(record("d", "web"))
    assert store.get("d") is None
    store.close()


def test_wal_mode_and_latest_schema(tmp_path):
    store = VmStore(tmp_path / "vmm.db")
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    db = sqlite3.connect(tmp_path / "vmm.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_old_schema_is_migrated_keeping_rows(tmp_path):
    db = sqlite3.connect(tmp_path / "vmm.db")
    db.executescript(MIGRATIONS[0])
    db.execute(
        "INSERT INTO vms (id, name, state, config, created_at) VALUES (?, ?, ?, ?, ?)",
        ("old", "legacy", 1, CONFIG.to_json(), 5),
    )
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = VmStore(tmp_path / "vmm.db")
    assert store.schema_version == len(MIGRATIONS)
    vm = store.get_by_name("legacy")
    assert vm is not None and vm.stop_reason is None and vm.config == CONFIG
    store.close()


def test_state_and_config_writes_do_not_undo_each_other(tmp_path):
    """A hot-plug that waited for the hypervisor while the VM exited must not bring back the
    old state, and a state change made from an old record must not undo a hot-plug."""
    store = VmStore(tmp_path / "vmm.db")
    store.insert(record("a", None))
    before = store.get("a")
    assert before is not None
    running = store.set_state(before, VmState.RUNNING, pid=42)
    plugged = CONFIG.with_disks((*CONFIG.disks, DiskSpec("/d2")))
    # The VM exits (monitor, fresh record) while a hot-plug still holds the RUNNING record.
    store.set_state(running, VmState.STOPPED, pid=None, stop_reason="guest powered off")
    after_plug = store.set_config(running.id, plugged)
    assert after_plug is not None
    assert (after_plug.state, after_plug.pid, after_plug.config) == (VmState.STOPPED, None, plugged)
    # A state change from a record read before the hot-plug keeps the new config.
    store.set_state(running, VmState.STARTING)
    final = store.get("a")
    assert final is not None and final.config == plugged and final.state == VmState.STARTING
    store.close()
