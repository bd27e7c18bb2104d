"""The Python runtime lock: its format, its agreement with pyproject.toml, and installing it
into an image tree for the image's interpreter."""

import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from mvirt_build import pylock
from mvirt_build.errors import BuildError

ROOT = Path(__file__).resolve().parents[2]
HASH = "a" * 64


def test_parse_reads_name_version_and_every_hash():
    text = (
        "# comment\n"
        f"grpcio==1.71.2 \\\n    --hash=sha256:{HASH} \\\n    --hash=sha256:{'b' * 64}\n"
        "    # via grpcio-health-checking\n"
        f"Qemu.QMP==0.0.6 --hash=sha256:{HASH}\n"
    )
    pins = pylock.parse_lock(text)
    assert [(p.name, p.version) for p in pins] == [("grpcio", "1.71.2"), ("qemu.qmp", "0.0.6")]
    assert pins[0].hashes == (HASH, "b" * 64)


def test_a_requirement_without_a_hash_is_refused():
    with pytest.raises(BuildError, match="grpcio has no --hash"):
        pylock.parse_lock("grpcio==1.71.2\n")


def test_a_range_instead_of_a_pin_is_refused():
    with pytest.raises(BuildError, match="line 1 is not `name==version"):
        pylock.parse_lock(f"grpcio>=1.71 --hash=sha256:{HASH}\n")


def test_the_lock_satisfies_every_dependency_of_pyproject():
    """A dependency added to pyproject.toml without `make lock` fails here, naming it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {
        p.name.replace("_", "-").replace(".", "-"): p.version
        for p in pylock.parse_lock((ROOT / pylock.LOCK_PATH).read_text())
    }
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        key = requirement.name.lower().replace("_", "-").replace(".", "-")
        assert key in pins, f"{requirement.name} is not in {pylock.LOCK_PATH}: run `make lock`"
        assert requirement.specifier.contains(pins[key]), (
            f"{pylock.LOCK_PATH} pins {requirement.name}=={pins[key]}, pyproject wants "
            f"{requirement.specifier}: run `make lock`"
        )


@pytest.mark.slow
def test_installed_tree_imports_the_daemons_dependencies_with_debians_interpreter(tmp_path):
    """The wheels land in the tree's site directory and work with /usr/bin/python3 -S
    (what the image runs), compiled extensions included."""
    tree = tmp_path / "tree"
    pylock.install_into_tree(ROOT / pylock.LOCK_PATH, tree)
    site = tree / pylock.SITE_DIR
    assert not (site / "bin").exists()
    assert not (tree / "tmp" / "mvirt-wheels").exists()
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import grpc, google.protobuf, grpc_health.v1.health, grpc_reflection.v1alpha.reflection;"
        "import qemu.qmp; from grpc._cython import cygrpc;"
        "print(grpc.__version__, google.protobuf.__version__, cygrpc.__file__)"
    )
    out = subprocess.run(
        ["/usr/bin/python3", "-S", "-c", probe, str(site)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[:2] == ["1.71.2", "5.29.5"]
    assert out[2].startswith(str(site))
