"""mkosi's repository list for the rootfs, written from the machine's own apt sources.

mkosi 24 would add Debian's debian-debug suite, which the build machines cannot reach, so the
project replaces mkosi's list with a package-manager tree (`mkosi.pkgmngr/`, found by mkosi by
its name, so a plain `mkosi build` reads it too). The list is not part of the project: it is
generated into `mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources` (ignored by git) from the
mirrors the machine already uses, so a machine with a local mirror builds from it and the
project names no mirror host. The rootfs stage writes it before it reads mkosi's configuration
(any `mvirt-build` build or status), and so does `make wheels` (which a plain `mkosi build` on
a fresh clone needs anyway); it is rewritten only when its content
changes, and as a file of the package-manager tree it is part of the rootfs stage's input: a
different mirror makes the rootfs stale.

bookworm-updates comes from the machine's source for it, else from its bookworm mirror (the
same archive); bookworm-security from the machine's source for it, else from the sibling
`debian-security` of its bookworm mirror (Debian's layout on deb.debian.org and its mirrors).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mvirt_build.apt_sources import APT_DIR, mirror_for
from mvirt_build.errors import BuildError
from mvirt_build.hashing import atomic_write

RELATIVE_PATH = Path("mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources")
RELEASE = "bookworm"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _security_mirror(main: str, apt_dir: Path) -> str:
    try:
        return mirror_for(f"{RELEASE}-security", apt_dir)
    except LookupError:
        pass
    if main.endswith("/debian"):
        return main + "-security"
    raise BuildError(
        f"no apt source of this machine serves {RELEASE}-security main, and its {RELEASE} "
        f"mirror {main} does not end in /debian, so the security archive beside it is unknown",
        f"add a {RELEASE}-security source to this machine's apt sources "
        f"({apt_dir}/sources.list.d/)",
    )


def render(apt_dir: Path = APT_DIR) -> str:
    """The deb822 sources mkosi installs the rootfs from, by this machine's mirrors."""
    try:
        main = mirror_for(RELEASE, apt_dir)
    except LookupError as exc:
        raise BuildError(
            f"{exc}, so mkosi has no mirror to build the rootfs from",
            f"add Debian's {RELEASE} to {apt_dir}/sources.list.d (a fresh Debian 12 has it)",
        ) from None
    try:
        updates = mirror_for(f"{RELEASE}-updates", apt_dir)
    except LookupError:
        updates = main
    security = _security_mirror(main, apt_dir)
    groups: dict[str, list[str]] = {}
    for uri, suite in ((main, RELEASE), (updates, f"{RELEASE}-updates"),
                       (security, f"{RELEASE}-security")):  # fmt: skip
        groups.setdefault(uri, []).append(suite)
    stanzas = [
        f"Types: deb\nURIs: {uri}\nSuites: {' '.join(suites)}\nComponents: main\n"
        f"Signed-By: {KEYRING}\n"
        for uri, suites in groups.items()
    ]
    # The same text as the list the project once kept, so a machine using deb.debian.org
    # keeps its rootfs input (and cached tree).
    header = "# mkosi would add the debian-debug suite too, which is unreachable from the build machines.\n"  # noqa: E501
    return header + "\n".join(stanzas)


def write(root: Path, apt_dir: Path = APT_DIR) -> Path:
    """Write the sources into `root`'s package-manager tree unless they are there already
    (an unchanged file keeps its identity, so nothing downstream is read again)."""
    path = root / RELATIVE_PATH
    text = render(apt_dir)
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    atomic_write(path, text)
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m mvirt_build.mkosi_sources [ROOT]`: write the sources into ROOT (default .)."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd()
    try:
        print(write(root))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
