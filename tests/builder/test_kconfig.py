"""Kconfig fragment parsing, merging and the check that every option kept its value."""

from pathlib import Path

import pytest

from mvirt_build import kconfig
from mvirt_build.errors import BuildError

FRAGMENT = """
# a comment
CONFIG_A=y
CONFIG_B=m
# CONFIG_C is not set
CONFIG_D="text"
"""


def test_parse_reads_set_unset_and_strings():
    assert kconfig.parse(FRAGMENT) == {
        "CONFIG_A": "y",
        "CONFIG_B": "m",
        "CONFIG_C": "n",
        "CONFIG_D": '"text"',
    }


def test_parse_rejects_garbage_with_the_line_number():
    with pytest.raises(BuildError, match=r"frag:2: not a Kconfig line"):
        kconfig.parse("CONFIG_A=y\nCONFIG_B\n", "frag")


def test_merge_replaces_existing_values_and_appends_new_ones():
    base = "CONFIG_A=n\n# CONFIG_C is not set\nCONFIG_Z=y\n# CONFIG_A is not set\n"
    merged = kconfig.parse(kconfig.merge(base, {"CONFIG_A": "y", "CONFIG_Q": "y"}))
    assert merged == {"CONFIG_A": "y", "CONFIG_C": "n", "CONFIG_Z": "y", "CONFIG_Q": "y"}


def test_verify_names_every_dropped_or_changed_option(tmp_path: Path):
    resolved = tmp_path / ".config"
    resolved.write_text("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_D is not set\n")
    fragment = {"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_D": "y", "CONFIG_E": "y"}
    with pytest.raises(BuildError) as err:
        kconfig.verify(resolved, fragment)
    message = str(err.value)
    assert "3 option(s)" in message
    assert "CONFIG_B=m is y" in message
    assert "CONFIG_D=y dropped" in message
    assert "CONFIG_E=y dropped" in message
    assert "CONFIG_A" not in message


def test_verify_passes_when_all_values_held(tmp_path: Path):
    resolved = tmp_path / ".config"
    resolved.write_text("CONFIG_A=y\n# CONFIG_C is not set\n")
    kconfig.verify(resolved, {"CONFIG_A": "y", "CONFIG_C": "n"})


def test_write_back_replaces_changed_options_under_a_note():
    text = "# head\nCONFIG_A=y\nCONFIG_B=y\n"
    out = kconfig.write_back(text, {"CONFIG_B": "n", "CONFIG_X": "y"}, "from menuconfig")
    assert kconfig.parse(out) == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_X": "y"}
    assert out.index("# from menuconfig") < out.index("# CONFIG_B is not set")
