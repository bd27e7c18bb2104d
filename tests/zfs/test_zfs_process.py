"""The one subprocess wrapper of mvirt-zfs: failures carry the reason, progress is streamed,
and a cancelled call leaves no child running."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from mvirt.zfs.process import CommandError, run, run_pipeline, run_with_progress


def test_failure_carries_the_last_error_line():
    script = (
        "import sys; sys.stderr.write('warning\\ncannot open: dataset does not exist\\n'); "
        "sys.exit(1)"
    )
    with pytest.raises(CommandError) as info:
        asyncio.run(run([sys.executable, "-c", script]))
    assert info.value.reason == "cannot open: dataset does not exist"
    assert info.value.returncode == 1


def test_pipeline_passes_bytes_and_reports_the_failing_side(tmp_path):
    target = tmp_path / "out"
    produce = [sys.executable, "-c", "import sys; sys.stdout.write('x' * 100000)"]
    consume = [
        sys.executable,
        "-c",
        f"import sys; open({str(target)!r}, 'w').write(sys.stdin.read())",
    ]
    asyncio.run(run_pipeline(produce, consume))
    assert target.read_text() == "x" * 100000
    with pytest.raises(CommandError) as info:
        asyncio.run(run_pipeline(produce, [sys.executable, "-c", "import sys; sys.exit(3)"]))
    assert info.value.returncode == 3


def test_progress_is_streamed_and_cancel_kills_the_child(tmp_path):
    pid_file = tmp_path / "pid"
    script = (
        "import os, sys, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "for i in range(1000):\n"
        "    sys.stdout.write(f'    ({i / 10:.2f}/100%)\\r')\n"
        "    sys.stdout.flush()\n"
        "    time.sleep(0.05)\n"
    )
    seen: list[str] = []

    async def scenario() -> None:
        call = asyncio.create_task(run_with_progress([sys.executable, "-c", script], seen.append))
        while len(seen) < 3:
            await asyncio.sleep(0.02)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(scenario())
    assert seen[:2] == ["    (0.00/100%)", "    (0.10/100%)"]
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left running
