"""Pure pieces of mvirt-zfs: zfs output parsing, request checks, CLI sizes."""

from __future__ import annotations

import click
import pytest

from mvirt.cli.storage import SIZE, human
from mvirt.daemon.errors import InvalidArgumentError
from mvirt.zfs.driver import parse_get, parse_ratio, parse_size
from mvirt.zfs.validation import check_blocksize, check_name, check_size, round_up


def test_zfs_get_output_is_parsed_per_dataset_and_property():
    out = "p/v\tused\t212992\t-\np/v@s\tused\t0\t-\np/v\tcompressratio\t1.52x\t-\n"
    props = parse_get(out)
    assert props == {"p/v": {"used": "212992", "compressratio": "1.52x"}, "p/v@s": {"used": "0"}}
    assert parse_size(props["p/v"]["used"]) == 212992
    assert parse_size("-") == 0
    assert parse_ratio("1.52x") == 1.52 and parse_ratio("2.00") == 2.0 and parse_ratio("-") == 1.0


@pytest.mark.parametrize("name", ["web-root", "debian12", "a", "A.b_c:d-1", "x" * 64])
def test_good_names_pass(name):
    assert check_name(name, "name") == name


@pytest.mark.parametrize(
    "name", ["", "a/b", "a@b", "a b", "a\nb", "ab\n", "\x7f", ".hidden", "x" * 65]
)
def test_bad_names_name_the_field(name):
    with pytest.raises(InvalidArgumentError, match=r"^volume_name "):
        check_name(name, "volume_name")


def test_sizes_and_blocksizes():
    assert check_size(16384 * 3, "size_bytes", 16384) == 49152
    with pytest.raises(InvalidArgumentError, match="use for example 32768"):
        check_size(16385, "size_bytes", 16384)
    assert check_blocksize(512) == 512 and check_blocksize(131072) == 131072
    for bad in (256, 3000, 262144):
        with pytest.raises(InvalidArgumentError, match="volblocksize"):
            check_blocksize(bad)
    assert round_up(1, 16384) == 16384 and round_up(16384, 16384) == 16384


def test_cli_sizes_use_binary_suffixes():
    assert SIZE.convert("20G", None, None) == 20 << 30
    assert SIZE.convert("512m", None, None) == 512 << 20
    assert SIZE.convert("1.5K", None, None) == 1536
    assert SIZE.convert("4096", None, None) == 4096
    assert SIZE.convert("2GiB", None, None) == 2 << 30
    with pytest.raises(click.BadParameter, match="not a size"):
        SIZE.convert("lots", None, None)
    assert human(20 << 30) == "20.0G" and human(512) == "512B"
