"""Delegated prefix pool: carving sub-prefixes for nested VMs and publishing the pool."""

from mvirt.pideisn.prefix_pool import PrefixPool


def test_allocates_distinct_subprefixes_until_exhausted(tmp_path):
    pool = PrefixPool(str(tmp_path / "run" / "prefixes"))
    pool.add("2001:db8:100::", 62, 600, 300)
    got = [pool.allocate(64) for _ in range(5)]
    assert got[:4] == [
        ("2001:db8:100::", 64),
        ("2001:db8:100:1::", 64),
        ("2001:db8:100:2::", 64),
        ("2001:db8:100:3::", 64),
    ]
    assert got[4] is None
    pool.release("2001:db8:100:1::", 64)
    assert pool.allocate(64) == ("2001:db8:100:1::", 64)


def test_publishes_delegations_and_forgets_removed_ones(tmp_path):
    path = tmp_path / "prefixes"
    pool = PrefixPool(str(path))
    pool.add("2001:db8:100:ff::1", 56, 600, 300)  # host bits are cleared
    assert path.read_text() == "2001:db8:100::/56 600 300\n"
    pool.allocate(64)
    pool.remove("2001:db8:100::", 56)
    assert path.read_text() == ""
    assert pool.allocate(64) is None


def test_prefix_longer_than_request_is_not_used():
    pool = PrefixPool()
    pool.add("2001:db8::", 64, 600, 300)
    assert pool.allocate(60) is None


def test_prefix_with_host_bits_is_removed_in_the_form_it_was_added(tmp_path):
    path = tmp_path / "prefixes"
    pool = PrefixPool(str(path))
    pool.add("2001:DB8:100:ff::1", 56, 600, 300)
    pool.remove("2001:DB8:100:ff::1", 56)  # what the server sent, host bits and all
    assert path.read_text() == ""
    assert pool.delegated == {}
