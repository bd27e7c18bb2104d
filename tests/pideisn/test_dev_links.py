"""The links pideisn makes in /dev (devtmpfs has none of them): programs that read "-" as
/dev/stdin, such as `nft -f -`, work under pideisn."""

import os
import subprocess
import sys

from mvirt.pideisn.init import make_dev_links


def test_stdin_stdout_stderr_and_fd_point_into_proc_self(tmp_path):
    (tmp_path / "stderr").symlink_to("/somewhere/else")  # an existing entry is kept
    make_dev_links(str(tmp_path))
    assert os.readlink(tmp_path / "stdin") == "/proc/self/fd/0"
    assert os.readlink(tmp_path / "stdout") == "/proc/self/fd/1"
    assert os.readlink(tmp_path / "fd") == "/proc/self/fd"
    assert os.readlink(tmp_path / "stderr") == "/somewhere/else"
    make_dev_links(str(tmp_path))  # a second call changes nothing and raises nothing
    # A process reading the link reads its own standard input.
    code = f"print(open({str(tmp_path / 'stdin')!r}).read().upper())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        input="from stdin",
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.stdout.strip() == "FROM STDIN"


def test_a_dev_that_cannot_take_links_is_logged_not_raised(tmp_path, capfd):
    make_dev_links(str(tmp_path / "missing"))
    assert "link " in capfd.readouterr().err
