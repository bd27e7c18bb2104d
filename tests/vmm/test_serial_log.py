"""The serial log a VM leaves behind is trimmed to its tail before the next start."""

from mvirt.vmm.manager import _trim_log


def test_long_log_keeps_its_tail_short_log_is_untouched(tmp_path):
    log = tmp_path / "serial.log"
    log.write_bytes(b"a" * 5000 + b"the end")
    _trim_log(log, keep=1000)
    assert log.read_bytes() == (b"a" * 5000 + b"the end")[-1000:]
    _trim_log(log, keep=1000)
    assert len(log.read_bytes()) == 1000
    _trim_log(tmp_path / "absent.log", keep=10)
    assert not (tmp_path / "absent.log").exists()
