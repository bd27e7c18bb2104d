"""A stand-in for rtnetlink in manual-clock tests: the kernel cannot be made to skip hours, so
lifetime logic is driven here and checked against the real kernel in namespace tests."""

from __future__ import annotations

from mvirt.pideisn import netlink as nl


class FakeNetlink:
    """Keeps addresses, routes and the MTU the way the kernel would report them."""

    def __init__(self) -> None:
        self.addresses_added: dict[str, tuple[int, int, int]] = {}  # address → len, valid, pref
        self.routes: set[tuple[str, int, str | None]] = set()
        self.mtu: int | None = None
        self.refuse: set[str] = set()

    def add_address(
        self,
        index: int,
        address: str,
        prefixlen: int,
        *,
        broadcast: str | None = None,
        valid: int = nl.INFINITY_LIFE,
        preferred: int = nl.INFINITY_LIFE,
        flags: int = 0,
    ) -> None:
        if address in self.refuse:
            raise nl.NetlinkError(22, "Invalid argument")
        self.addresses_added[address] = (prefixlen, valid, preferred)

    def delete_address(self, index: int, address: str, prefixlen: int) -> None:
        if self.addresses_added.pop(address, None) is None:
            raise nl.NetlinkError(99, "Cannot assign requested address")

    def add_route(
        self,
        dst: str,
        dst_len: int,
        index: int,
        *,
        gateway: str | None = None,
        protocol: int = nl.RTPROT_STATIC,
        metric: int = 0,
    ) -> None:
        self.routes.add((dst, dst_len, gateway))

    def delete_route(
        self, dst: str, dst_len: int, index: int, *, gateway: str | None = None, metric: int = 0
    ) -> None:
        self.routes.discard((dst, dst_len, gateway))

    def set_mtu(self, index: int, mtu: int) -> None:
        self.mtu = mtu
