"""The machine's mirrors are read from its apt sources, in both formats apt understands."""

import subprocess
import sys
from pathlib import Path

import pytest

from mvirt_build import apt_sources

SCRIPT = Path(apt_sources.__file__)


def _apt_dir(tmp_path: Path, sources_list: str = "", parts: dict[str, str] | None = None) -> Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(sources_list)
    for name, text in (parts or {}).items():
        (apt / "sources.list.d" / name).write_text(text)
    return apt


def test_deb822_sources_give_the_suites_mirror(tmp_path):
    apt = _apt_dir(
        tmp_path,
        parts={
            "debian.sources": (
                "Types: deb deb-src\n# a comment\nURIs: http://mirror.example/debian/\n"
                "Suites: bookworm bookworm-updates\nComponents: main contrib\n\n"
                "Types: deb\nURIs: http://mirror.example/debian-security\n"
                "Suites: bookworm-security\nComponents: main\n"
            )
        },
    )
    assert apt_sources.mirror_for("bookworm", apt) == "http://mirror.example/debian"
    assert apt_sources.mirror_for("bookworm-security", apt) == (
        "http://mirror.example/debian-security"
    )


def test_one_line_lists_with_options_are_read(tmp_path):
    apt = _apt_dir(
        tmp_path,
        sources_list=(
            "# deb http://old.example/debian bookworm main\n"
            "deb-src http://src.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://local.lan/debian bookworm main\n"
        ),
    )
    assert apt_sources.mirror_for("bookworm", apt) == "http://local.lan/debian"


def test_disabled_stanzas_and_other_components_do_not_count(tmp_path):
    apt = _apt_dir(
        tmp_path,
        parts={
            "a.sources": "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\n"
            "Components: main\nEnabled: no\n",
            "b.list": "deb http://contrib.example/debian bookworm contrib\n",
            "c.list": "deb http://on.example/debian bookworm main\n",
        },
    )
    assert apt_sources.mirror_for("bookworm", apt) == "http://on.example/debian"


def test_a_suite_nobody_serves_is_named(tmp_path):
    apt = _apt_dir(tmp_path, sources_list="deb http://m.example/debian bookworm main\n")
    with pytest.raises(LookupError, match="sid main"):
        apt_sources.mirror_for("sid", apt)


def test_the_script_runs_with_the_system_interpreter_alone(tmp_path):
    apt = _apt_dir(tmp_path, sources_list="deb http://m.example/debian bookworm main\n")
    ok = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "bookworm", "--apt-dir", str(apt)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ok.returncode, ok.stdout) == (0, "http://m.example/debian\n")
    missing = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "trixie", "--apt-dir", str(apt)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "trixie" in missing.stderr
    assert "Traceback" not in missing.stderr
