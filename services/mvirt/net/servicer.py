"""The NetService gRPC servicer: thin handlers that call :class:`NetManager` and convert.
Domain errors become status codes in the shared error layer."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from mvirt.daemon.version import package_version
from mvirt.net.convert import network_to_proto, nic_to_proto
from mvirt.net.manager import NetManager
from mvirt.net.model import NetworkRecord, NicRecord
from mvirt.proto import net_pb2, net_pb2_grpc

Ctx: TypeAlias = grpc.aio.ServicerContext


class NetServicer(net_pb2_grpc.NetServiceServicer):
    """mvirt.net.NetService over a :class:`NetManager`."""

    def __init__(self, manager: NetManager) -> None:
        self.manager = manager

    def _network(self, net: NetworkRecord) -> net_pb2.Network:
        return network_to_proto(net, self.manager.nic_count(net))

    async def _nic(self, nic: NicRecord) -> net_pb2.Nic:
        (state,) = await self.manager.nic_states([nic])
        return nic_to_proto(nic, state)

    async def GetVersion(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.GetVersionRequest, context: Ctx
    ) -> net_pb2.VersionInfo:
        """The daemon's version."""
        return net_pb2.VersionInfo(version=package_version())

    async def CreateNetwork(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.CreateNetworkRequest, context: Ctx
    ) -> net_pb2.Network:
        """Create a network (a subnet given implies its family is enabled)."""
        net = await self.manager.create_network(
            request.name,
            request.ipv4_enabled,
            request.ipv4_subnet,
            request.ipv6_enabled,
            request.ipv6_prefix,
            request.dns_servers,
            request.ntp_servers,
            request.is_public,
        )
        return self._network(net)

    async def GetNetwork(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.GetNetworkRequest, context: Ctx
    ) -> net_pb2.Network:
        """One network by id or name."""
        which = request.WhichOneof("identifier") or "id"
        return self._network(self.manager.get_network(getattr(request, which), which))

    async def ListNetworks(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.ListNetworksRequest, context: Ctx
    ) -> net_pb2.ListNetworksResponse:
        """Every network, oldest first."""
        return net_pb2.ListNetworksResponse(
            networks=[self._network(n) for n in self.manager.list_networks()]
        )

    async def UpdateNetwork(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.UpdateNetworkRequest, context: Ctx
    ) -> net_pb2.Network:
        """Replace a network's DNS and NTP servers."""
        net = await self.manager.update_network(
            request.id, request.dns_servers, request.ntp_servers
        )
        return self._network(net)

    async def DeleteNetwork(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.DeleteNetworkRequest, context: Ctx
    ) -> net_pb2.DeleteNetworkResponse:
        """Delete a network; with force, its NICs too."""
        removed = await self.manager.delete_network(request.id, request.force)
        return net_pb2.DeleteNetworkResponse(deleted=True, nics_deleted=removed)

    async def CreateNic(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.CreateNicRequest, context: Ctx
    ) -> net_pb2.Nic:
        """Create a NIC; empty fields are auto-assigned."""
        nic = await self.manager.create_nic(
            request.network_id,
            request.name,
            request.mac_address,
            request.ipv4_address,
            request.ipv6_address,
            request.routed_ipv4_prefixes,
            request.routed_ipv6_prefixes,
        )
        return await self._nic(nic)

    async def GetNic(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.GetNicRequest, context: Ctx
    ) -> net_pb2.Nic:
        """One NIC by id or name."""
        which = request.WhichOneof("identifier") or "id"
        nic = self.manager.get_nic(getattr(request, which), which)
        return await self._nic(nic)

    async def ListNics(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.ListNicsRequest, context: Ctx
    ) -> net_pb2.ListNicsResponse:
        """Every NIC, or those of one network."""
        nics = self.manager.list_nics(request.network_id)
        states = await self.manager.nic_states(nics)
        return net_pb2.ListNicsResponse(
            nics=[nic_to_proto(n, s) for n, s in zip(nics, states, strict=True)]
        )

    async def UpdateNic(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.UpdateNicRequest, context: Ctx
    ) -> net_pb2.Nic:
        """Replace a NIC's routed prefixes."""
        nic = await self.manager.update_nic(
            request.id, request.routed_ipv4_prefixes, request.routed_ipv6_prefixes
        )
        return await self._nic(nic)

    async def DeleteNic(  # noqa: N802 (gRPC method name)
        self, request: net_pb2.DeleteNicRequest, context: Ctx
    ) -> net_pb2.DeleteNicResponse:
        """Delete a NIC and its TAP."""
        await self.manager.delete_nic(request.id)
        return net_pb2.DeleteNicResponse(deleted=True)
