"""`pideisn dhcp IFACE`: the network clients of PID 1 run on their own, e.g. in a namespace.

Configures the named interfaces exactly as PID 1 would (DHCPv4, SLAAC, DHCPv6), prints one
`configured ...` line, then either exits (`--exit`) or keeps the leases renewed until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys

from mvirt.pideisn import netconfig
from mvirt.pideisn.console import log
from mvirt.pideisn.loop import Loop
from mvirt.pideisn.netlink import Netlink
from mvirt.pideisn.prefix_pool import PrefixPool

WAIT_CHOICES = (netconfig.WAIT_DHCP4, netconfig.WAIT_RA, netconfig.WAIT_DHCP6)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pideisn dhcp", description="Configure interfaces with DHCPv4, SLAAC and DHCPv6."
    )
    parser.add_argument("interfaces", nargs="+", metavar="IFACE")
    parser.add_argument("--no-ipv4", action="store_true", help="skip DHCPv4")
    parser.add_argument("--no-ipv6", action="store_true", help="skip SLAAC and DHCPv6")
    parser.add_argument("--no-dhcp6", action="store_true", help="skip DHCPv6")
    parser.add_argument(
        "--wait",
        default="dhcp4,ra",
        help="what 'configured' waits for, comma-separated: dhcp4, ra, dhcp6 (default dhcp4,ra)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--resolv-conf", default=None, help="write DNS servers to this file")
    parser.add_argument("--prefix-pool", default=None, help="publish delegated prefixes here")
    parser.add_argument("--exit", action="store_true", help="exit once configured")
    args = parser.parse_args(argv)
    waits = {w.strip() for w in args.wait.split(",") if w.strip()}
    unknown = waits - set(WAIT_CHOICES)
    if unknown:
        parser.error(f"unknown --wait value(s): {', '.join(sorted(unknown))}")
    args.waits = frozenset(waits)
    return args


def main(argv: list[str]) -> int:
    """Run the clients; returns the exit status (0 configured, 1 timeout, 2 setup error)."""
    args = _parse(argv)
    loop = Loop()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    try:
        netlink = Netlink()
    except OSError as exc:
        print(f"pideisn dhcp: cannot open rtnetlink: {exc}", file=sys.stderr)
        return 2
    config = netconfig.NetworkConfig(
        loop,
        netlink,
        resolv_conf=args.resolv_conf,
        prefix_pool=PrefixPool(args.prefix_pool),
        ipv4=not args.no_ipv4,
        ipv6=not args.no_ipv6,
        dhcp6=not args.no_dhcp6,
        waits=args.waits,
    )
    try:
        config.start(args.interfaces)
        if not config.interfaces:
            print("pideisn dhcp: none of the interfaces exists", file=sys.stderr)
            return 2
        done = loop.run_until(lambda: config.configured() or bool(stop), args.timeout)
        if not done or not config.configured():
            config.report_pending()
            print(f"timeout {config.summary()}", flush=True)
            return 1
        print(f"configured {config.summary()}", flush=True)
        if args.exit:
            return 0
        while not stop:
            loop.run_once(1.0)
        return 0
    finally:
        config.close()
        netlink.close()
        loop.close()
        log("dhcp client stopped")
