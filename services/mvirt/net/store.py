"""SQLite state of mvirt-net: networks and NICs, WAL mode, numbered schema migrations.

The store is the source of truth: the kernel's TAPs, routes, rules and nftables table are
rendered from it. Uniqueness (names, MACs, addresses, TAPs, routing tables) is also enforced
by the schema, so a race or a bug can never store two NICs with one address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import sqlite3
from pathlib import Path
from typing import Any

from mvirt.daemon.sqlite_state import open_state, transaction
from mvirt.net.model import NetworkRecord, NicRecord

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        ipv4_subnet TEXT,
        ipv6_prefix TEXT,
        dns_servers TEXT NOT NULL,
        ntp_servers TEXT NOT NULL,
        is_public INTEGER NOT NULL,
        route_table INTEGER NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE nics (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        network_id TEXT NOT NULL REFERENCES networks(id),
        mac TEXT NOT NULL UNIQUE,
        ipv4 TEXT UNIQUE,
        ipv6 TEXT UNIQUE,
        routed_v4 TEXT NOT NULL,
        routed_v6 TEXT NOT NULL,
        tap TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX nics_name ON nics(name) WHERE name != '';
    CREATE INDEX nics_network ON nics(network_id);
    """,
)

_NET_COLUMNS = (
    "id, name, ipv4_subnet, ipv6_prefix, dns_servers, ntp_servers, is_public, route_table, "
    "created_at, updated_at"
)
_NIC_COLUMNS = (
    "id, name, network_id, mac, ipv4, ipv6, routed_v4, routed_v6, tap, created_at, updated_at"
)


class ConflictError(Exception):
    """A uniqueness constraint refused the write; ``str()`` is SQLite's description."""


class NetStore:
    """Networks and NICs of one daemon, persisted in ``<data dir>/net.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_state(path, MIGRATIONS, foreign_keys=True)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction: everything inside is stored, or nothing."""
        return transaction(self._db)

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            raise ConflictError(str(exc)) from None

    # -- networks --------------------------------------------------------------------------

    @staticmethod
    def _network(row: tuple[Any, ...]) -> NetworkRecord:
        (net_id, name, v4, v6, dns, ntp, public, table, created, updated) = row
        return NetworkRecord(
            id=str(net_id),
            name=str(name),
            ipv4_subnet=ipaddress.IPv4Network(v4) if v4 else None,
            ipv6_prefix=ipaddress.IPv6Network(v6) if v6 else None,
            dns_servers=tuple(json.loads(dns)),
            ntp_servers=tuple(json.loads(ntp)),
            is_public=bool(public),
            table=int(table),
            created_at=str(created),
            updated_at=str(updated),
        )

    def insert_network(self, net: NetworkRecord) -> None:
        """Store a new network; ConflictError if its name or table is taken."""
        self._write(
            f"INSERT INTO networks ({_NET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                net.id,
                net.name,
                None if net.ipv4_subnet is None else str(net.ipv4_subnet),
                None if net.ipv6_prefix is None else str(net.ipv6_prefix),
                json.dumps(list(net.dns_servers)),
                json.dumps(list(net.ntp_servers)),
                int(net.is_public),
                net.table,
                net.created_at,
                net.updated_at,
            ),
        )

    def update_network_servers(self, net: NetworkRecord) -> None:
        """Write back the DNS/NTP servers and updated_at of ``net``."""
        self._db.execute(
            "UPDATE networks SET dns_servers=?, ntp_servers=?, updated_at=? WHERE id=?",
            (
                json.dumps(list(net.dns_servers)),
                json.dumps(list(net.ntp_servers)),
                net.updated_at,
                net.id,
            ),
        )

    def delete_network(self, net_id: str) -> int:
        """Remove a network and its NICs; returns how many NICs went with it."""
        removed = self._db.execute("DELETE FROM nics WHERE network_id=?", (net_id,)).rowcount
        self._db.execute("DELETE FROM networks WHERE id=?", (net_id,))
        return int(removed)

    def get_network(self, net_id: str) -> NetworkRecord | None:
        """The network with this id, or None."""
        row = self._db.execute(
            f"SELECT {_NET_COLUMNS} FROM networks WHERE id=?", (net_id,)
        ).fetchone()
        return None if row is None else self._network(row)

    def get_network_by_name(self, name: str) -> NetworkRecord | None:
        """The network with this name, or None."""
        row = self._db.execute(
            f"SELECT {_NET_COLUMNS} FROM networks WHERE name=?", (name,)
        ).fetchone()
        return None if row is None else self._network(row)

    def networks(self) -> list[NetworkRecord]:
        """Every network, oldest first."""
        rows = self._db.execute(
            f"SELECT {_NET_COLUMNS} FROM networks ORDER BY created_at, rowid"
        ).fetchall()
        return [self._network(r) for r in rows]

    def nic_count(self, net_id: str) -> int:
        """How many NICs the network has."""
        row = self._db.execute("SELECT COUNT(*) FROM nics WHERE network_id=?", (net_id,))
        return int(row.fetchone()[0])

    # -- NICs ------------------------------------------------------------------------------

    @staticmethod
    def _nic(row: tuple[Any, ...]) -> NicRecord:
        (nic_id, name, net_id, mac, v4, v6, r4, r6, tap, created, updated) = row
        return NicRecord(
            id=str(nic_id),
            name=str(name),
            network_id=str(net_id),
            mac=str(mac),
            ipv4=ipaddress.IPv4Address(v4) if v4 else None,
            ipv6=ipaddress.IPv6Address(v6) if v6 else None,
            routed_v4=tuple(ipaddress.IPv4Network(n) for n in json.loads(r4)),
            routed_v6=tuple(ipaddress.IPv6Network(n) for n in json.loads(r6)),
            tap=str(tap),
            created_at=str(created),
            updated_at=str(updated),
        )

    def insert_nic(self, nic: NicRecord) -> None:
        """Store a new NIC; ConflictError if a unique column is taken."""
        self._write(
            f"INSERT INTO nics ({_NIC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                nic.id,
                nic.name,
                nic.network_id,
                nic.mac,
                None if nic.ipv4 is None else str(nic.ipv4),
                None if nic.ipv6 is None else str(nic.ipv6),
                json.dumps([str(n) for n in nic.routed_v4]),
                json.dumps([str(n) for n in nic.routed_v6]),
                nic.tap,
                nic.created_at,
                nic.updated_at,
            ),
        )

    def update_nic_routes(self, nic: NicRecord) -> None:
        """Write back the routed prefixes and updated_at of ``nic``."""
        self._db.execute(
            "UPDATE nics SET routed_v4=?, routed_v6=?, updated_at=? WHERE id=?",
            (
                json.dumps([str(n) for n in nic.routed_v4]),
                json.dumps([str(n) for n in nic.routed_v6]),
                nic.updated_at,
                nic.id,
            ),
        )

    def delete_nic(self, nic_id: str) -> None:
        """Remove a NIC."""
        self._db.execute("DELETE FROM nics WHERE id=?", (nic_id,))

    def get_nic(self, nic_id: str) -> NicRecord | None:
        """The NIC with this id, or None."""
        row = self._db.execute(f"SELECT {_NIC_COLUMNS} FROM nics WHERE id=?", (nic_id,)).fetchone()
        return None if row is None else self._nic(row)

    def get_nic_by_name(self, name: str) -> NicRecord | None:
        """The NIC with this (non-empty) name, or None."""
        if not name:
            return None
        row = self._db.execute(f"SELECT {_NIC_COLUMNS} FROM nics WHERE name=?", (name,)).fetchone()
        return None if row is None else self._nic(row)

    def nics(self, network_id: str | None = None) -> list[NicRecord]:
        """Every NIC (of one network, if given), oldest first."""
        if network_id is None:
            rows = self._db.execute(
                f"SELECT {_NIC_COLUMNS} FROM nics ORDER BY created_at, rowid"
            ).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {_NIC_COLUMNS} FROM nics WHERE network_id=? ORDER BY created_at, rowid",
                (network_id,),
            ).fetchall()
        return [self._nic(r) for r in rows]

    def mac_taken(self, mac: str) -> bool:
        """True if a NIC has this MAC."""
        return self._db.execute("SELECT 1 FROM nics WHERE mac=?", (mac,)).fetchone() is not None
