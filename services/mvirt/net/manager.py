"""The network manager: validation, allocation and persistence of networks and NICs, and the
data plane kept in step with the database. The gRPC servicer is a thin layer over this class.

Concurrency: one lock serialises every mutation and reconciliation. A mutation writes the
database inside a transaction, applies the resulting state to the data plane, and commits only
when the kernel took it; if the kernel refuses, the transaction rolls back and the previous
state is applied again, so neither the database nor the kernel keeps half of a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import grpc

from mvirt.daemon.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    MvirtError,
    NotFoundError,
    UnavailableError,
)
from mvirt.net import allocation, validation
from mvirt.net.desired import TABLE_BASE, TABLE_SPAN, DesiredState, render
from mvirt.net.model import NetworkRecord, NicRecord, NicState, tap_name
from mvirt.net.store import ConflictError, NetStore

log = logging.getLogger("mvirt.net.manager")

AUDIT_LEVEL = 4  # mvirt.log.LogLevel.AUDIT
MAC_ATTEMPTS = 16


class ResourceExhaustedError(MvirtError):
    """A network has no free address left."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class AuditLog(Protocol):
    """What the manager needs from the shared audit client."""

    def log(self, level: int, message: str, related_ids: Iterable[str] = ()) -> str:
        """Record one audit entry without blocking."""
        ...


class DataPlane(Protocol):
    """What the manager needs from the kernel side (see :mod:`mvirt.net.kernel`)."""

    def apply(self, state: DesiredState, rollback: bool = False) -> None:
        """Make the kernel match ``state``; raises on refusal. ``rollback``: undoing a
        refused change (remove what it added even if nftables refuses again)."""
        ...

    def carrier(self) -> dict[str, bool]:
        """Existing TAPs → True when a hypervisor holds them."""
        ...

    def close(self) -> None:
        """Release resources (the kernel state stays)."""
        ...


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NetManager:
    """All networks and NICs of one daemon."""

    def __init__(
        self,
        data_dir: Path,
        dataplane: DataPlane,
        audit: AuditLog,
        uplink: str | None = None,
    ) -> None:
        self.store = NetStore(data_dir / "net.db")
        self.dataplane = dataplane
        self.audit = audit
        self.uplink = uplink
        self._lock = asyncio.Lock()
        self.listeners: list[ChangeListener] = []

    async def close(self) -> None:
        """Close the store and the data plane handle (the kernel state stays)."""
        async with self._lock:
            self.store.close()
            self.dataplane.close()

    # -- data plane ------------------------------------------------------------------------

    def desired(
        self,
        networks: Sequence[NetworkRecord] | None = None,
        nics: Sequence[NicRecord] | None = None,
    ) -> DesiredState:
        """The kernel state for the database (or for the records given)."""
        return render(
            self.store.networks() if networks is None else networks,
            self.store.nics() if nics is None else nics,
            self.uplink,
        )

    async def _apply(self, state: DesiredState) -> None:
        try:
            await asyncio.to_thread(self.dataplane.apply, state)
        except Exception as exc:
            log.error("data plane refused a change", extra={"reason": str(exc)})
            raise UnavailableError(
                f"the kernel refused the change ({exc})",
                hint="nothing was changed; check the daemon log and that mvirt-net runs as root",
            ) from None
        for listener in self.listeners:
            listener.changed(state)

    @contextlib.asynccontextmanager
    async def _change(self) -> AsyncIterator[None]:
        """One mutation, with the lock held: the database writes inside it are applied to the
        kernel and commit only when the kernel took them. If a write raises, the transaction
        rolls back; if the kernel refuses, it rolls back too and the kernel gets the state of
        before (rendered before the uncommitted writes) again."""
        previous = self.desired()
        with self.store.transaction():
            yield
            try:
                await self._apply(self.desired())
            except UnavailableError:
                try:
                    await asyncio.to_thread(self.dataplane.apply, previous, True)
                except Exception as exc:
                    log.error("could not restore the data plane", extra={"reason": str(exc)})
                raise

    async def reconcile(self) -> None:
        """Rebuilds TAPs, routes, rules and nftables from the database; removes stale ones."""
        async with self._lock:
            state = self.desired()
            await self._apply(state)
            log.info(
                "data plane reconciled",
                extra={"networks": len(state.networks), "nics": len(state.nics)},
            )

    async def nic_states(self, nics: Sequence[NicRecord]) -> list[NicState]:
        """Per NIC: ACTIVE when a hypervisor holds its TAP, CREATED while none does, ERROR
        when the TAP is missing."""
        links = await asyncio.to_thread(self.dataplane.carrier)
        states = []
        for nic in nics:
            if nic.tap not in links:
                states.append(NicState.ERROR)
            else:
                states.append(NicState.ACTIVE if links[nic.tap] else NicState.CREATED)
        return states

    def _audit(self, message: str, *ids: str) -> None:
        self.audit.log(AUDIT_LEVEL, message, [i for i in ids if i])

    # -- networks --------------------------------------------------------------------------

    def get_network(self, ref: str, field: str = "id") -> NetworkRecord:
        """A network by id or name; NOT_FOUND otherwise."""
        if not ref:
            raise InvalidArgumentError(f"{field} is empty: give a network id or name")
        net = self.store.get_network(ref) or self.store.get_network_by_name(ref)
        if net is None:
            raise NotFoundError(
                f"network {ref!r} does not exist; `mvirt network list` shows the networks"
            )
        return net

    def list_networks(self) -> list[NetworkRecord]:
        """Every network, oldest first."""
        return self.store.networks()

    def nic_count(self, net: NetworkRecord) -> int:
        """How many NICs ``net`` has."""
        return self.store.nic_count(net.id)

    def _free_table(self) -> int:
        used = {net.table for net in self.store.networks()}
        for table in range(TABLE_BASE + 1, TABLE_BASE + TABLE_SPAN + 1):
            if table not in used:
                return table
        raise ResourceExhaustedError(f"at most {TABLE_SPAN} networks per host")

    def _check_space_free(
        self,
        nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
        field: str,
        *,
        skip_nic: str = "",
    ) -> None:
        """ALREADY_EXISTS if any of ``nets`` overlaps a network or another NIC's routes."""
        for new in nets:
            for net in self.store.networks():
                for used in (net.ipv4_subnet, net.ipv6_prefix):
                    if used is not None and validation.overlaps(used, new):
                        raise AlreadyExistsError(
                            f"{field} {new} overlaps {used} of network {net.name!r}; "
                            "choose a free range"
                        )
            for nic in self.store.nics():
                if nic.id == skip_nic:
                    continue
                routed_nets: list[validation.IPNet] = [*nic.routed_v4, *nic.routed_v6]
                for routed in routed_nets:
                    if validation.overlaps(routed, new):
                        raise AlreadyExistsError(
                            f"{field} {new} overlaps {routed} routed to NIC {nic.id}; "
                            "choose a free range"
                        )

    async def create_network(
        self,
        name: str,
        ipv4_enabled: bool,
        ipv4_subnet: str,
        ipv6_enabled: bool,
        ipv6_prefix: str,
        dns_servers: Sequence[str],
        ntp_servers: Sequence[str],
        is_public: bool,
    ) -> NetworkRecord:
        """Validates and stores a new network and sets up its routing table."""
        validation.check_name(name, "name")
        if ipv4_enabled and not ipv4_subnet:
            raise InvalidArgumentError("ipv4_enabled is set but ipv4_subnet is empty; give a CIDR")
        if ipv6_enabled and not ipv6_prefix:
            raise InvalidArgumentError("ipv6_enabled is set but ipv6_prefix is empty; give a CIDR")
        subnet = validation.parse_subnet4(ipv4_subnet) if ipv4_subnet else None
        prefix = validation.parse_prefix6(ipv6_prefix) if ipv6_prefix else None
        if subnet is None and prefix is None:
            raise InvalidArgumentError(
                "a network needs ipv4_subnet, ipv6_prefix or both (e.g. 10.0.0.0/24)"
            )
        dns = validation.parse_servers(dns_servers, "dns_servers")
        ntp = validation.parse_servers(ntp_servers, "ntp_servers")
        async with self._lock:
            if self.store.get_network_by_name(name) is not None:
                raise AlreadyExistsError(f"a network named {name!r} exists already")
            self._check_space_free([n for n in (subnet, prefix) if n is not None], "subnet")
            now = _now()
            net = NetworkRecord(
                id=str(uuid.uuid4()),
                name=name,
                ipv4_subnet=subnet,
                ipv6_prefix=prefix,
                dns_servers=dns,
                ntp_servers=ntp,
                is_public=is_public,
                table=self._free_table(),
                created_at=now,
                updated_at=now,
            )
            async with self._change():
                try:
                    self.store.insert_network(net)
                except ConflictError:
                    raise AlreadyExistsError(f"a network named {name!r} exists already") from None
            self._audit(f"network {name} created ({subnet or '-'}, {prefix or '-'})", net.id)
            return net

    async def update_network(
        self, ref: str, dns_servers: Sequence[str], ntp_servers: Sequence[str]
    ) -> NetworkRecord:
        """Replaces the DNS and NTP servers of a network."""
        dns = validation.parse_servers(dns_servers, "dns_servers")
        ntp = validation.parse_servers(ntp_servers, "ntp_servers")
        async with self._lock:
            net = replace(
                self.get_network(ref), dns_servers=dns, ntp_servers=ntp, updated_at=_now()
            )
            self.store.update_network_servers(net)
            for listener in self.listeners:
                listener.changed(self.desired())
        self._audit(f"network {net.name} updated (dns {list(dns)}, ntp {list(ntp)})", net.id)
        return net

    async def delete_network(self, ref: str, force: bool) -> int:
        """Deletes a network (and, with ``force``, its NICs); returns the NICs deleted."""
        async with self._lock:
            net = self.get_network(ref)
            nics = self.store.nics(net.id)
            if nics and not force:
                raise FailedPreconditionError(
                    f"network {net.name!r} has {len(nics)} NIC(s)",
                    hint="delete them first or pass force to delete them with the network",
                )
            async with self._change():
                removed = self.store.delete_network(net.id)
        self._audit(
            f"network {net.name} deleted with {removed} NIC(s)", net.id, *(n.id for n in nics)
        )
        return removed

    # -- NICs ------------------------------------------------------------------------------

    def get_nic(self, ref: str, field: str = "id") -> NicRecord:
        """A NIC by id or name; NOT_FOUND otherwise."""
        if not ref:
            raise InvalidArgumentError(f"{field} is empty: give a NIC id or name")
        nic = self.store.get_nic(ref) or self.store.get_nic_by_name(ref)
        if nic is None:
            raise NotFoundError(f"NIC {ref!r} does not exist; `mvirt nic list` shows the NICs")
        return nic

    def list_nics(self, network_ref: str = "") -> list[NicRecord]:
        """Every NIC, or those of one network (id or name)."""
        if not network_ref:
            return self.store.nics()
        return self.store.nics(self.get_network(network_ref, "network_id").id)

    def _pick_ipv4(self, net: NetworkRecord, requested: str) -> ipaddress.IPv4Address | None:
        subnet = net.ipv4_subnet
        if subnet is None:
            if requested:
                raise InvalidArgumentError(
                    f"ipv4_address {requested!r} given but network {net.name!r} has no IPv4"
                )
            return None
        taken = {n.ipv4 for n in self.store.nics(net.id) if n.ipv4 is not None}
        if requested:
            address = validation.parse_address4(requested)
            if not allocation.usable_v4(subnet, address):
                raise InvalidArgumentError(
                    f"ipv4_address {address} is not a usable address of {subnet} (network "
                    f"{net.name!r}); its network and broadcast addresses are not usable"
                )
            if address in taken:
                raise AlreadyExistsError(f"ipv4_address {address} is taken by another NIC")
            return address
        free = allocation.next_free_v4(subnet, taken)
        if free is None:
            raise ResourceExhaustedError(f"network {net.name!r} has no free IPv4 address left")
        return free

    def _pick_ipv6(self, net: NetworkRecord, requested: str) -> ipaddress.IPv6Address | None:
        prefix = net.ipv6_prefix
        if prefix is None:
            if requested:
                raise InvalidArgumentError(
                    f"ipv6_address {requested!r} given but network {net.name!r} has no IPv6"
                )
            return None
        taken = {n.ipv6 for n in self.store.nics(net.id) if n.ipv6 is not None}
        if requested:
            address = validation.parse_address6(requested)
            if not allocation.usable_v6(prefix, address):
                raise InvalidArgumentError(
                    f"ipv6_address {address} is not a usable address of {prefix} (network "
                    f"{net.name!r})"
                )
            if address in taken:
                raise AlreadyExistsError(f"ipv6_address {address} is taken by another NIC")
            return address
        free6 = allocation.next_free_v6(prefix, taken)
        if free6 is None:
            raise ResourceExhaustedError(f"network {net.name!r} has no free IPv6 address left")
        return free6

    def _pick_mac(self, nic_id: str, requested: str) -> str:
        if requested:
            mac = validation.parse_mac(requested)
            if self.store.mac_taken(mac):
                raise AlreadyExistsError(f"mac_address {mac} is taken by another NIC")
            return mac
        for attempt in range(MAC_ATTEMPTS):
            mac = allocation.mac_for(nic_id, attempt)
            if not self.store.mac_taken(mac):
                return mac
        raise ResourceExhaustedError("no free MAC address found; give mac_address")

    async def create_nic(
        self,
        network_ref: str,
        name: str,
        mac_address: str,
        ipv4_address: str,
        ipv6_address: str,
        routed_v4: Sequence[str],
        routed_v6: Sequence[str],
    ) -> NicRecord:
        """Validates, allocates and stores a NIC, and creates its TAP, routes and rules."""
        validation.check_name(name, "name", required=False)
        routes4 = validation.parse_routed4(routed_v4, "routed_ipv4_prefixes")
        routes6 = validation.parse_routed6(routed_v6, "routed_ipv6_prefixes")
        async with self._lock:
            net = self.get_network(network_ref, "network_id")
            if name and self.store.get_nic_by_name(name) is not None:
                raise AlreadyExistsError(f"a NIC named {name!r} exists already")
            nic_id = str(uuid.uuid4())
            ipv4 = self._pick_ipv4(net, ipv4_address)
            ipv6 = self._pick_ipv6(net, ipv6_address)
            mac = self._pick_mac(nic_id, mac_address)
            self._check_space_free([*routes4, *routes6], "routed prefix")
            now = _now()
            nic = NicRecord(
                id=nic_id,
                name=name,
                network_id=net.id,
                mac=mac,
                ipv4=ipv4,
                ipv6=ipv6,
                routed_v4=routes4,
                routed_v6=routes6,
                tap=tap_name(nic_id),
                created_at=now,
                updated_at=now,
            )
            async with self._change():
                try:
                    self.store.insert_nic(nic)
                except ConflictError as exc:
                    raise AlreadyExistsError(
                        f"the NIC conflicts with another one ({exc})"
                    ) from None
        self._audit(
            f"NIC {name or nic_id} created in network {net.name} (tap {nic.tap}, "
            f"{ipv4 or '-'}, {ipv6 or '-'}, {mac})",
            nic.id,
            net.id,
            mac,
        )
        return nic

    async def update_nic(
        self, ref: str, routed_v4: Sequence[str], routed_v6: Sequence[str]
    ) -> NicRecord:
        """Replaces the routed prefixes of a NIC."""
        routes4 = validation.parse_routed4(routed_v4, "routed_ipv4_prefixes")
        routes6 = validation.parse_routed6(routed_v6, "routed_ipv6_prefixes")
        async with self._lock:
            old = self.get_nic(ref)
            self._check_space_free([*routes4, *routes6], "routed prefix", skip_nic=old.id)
            nic = replace(old, routed_v4=routes4, routed_v6=routes6, updated_at=_now())
            async with self._change():
                self.store.update_nic_routes(nic)
        self._audit(
            f"NIC {nic.name or nic.id} routes set to {[str(n) for n in (*routes4, *routes6)]}",
            nic.id,
            nic.network_id,
        )
        return nic

    async def delete_nic(self, ref: str) -> None:
        """Deletes a NIC and its TAP."""
        async with self._lock:
            nic = self.get_nic(ref)
            async with self._change():
                self.store.delete_nic(nic.id)
        self._audit(f"NIC {nic.name or nic.id} deleted", nic.id, nic.network_id, nic.mac)


class ChangeListener(Protocol):
    """Told the new desired state after each change (the DHCP/RA servers listen)."""

    def changed(self, state: DesiredState) -> None:
        """React to the new state; must not block."""
        ...
