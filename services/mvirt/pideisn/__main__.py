"""Entry point: `python3 -m mvirt.pideisn` (the image's /init runs this as PID 1).

`pideisn dhcp IFACE...` runs the network clients alone (see dhcp_cli); anything else runs
the init, which refuses to start unless it is PID 1.
"""

import sys

from mvirt.pideisn import init


def main() -> None:
    """Dispatch to the init or to the stand-alone DHCP mode."""
    if sys.argv[1:2] == ["dhcp"]:
        # Imported here so PID 1's boot does not pay for argparse.
        from mvirt.pideisn import dhcp_cli  # noqa: PLC0415

        sys.exit(dhcp_cli.main(sys.argv[2:]))
    init.main()


if __name__ == "__main__":
    main()
