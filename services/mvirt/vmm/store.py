"""SQLite state of the VM manager: one table of VMs, WAL mode, numbered schema migrations.

Writes are tiny and rare next to SQLite's speed, so the store is used synchronously from the
event loop; WAL keeps readers (e.g. the CLI's ``sqlite3`` inspection) from blocking writers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from mvirt.daemon.sqlite_state import open_state
from mvirt.vmm.model import VmConfig, VmRecord, VmState

# Each entry moves the schema from version i to i+1; never edit a released entry, append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE vms (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE,
        state INTEGER NOT NULL,
        config TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        pid INTEGER
    );
    """,
    """
    ALTER TABLE vms ADD COLUMN stop_reason TEXT;
    """,
    # The backend that runs (or last ran) the VM: a daemon restarted with another
    # --hypervisor still drives the VMs of the first one with their own backend.
    """
    ALTER TABLE vms ADD COLUMN hypervisor TEXT;
    """,
)


class NameTakenError(Exception):
    """Another VM already has this name."""


class VmStore:
    """The VMs of one daemon, persisted in ``<data dir>/vmm.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_state(path, MIGRATIONS)

    @property
    def schema_version(self) -> int:
        """The schema version the database is at."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @staticmethod
    def _row(row: tuple[Any, ...]) -> VmRecord:
        vm_id, name, state, config, created_at, started_at, pid, stop_reason, hypervisor = row
        return VmRecord(
            id=str(vm_id),
            name=None if name is None else str(name),
            state=VmState(int(state)),
            config=VmConfig.from_json(str(config)),
            created_at=int(created_at),
            started_at=None if started_at is None else int(started_at),
            pid=None if pid is None else int(pid),
            stop_reason=None if stop_reason is None else str(stop_reason),
            hypervisor=None if hypervisor is None else str(hypervisor),
        )

    _COLUMNS = "id, name, state, config, created_at, started_at, pid, stop_reason, hypervisor"

    def insert(self, vm: VmRecord) -> None:
        """Store a new VM; raises :class:`NameTakenError` when the name is in use."""
        try:
            self._db.execute(
                f"INSERT INTO vms ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    vm.id,
                    vm.name,
                    int(vm.state),
                    vm.config.to_json(),
                    vm.created_at,
                    vm.started_at,
                    vm.pid,
                    vm.stop_reason,
                    vm.hypervisor,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise NameTakenError(vm.name or "") from exc

    def set_state(self, vm: VmRecord, state: VmState, **changes: object) -> VmRecord:
        """Persist a state change (plus pid, started_at, stop_reason, hypervisor) and return the
        new record.

        The config column is not written: a caller holding an old record cannot undo a
        hot-plug that happened meanwhile.
        """
        if "config" in changes:
            raise ValueError("set_state does not write the config; use set_config")
        new = replace(vm, state=state, **changes)  # type: ignore[arg-type]
        self._db.execute(
            "UPDATE vms SET state=?, started_at=?, pid=?, stop_reason=?, hypervisor=? WHERE id=?",
            (int(new.state), new.started_at, new.pid, new.stop_reason, new.hypervisor, new.id),
        )
        return new

    def set_config(self, vm_id: str, config: VmConfig) -> VmRecord | None:
        """Persist a new config only (state, pid and reason stay as stored) and return the
        VM as it is stored now, or None when it was deleted meanwhile."""
        self._db.execute("UPDATE vms SET config=? WHERE id=?", (config.to_json(), vm_id))
        return self.get(vm_id)

    def delete(self, vm_id: str) -> None:
        """Remove a VM."""
        self._db.execute("DELETE FROM vms WHERE id=?", (vm_id,))

    def get(self, vm_id: str) -> VmRecord | None:
        """The VM with this id, or None."""
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM vms WHERE id=?", (vm_id,)).fetchone()
        return None if row is None else self._row(row)

    def get_by_name(self, name: str) -> VmRecord | None:
        """The VM with this name, or None."""
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM vms WHERE name=?", (name,)).fetchone()
        return None if row is None else self._row(row)

    def list(self) -> list[VmRecord]:
        """All VMs, oldest first."""
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM vms ORDER BY created_at, rowid"
        ).fetchall()
        return [self._row(r) for r in rows]
