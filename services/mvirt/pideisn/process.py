"""Starting a service process: the one place pideisn creates processes.

fork + exec by hand rather than subprocess (a costly import at boot) or posix_spawn (no
working-directory action in Python): the child gets its own session, /dev/null as stdin, the
given pipe as stdout/stderr, default signal dispositions and mask; an exec failure comes back
to the parent as an OSError through a close-on-exec pipe.
"""

from __future__ import annotations

import _signal
import os

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RESET_SIGNALS = ("SIGPIPE", "SIGXFSZ", "SIGXFZ")


def find_executable(name: str, path: str) -> str:
    """`name` if it contains a slash, else the first executable match on `path`."""
    if "/" in name:
        return name
    for directory in path.split(":"):
        candidate = f"{directory or '.'}/{name}"
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(2, f"{name}: not found on PATH {path}")


def spawn(argv: list[str], env: dict[str, str], cwd: str, output_fd: int) -> int:
    """Start `argv` in a new session with stdout and stderr on `output_fd`; returns its pid."""
    executable = find_executable(argv[0], env.get("PATH", DEFAULT_PATH))
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        try:
            os.close(err_read)
            os.setsid()
            os.chdir(cwd)
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            _signal.set_wakeup_fd(-1)
            for name in _RESET_SIGNALS:
                if hasattr(_signal, name):
                    _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
            _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
            os.execve(executable, argv, env)
        except BaseException as exc:
            errno = getattr(exc, "errno", None) or 0
            os.write(err_write, f"{errno}:{exc}".encode(errors="replace"))
        finally:
            os._exit(127)
    os.close(err_write)
    chunks = []
    while True:
        chunk = os.read(err_read, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(err_read)
    if chunks:
        os.waitpid(pid, 0)
        errno, _, message = b"".join(chunks).decode(errors="replace").partition(":")
        raise OSError(int(errno or 0), f"cannot start {argv[0]}: {message}")
    return pid
