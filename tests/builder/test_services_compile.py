"""The services files of the image are also stored parsed, from the TOML the image gets."""

import marshal

from mvirt_build.cpio import Archive, Entry
from mvirt_build.services_compile import FORMAT, add_compiled_services

TOML = b'[services.hello]\ncommand = ["/usr/bin/hello"]\n'


def test_every_services_file_gets_its_compiled_form_and_nothing_else_does():
    archive = Archive()
    archive.add(Entry("/etc/pideisn/services.toml", "file", 0o644, TOML))
    archive.add(Entry("/etc/pideisn/other.toml", "file", 0o644, b"[services]\n"))
    archive.add(Entry("/etc/mvirt/settings.toml", "file", 0o644, b"x = 1\n"))
    written = add_compiled_services(archive)
    assert sorted(written) == [
        "/etc/pideisn/other.toml.marshal",
        "/etc/pideisn/services.toml.marshal",
    ]
    stored = marshal.loads(archive.entries["/etc/pideisn/services.toml.marshal"].data)
    assert stored == (FORMAT, TOML, {"services": {"hello": {"command": ["/usr/bin/hello"]}}})
    assert "/etc/mvirt/settings.toml.marshal" not in archive


def test_a_file_that_is_not_toml_is_left_to_the_boot_and_a_stale_compiled_form_removed(caplog):
    archive = Archive()
    archive.add(Entry("/etc/pideisn/services.toml", "file", 0o644, b"[services.hello\n"))
    archive.add(Entry("/etc/pideisn/services.toml.marshal", "file", 0o644, b"old"))
    assert add_compiled_services(archive) == []
    assert "/etc/pideisn/services.toml.marshal" not in archive
    assert "parsed at boot instead" in caplog.text


def test_values_marshal_cannot_store_leave_the_file_to_the_boot():
    archive = Archive()
    archive.add(Entry("/etc/pideisn/services.toml", "file", 0o644, b"when = 1979-05-27\n"))
    assert add_compiled_services(archive) == []
