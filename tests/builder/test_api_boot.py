"""`mvirt-build boot --api`: forwarded ports, the command-line word in a UKI copy, the
fingerprint from the console and the client line printed for the user."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from mvirt_build import api_boot, qemu, uki
from mvirt_build.cli import main
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


@pytest.mark.parametrize("word", ["", "a b", 'mvirt.zfs.disk="/dev/vdb"', "x\ny", "tab\there"])
def test_a_boot_word_that_is_not_one_word_is_refused(word):
    with pytest.raises(BuildError, match="is not one kernel command-line word"):
        api_boot.check_cmdline_word(word)
    assert api_boot.check_cmdline_word("mvirt.zfs.disk=/dev/vdb") == "mvirt.zfs.disk=/dev/vdb"


def test_words_go_into_the_uki_copy_one_by_one():
    image = uki.assemble(STUB.read_bytes(), CONTENTS, SBAT)
    copy = image
    for word in ("mvirt.zfs.disk=/dev/vdb", "mvirt.api=tls"):
        copy = api_boot.with_cmdline_word(copy, STUB.read_bytes(), SBAT, word)
    cmdline = uki.inspect(copy).section(".cmdline")
    assert cmdline is not None
    assert cmdline.data.rstrip(b"\0").split() == [
        b"console=ttyS0", b"quiet", b"mvirt.zfs.disk=/dev/vdb", b"mvirt.api=tls"
    ]  # fmt: skip


def test_pool_disks_are_virtio_disks_after_the_boot_disk_with_commas_escaped(tmp_path):
    disks = [tmp_path / "pool.img", tmp_path / "a,b.img"]
    assert qemu.data_disk_args(disks) == [
        "-drive", f"if=none,id=data0,format=raw,file={tmp_path}/pool.img",
        "-device", "virtio-blk-pci,drive=data0",
        "-drive", f"if=none,id=data1,format=raw,file={tmp_path}/a,,b.img",
        "-device", "virtio-blk-pci,drive=data1",
    ]  # fmt: skip


def test_boot_refuses_a_bad_word_before_starting_anything(tmp_path):
    image = tmp_path / "node.efi"
    image.write_bytes(uki.assemble(STUB.read_bytes(), CONTENTS, SBAT))
    result = CliRunner().invoke(
        main, ["boot", "--uki", str(image), "--cmdline", "mvirt.zfs.disk=/dev/vdb --force"]
    )
    assert result.exit_code != 0
    assert "is not one kernel command-line word" in result.output
    assert "Traceback" not in result.output
