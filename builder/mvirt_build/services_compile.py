"""The services files of the image, also stored parsed (`PATH.marshal`), so that PID 1 need
not import `tomllib` at boot (~0.2 s under emulation, measured in docs/pideisn.md).

The TOML stays in the image and stays the source of truth: pideisn's loader
(`mvirt.pideisn.services_file.load`) takes the compiled tables only when the TOML bytes stored
with them are exactly the file's current bytes, and validates them as it validates the TOML.
The layout, `marshal.dumps((FORMAT, toml_bytes, tables))`, is written here and read there
(the builder imports nothing of the runtime, so both name it; a test checks they agree).
"""

import logging
import marshal
import tomllib

from mvirt_build.cpio import Archive, Entry

log = logging.getLogger("mvirt_build")

SERVICES_DIR = "/etc/pideisn/"
SUFFIX = ".marshal"
FORMAT = "pideisn-services-1"
# marshal's version 2 has no back-references (version 3 added them, and whether an object gets
# one depends on its reference count): the same TOML always gives the same bytes.
MARSHAL_VERSION = 2


def compiled(text: bytes) -> bytes | None:
    """The compiled form of one services file, or None when it is not valid TOML (pideisn
    then parses it at boot and reports the error) or holds values marshal cannot store."""
    try:
        tables = tomllib.loads(text.decode())
        return marshal.dumps((FORMAT, text, tables), MARSHAL_VERSION)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        log.warning("initramfs  services file not compiled (parsed at boot instead): %s", exc)
        return None


def add_compiled_services(archive: Archive) -> list[str]:
    """Next to every `/etc/pideisn/*.toml` of the archive, its compiled form; replaces stale
    ones and removes those whose TOML cannot be compiled. Returns the paths written."""
    written = []
    for entry in list(archive.entries.values()):
        if entry.kind != "file" or not entry.path.startswith(SERVICES_DIR):
            continue
        if not entry.path.endswith(".toml"):
            continue
        target = entry.path + SUFFIX
        data = compiled(entry.data)
        if data is None:
            archive.entries.pop(target, None)
            continue
        archive.add(Entry(target, "file", 0o644, data))
        written.append(target)
    return written
