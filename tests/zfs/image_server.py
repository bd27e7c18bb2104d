"""A local HTTP server on 127.0.0.1 serving disk images, with Range support and the ways a
download goes wrong: a connection cut once, a body shorter than announced, a stall held
until the test lets it go."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-$")


@dataclass
class Route:
    """How one path is served."""

    body: bytes
    ranges: bool = True
    cut_once_at: int | None = None
    """Close the first response after this many bytes (a resumable break)."""
    truncate_at: int | None = None
    """Every response ends after this many bytes although Content-Length says more."""
    hold_after: int | None = None
    """Send this many bytes, then wait until ``release`` is set."""
    release: threading.Event = field(default_factory=threading.Event)
    range_requests: list[str] = field(default_factory=list)


@dataclass
class ImageServer:
    """The running server: base URL and its routes."""

    base: str
    routes: dict[str, Route]

    def url(self, path: str) -> str:
        """The URL of ``path``."""
        return f"{self.base}{path}"


@contextmanager
def image_server() -> Iterator[ImageServer]:
    """Runs the server for the duration of the block."""
    routes: dict[str, Route] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            route = routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            start = 0
            wanted = self.headers.get("Range")
            if wanted and route.ranges:
                route.range_requests.append(wanted)
                match = _RANGE.match(wanted)
                if match is None:
                    self.send_error(416)
                    return
                start = int(match[1])
                self.send_response(206)
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(route.body) - 1}/{len(route.body)}"
                )
            else:
                self.send_response(200)
            if route.ranges:
                self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(route.body) - start))
            self.end_headers()
            end = len(route.body)
            if route.cut_once_at is not None:
                end, route.cut_once_at = route.cut_once_at, None
            if route.truncate_at is not None:
                end = route.truncate_at
            try:
                if route.hold_after is not None and start < route.hold_after:
                    self.wfile.write(route.body[start : route.hold_after])
                    self.wfile.flush()
                    route.release.wait(120)
                    start = route.hold_after
                self.wfile.write(route.body[start:end])
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ImageServer(f"http://127.0.0.1:{server.server_address[1]}", routes)
    finally:
        for route in routes.values():
            route.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
