"""A minimal HTTP/1.1 client over a unix socket, for cloud-hypervisor's REST API.

One request per connection (``Connection: close``) keeps it simple and robust: the API is
called a handful of times per VM lifecycle, so connection reuse buys nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any


class HttpError(Exception):
    """The socket could not be reached or the answer was not HTTP."""


@dataclass(frozen=True)
class Response:
    """Status and body of an HTTP answer."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


async def request(
    socket_path: str, method: str, path: str, body: Any = None, timeout: float = 10.0
) -> Response:
    """Send one request (JSON body when ``body`` is not None) and read the whole answer."""
    payload = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    if body is not None:
        head.append("Content-Type: application/json")
    head.append(f"Content-Length: {len(payload)}")
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket_path), timeout)
    except (OSError, TimeoutError) as exc:
        raise HttpError(f"cannot connect to {socket_path}: {exc}") from exc
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(_read_response(reader), timeout)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        raise HttpError(f"{method} {path} on {socket_path} failed: {exc!r}") from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> Response:
    status_line = (await reader.readline()).decode("latin-1").strip()
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP status line: {status_line!r}")
    headers: dict[str, str] = {}
    while True:
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return Response(int(parts[1]), body)
