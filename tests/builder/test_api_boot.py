"""`mvirt-build boot --api`: forwarded ports, the command-line word in a UKI copy, the
fingerprint from the console and the client line printed for the user."""

from pathlib import Path

import pytest

from mvirt_build import api_boot, uki
from mvirt_build.errors import BuildError

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
SBAT = b"mvirt,1,mvirt,mvirt-uos,0.1,-\n"
CONTENTS = {
    ".osrel": b"NAME=mvirt\n",
    ".cmdline": b"console=ttyS0 quiet\n",
    ".uname": b"6.1.0\n",
    ".initrd": b"\x28\xb5\x2f\xfd" * 100,
    ".linux": b"MZ" + b"\0" * 4000,
}


def test_every_api_port_is_forwarded_from_the_loopback_only():
    args = api_boot.netdev_args()
    netdev = args[args.index("-netdev") + 1]
    for port in (50051, 50052, 50053, 50054):
        assert f"hostfwd=tcp:127.0.0.1:{port}-:{port}" in netdev
    assert "0.0.0.0" not in netdev


@pytest.mark.skipif(not STUB.is_file(), reason="systemd-boot-efi is not installed")
def test_the_word_is_added_to_a_copy_of_the_uki_and_nothing_else_changes():
    image = uki.assemble(STUB.read_bytes(), CONTENTS, SBAT)
    copy = api_boot.with_cmdline_word(image, STUB.read_bytes(), SBAT, "mvirt.api=tls")
    layout = uki.inspect(copy)
    assert layout.problems == []
    assert layout.text(".cmdline").split() == ["console=ttyS0", "quiet", "mvirt.api=tls"]
    for name in (".linux", ".initrd", ".osrel", ".uname"):
        assert layout.section(name).data == uki.inspect(image).section(name).data  # type: ignore[union-attr]
    again = api_boot.with_cmdline_word(copy, STUB.read_bytes(), SBAT, "mvirt.api=tls")
    assert uki.inspect(again).text(".cmdline").count("mvirt.api=tls") == 1


def test_fingerprint_comes_from_the_daemons_console_line():
    hexdigits = "ab" * 32
    lines = [
        "mvirt-log | starting",
        f"mvirt-log | mvirt-log: API certificate fingerprint SHA256:{hexdigits}",
    ]
    assert api_boot.fingerprint_of(lines) == f"SHA256:{hexdigits}"
    assert api_boot.fingerprint_of(["pideisn: ready"]) is None


def test_client_line_is_the_one_users_type():
    assert api_boot.client_command(Path("keys"), None, "system") == [
        "mvirt", "--server", "localhost:50051", "--tls", "keys/", "system"
    ]  # fmt: skip
    pinned = api_boot.client_command(Path("keys"), "SHA256:00", "list")
    assert pinned[-3:] == ["--tls-fingerprint", "SHA256:00", "list"]


def test_missing_client_keys_name_genkey(tmp_path):
    (tmp_path / "api-ca.crt").write_text("x")
    with pytest.raises(BuildError, match=r"client\.crt, client\.key") as info:
        api_boot.check_client_keys(tmp_path)
    assert "mvirt-build genkey" in str(info.value)
