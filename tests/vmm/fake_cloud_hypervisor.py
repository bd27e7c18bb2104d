#!/usr/bin/python3
"""A fake ``cloud-hypervisor`` for tests (the real binary cannot be installed here).

It serves the REST endpoints the backend uses on ``--api-socket path=...``, appends every
request it receives (method, path, JSON body) to ``requests.jsonl`` in its working directory,
and behaves like the VMM where the tests look: after ``vm.boot`` it listens on the configured
serial socket and greets each client; ``vm.power-button`` makes it exit as a guest that powers
off would. It never runs a guest. With a file ``exit-before-answer`` in its working directory,
it exits right after accepting ``vm.add-disk`` and the answer arrives after the exit.
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

STATE: dict = {"config": None, "state": "Created", "devices": []}


async def serial_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"fake guest: booted\r\n")
    await writer.drain()
    while data := await reader.read(1024):
        writer.write(b"echo: " + data)  # the guest echoes what it is sent
        await writer.drain()
    writer.close()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request_line = (await reader.readline()).decode().strip()
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    while line := (await reader.readline()).decode().strip():
        key, _, value = line.partition(":")
        headers[key.lower()] = value.strip()
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    body = json.loads(raw) if raw else None
    with open("requests.jsonl", "a") as log:
        log.write(json.dumps({"method": method, "path": path, "body": body}) + "\n")
    status, answer = await route(method, path.removeprefix("/api/v1/"), body)
    payload = b"" if answer is None else json.dumps(answer).encode()
    reason = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found"}[status]
    answer_bytes = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(payload)}\r\n"
        f"Content-Type: application/json\r\n\r\n".encode()
        + payload
    )
    if method == "PUT" and path.endswith("vm.add-disk") and Path("exit-before-answer").exists():
        # The guest powers off right after the VMM agreed to a hot-plug, and the caller
        # notices the exit before it reads the answer: the VMM process exits at once, a
        # forked child that keeps the connection delivers the answer a moment later.
        fd = writer.get_extra_info("socket").fileno()
        if os.fork() != 0:
            os._exit(0)
        try:  # the child runs no event loop: it only answers and leaves
            os.set_blocking(fd, True)
            time.sleep(0.5)
            os.write(fd, answer_bytes)
        finally:
            os._exit(0)
    writer.write(answer_bytes)
    await writer.drain()
    writer.close()
    if method == "PUT" and path.endswith("vm.power-button"):
        await asyncio.sleep(0.01)  # let the answer leave before the VMM goes away
        os._exit(0)


async def route(method: str, endpoint: str, body):
    if endpoint == "vmm.ping" and method == "GET":
        return 200, {"version": "fake"}
    if endpoint == "vm.create" and method == "PUT":
        if "payload" not in body:
            return 400, {"error": "payload missing"}
        STATE["config"] = body
        return 204, None
    if endpoint == "vm.boot" and method == "PUT":
        if STATE["config"] is None:
            return 400, {"error": "VM not created"}
        serial = STATE["config"]["serial"]["socket"]
        await asyncio.start_unix_server(serial_client, serial)
        STATE["state"] = "Running"
        return 204, None
    if endpoint == "vm.info" and method == "GET":
        return 200, {"state": STATE["state"], "config": STATE["config"]}
    if endpoint in ("vm.shutdown", "vm.power-button") and method == "PUT":
        STATE["state"] = "Shutdown"
        return 204, None
    if endpoint in ("vm.add-disk", "vm.add-net") and method == "PUT":
        STATE["devices"].append(body["id"])
        return 200, {"id": body["id"], "bdf": "0000:00:06.0"}
    if endpoint == "vm.remove-device" and method == "PUT":
        if body["id"] not in STATE["devices"]:
            return 404, {"error": f"no device {body['id']}"}
        STATE["devices"].remove(body["id"])
        return 204, None
    return 404, {"error": f"unknown endpoint {endpoint}"}


async def main() -> None:
    args = sys.argv[1:]
    socket = args[args.index("--api-socket") + 1].removeprefix("path=")
    # A VMM that is slow to come up, for tests that interrupt a start.
    await asyncio.sleep(float(os.environ.get("FAKE_CH_START_DELAY", "0")))
    server = await asyncio.start_unix_server(handle, socket)
    Path("fake-ch.pid").write_text("running\n")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
