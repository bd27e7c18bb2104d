"""Files taken from a Debian package of a suite the host does not use (sid's
`cloudhv-efi-x86-64` gives cloud-hypervisor's UEFI firmware).

A lock entry says `url = "apt:SUITE/PACKAGE=VERSION"` and `member = "usr/share/.../FILE"`.
The .deb is fetched with a private apt configuration in the builder's cache (its own sources,
lists and archive folders; the host's sources stay as they are): `apt-get update` verifies the
suite's signed Release file with Debian's archive keyring and `apt-get download` checks the
package against it. The lock then pins the .deb's SHA-256 on top, so a changed package is
refused even if it is validly signed. The mirror is the one the host already uses for
bookworm (read from its apt sources), so the project names no mirror of its own.

The pin, not the Release file's freshness, is what the build trusts: apt's `Valid-Until`
check (sid's Release expires a week after it is made) is off for this configuration, so a
mirror that is a frozen copy of the archive (a local or snapshot mirror) still serves the
pinned package. The signature is still checked.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import libarchive

from mvirt_build.apt_sources import APT_DIR, mirror_for
from mvirt_build.config import default_cache_dir
from mvirt_build.errors import BuildError
from mvirt_build.locking import locked
from mvirt_build.run import run

APT_URL = re.compile(r"^apt:(?P<suite>[a-z][a-z0-9-]*)/(?P<package>[a-z0-9][a-z0-9.+-]*)"
                     r"=(?P<version>[A-Za-z0-9.+~:-]+)$")  # fmt: skip
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
UPDATE_FAILED = re.compile(r"^(E: |W: (Failed to fetch|Some index files failed))", re.MULTILINE)


def parse_url(url: str) -> tuple[str, str, str]:
    """(suite, package, version) of an `apt:SUITE/PACKAGE=VERSION` URL."""
    match = APT_URL.match(url)
    if match is None:
        raise BuildError(
            f"{url!r} is not an apt:SUITE/PACKAGE=VERSION address",
            'write it as e.g. "apt:sid/cloudhv-efi-x86-64=2026.08+ds-2"',
        )
    return match["suite"], match["package"], match["version"]


def host_mirror(suite: str = "bookworm", apt_dir: Path = APT_DIR) -> str:
    """The URI the host's apt sources use for Debian `suite` (read by `apt_sources`)."""
    try:
        return mirror_for(suite, apt_dir)
    except LookupError as exc:
        raise BuildError(
            f"{exc}, so there is no mirror to fetch packages from",
            "add Debian's bookworm to /etc/apt/sources.list.d (a fresh Debian 12 has it)",
        ) from None


def _apt_options(state: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::sourcelist={state / 'sources.list'}",
        "-o", f"Dir::Etc::sourceparts={state / 'sources.list.d'}",
        "-o", f"Dir::Etc::preferencesparts={state / 'preferences.d'}",
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", f"Dir::Cache={state / 'cache'}",
        "-o", "APT::Architecture=amd64",
        "-o", "Acquire::Languages=none",
        "-o", "APT::Sandbox::User=root",
        # Freshness of the Release file guards against a mirror holding back updates; the
        # pinned SHA-256 already fixes which package is wanted (module docstring).
        "-o", "Acquire::Check-Valid-Until=false",
        "-o", "Acquire::Check-Date=false",
        "-q",
    ]  # fmt: skip


def _update_failure(output: str, suite: str, mirror: str, keyring: str) -> BuildError:
    """What went wrong in `apt-get update` of `suite`, named from apt's messages."""
    tail = "\n".join(f"    {line}" for line in output.rstrip().splitlines()[-12:])
    local = "give a copy checked by hand with --download NAME=PATH (verified against the pin)"
    key = re.search(r"NO_PUBKEY ([0-9A-F]+)|EXPKEYSIG ([0-9A-F]+)", output)
    if key is not None:
        return BuildError(
            f"Debian's {suite} Release file at {mirror} is signed by key "
            f"{key[1] or key[2]}, which {keyring} does not hold (or holds expired): this "
            f"machine's debian-archive-keyring is older than the key that signs {suite}\n{tail}",
            f"upgrade debian-archive-keyring (`apt-get update && apt-get install "
            f"debian-archive-keyring`), or {local}",
        )
    if re.search(r"is not signed|BADSIG|invalid signature", output):
        return BuildError(
            f"the {suite} Release file at {mirror} has no valid signature\n{tail}",
            f"check the mirror in this machine's apt sources (bookworm), or {local}",
        )
    if re.search(r"does not have a Release file|404\s+Not Found", output):
        return BuildError(
            f"{mirror} (this machine's mirror for bookworm) does not carry Debian's "
            f"{suite}\n{tail}",
            f"a mirror of some suites only cannot serve it: {local}",
        )
    if re.search(r"Could not resolve|Failed to fetch|Unable to connect|Connection failed",
                 output):  # fmt: skip
        return BuildError(
            f"{mirror} (this machine's mirror for bookworm) cannot be reached\n{tail}",
            f"check the network or the mirror, or {local}",
        )
    return BuildError(
        f"`apt-get update` of Debian's {suite} from {mirror} failed\n{tail}",
        f"Debian's {suite} must be reachable through the host's mirror, or {local}",
    )


def download_deb(
    url: str, dest: Path, *, mirror: str | None = None, keyring: str = KEYRING
) -> None:
    """Fetch the package of an apt: URL into `dest`, verified by apt's signatures (the caller
    checks it against the pinned SHA-256). `mirror` defaults to the host's bookworm mirror."""
    suite, package, version = parse_url(url)
    mirror = mirror or host_mirror()
    state = default_cache_dir() / "apt" / suite
    with locked(default_cache_dir() / "locks" / f"apt-{suite}", f"the {suite} apt state", True):
        for sub in ("lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        (state / "sources.list").write_text("")
        (state / "sources.list.d" / f"{suite}.sources").write_text(
            f"Types: deb\nURIs: {mirror}\nSuites: {suite}\nComponents: main\nSigned-By: {keyring}\n"
        )
        options = _apt_options(state)
        # apt-get update exits 0 when an index could not be fetched (it keeps the old one),
        # but says so.
        proc = run(["apt-get", *options, "update"], check=False)
        output = proc.stdout.decode(errors="replace") if proc.stdout else ""
        if proc.returncode != 0 or UPDATE_FAILED.search(output):
            raise _update_failure(output, suite, mirror, keyring)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".apt-") as tmp:
            run(["apt-get", *options, "download", f"{package}={version}"], cwd=Path(tmp),
                hint=f"{package} {version} is not (or no longer) in {suite}; pin the version "
                "it has now in downloads.lock")  # fmt: skip
            debs = list(Path(tmp).glob("*.deb"))
            if len(debs) != 1:
                raise BuildError(f"apt-get download {package}={version} gave no single .deb")
            debs[0].replace(dest)


def extract_member(deb: Path, member: str) -> bytes:
    """The content of file `member` (e.g. `usr/share/x/FILE`) in the data of a .deb."""
    with libarchive.file_reader(str(deb)) as outer:
        for part in outer:
            if not part.pathname.startswith("data.tar"):
                continue
            data = b"".join(part.get_blocks())
            with libarchive.memory_reader(data) as inner:
                for entry in inner:
                    if entry.pathname.removeprefix("./") == member and entry.isfile:
                        return b"".join(entry.get_blocks())
    raise BuildError(
        f"{deb.name} has no file {member}", "fix the entry's member path in downloads.lock"
    )
