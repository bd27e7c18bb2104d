"""/etc/resolv.conf writing: only IP literals and DNS names ever become lines."""

from mvirt.pideisn.dhcp6_codec import Message, encode_domains
from mvirt.pideisn.resolv import write_resolv_conf


def test_injection_attempts_do_not_add_lines(tmp_path):
    path = tmp_path / "resolv.conf"
    write_resolv_conf(
        str(path),
        ["10.0.0.53", "6.6.6.6\nsearch evil", "fd00::53"],
        ["lab\nnameserver 6.6.6.6", "lab.example"],
    )
    assert path.read_text().splitlines()[1:] == [
        "search lab.example",
        "nameserver 10.0.0.53",
        "nameserver fd00::53",
    ]


def test_dhcpv6_domain_list_keeps_only_valid_names():
    bad = b"lab\nnameserver"
    value = encode_domains(["lab.example"]) + bytes((len(bad),)) + bad + b"\0"
    message = Message(7, 1, [(24, value)])
    assert message.domains() == ["lab.example"]
