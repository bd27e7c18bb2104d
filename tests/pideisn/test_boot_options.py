"""Kernel command line parsing."""

from mvirt.pideisn import services_file
from mvirt.pideisn.cmdline import SERVICES_FILE, BootOptions, split_words


def test_words_are_split_with_quotes():
    assert split_words('console=ttyS0 a="b c" d\n') == ["console=ttyS0", "a=b c", "d"]


def test_defaults():
    options = BootOptions(split_words("console=ttyS0 quiet PYTHONHASHSEED=0"))
    assert options.hostname is None
    assert options.network and options.ipv4 and options.ipv6 and options.dhcp6
    assert options.network_timeout == 15.0
    assert options.services_file == SERVICES_FILE
    assert options.unknown == []


def test_mvirt_options_are_read_and_unknown_ones_reported():
    options = BootOptions(
        split_words(
            "mvirt.hostname=vm1 mvirt.net.ipv6=0 mvirt.net.dhcp6=off mvirt.net.timeout=4.5 "
            "mvirt.services=/srv/s.toml mvirt.colour=blue mvirt.net"
        )
    )
    assert options.hostname == "vm1"
    assert options.network and not options.ipv6 and not options.dhcp6
    assert options.network_timeout == 4.5
    assert options.services_file == "/srv/s.toml"
    assert options.unknown == ["mvirt.colour"]


def test_bad_number_keeps_the_default():
    assert BootOptions(["mvirt.net.timeout=soon"]).network_timeout == 15.0


def test_a_byte_that_is_not_utf8_keeps_the_other_options(tmp_path):
    path = tmp_path / "cmdline"
    path.write_bytes(b"console=ttyS0 caf\xe9 mvirt.hostname=vm1 mvirt.net.ipv6=0\n")
    options = BootOptions.from_proc(str(path))
    assert options.hostname == "vm1" and not options.ipv6


def test_options_a_service_file_asks_for_are_not_reported_unknown():
    options = BootOptions(["mvirt.api=tls", "mvirt.colour=red", "console=ttyS0"])
    assert "mvirt.api=tls" in options.words
    assert options.unknown_besides({"mvirt.api=tls"}) == ["mvirt.colour"]
    assert options.unknown_besides(set()) == ["mvirt.api", "mvirt.colour"]


def test_a_byte_that_is_not_utf8_keeps_the_words_services_ask_for(tmp_path):
    path = tmp_path / "cmdline"
    path.write_bytes(b"console=ttyS0 caf\xe9 mvirt.api=tls\n")
    options = BootOptions.from_proc(str(path))
    assert "mvirt.api=tls" in options.words
    assert options.unknown_besides({"mvirt.api=tls"}) == []


def test_options_a_service_reads_by_value_or_condition_are_not_reported_unknown():
    options = BootOptions(
        ["mvirt.zfs.disk=/dev/vdb", "mvirt.zfs.pool=tank", "mvirt.net.uplink=eth1", "mvirt.x=1"]
    )
    specs = services_file.parse(
        {
            "services": {
                "pool": {
                    "command": ["x"],
                    "when_cmdline": "mvirt.zfs.disk",
                    "cmdline_values": {"mvirt.zfs.pool": ["--pool"]},
                },
                "net": {"command": ["y"], "cmdline_values": {"mvirt.net.uplink": ["--uplink"]}},
            }
        }
    )
    consumed = {w for spec in specs for w in spec.cmdline_options()}
    assert options.unknown_besides(consumed) == ["mvirt.x"]
