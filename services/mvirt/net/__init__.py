"""mvirt-net: routed L3 networks; the kernel forwards, this package configures it and answers
DHCP and router advertisements."""
