"""A local HTTP server on 127.0.0.1 that serves real files in the ways downloads go wrong."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """What the server does for one path: serve `body`, maybe cut or stall it, or fail first."""

    body: bytes = b""
    status: int = 200
    truncate_at: int | None = None
    stall_after: int | None = None
    fail_first: int = 0
    hits: int = 0


@dataclass
class FileServer:
    """The running server: its base URL and the routes it answers."""

    base: str
    routes: dict[str, Behaviour] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@contextmanager
def file_server() -> Iterator[FileServer]:
    """Run a threaded HTTP server for the duration of the block."""
    release = threading.Event()
    routes: dict[str, Behaviour] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            b = routes.get(self.path)
            if b is None:
                self.send_error(404)
                return
            b.hits += 1
            if b.hits <= b.fail_first:
                self.send_error(503)
                return
            if b.status != 200:
                self.send_error(b.status)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(b.body)))
            self.end_headers()
            try:
                if b.stall_after is not None:
                    self.wfile.write(b.body[: b.stall_after])
                    self.wfile.flush()
                    release.wait(10)
                    return
                if b.truncate_at is not None:
                    self.wfile.write(b.body[: b.truncate_at])
                    self.close_connection = True
                    return
                self.wfile.write(b.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FileServer(base=f"http://127.0.0.1:{server.server_port}", routes=routes)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()
