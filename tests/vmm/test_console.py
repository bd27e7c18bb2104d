"""The console hub: several viewers, scrollback for late viewers, keystrokes to the guest."""

import asyncio
import tempfile
from pathlib import Path

from mvirt.vmm.console import SCROLLBACK_BYTES, ConsoleHub


async def drain(viewer, until: bytes) -> bytes:
    got = b""
    while until not in got:
        chunk = await asyncio.wait_for(viewer.queue.get(), 5)
        assert chunk is not None, got
        got += chunk
    return got


def test_viewers_scrollback_and_input():
    async def go():
        with tempfile.TemporaryDirectory(prefix="mvc-", dir="/tmp") as tmp:
            socket = Path(tmp) / "serial.sock"
            received: list[bytes] = []
            guest: list[asyncio.StreamWriter] = []

            async def serve(reader, writer):
                guest.append(writer)
                writer.write(b"boot line 1\n")
                await writer.drain()
                while data := await reader.read(100):
                    received.append(data)
                    writer.write(b"got " + data)
                    await writer.drain()

            server = await asyncio.start_unix_server(serve, str(socket))
            hub = ConsoleHub(socket, backlog=b"from the log\n")
            hub.start()
            first = hub.attach()
            assert b"boot line 1" in await drain(first, b"boot line 1")
            second = hub.attach()  # late: sees the scrollback, including the old log tail
            assert (await drain(second, b"boot line 1")).startswith(b"from the log\n")
            await hub.send(b"ls\n")
            assert b"got ls" in await drain(first, b"got ls")
            assert b"got ls" in await drain(second, b"got ls")
            assert received == [b"ls\n"]
            hub.detach(first)
            guest[0].write(b"x" * (SCROLLBACK_BYTES * 2))
            await guest[0].drain()
            await drain(second, b"x" * 100)
            for _ in range(100):
                if len(hub.scrollback) >= SCROLLBACK_BYTES:
                    break
                await asyncio.sleep(0.01)
            assert len(hub.scrollback) == SCROLLBACK_BYTES
            guest[0].close()
            server.close()
            await server.wait_closed()
            # The guest side closing ends every viewer's stream.
            while await asyncio.wait_for(second.queue.get(), 5) is not None:
                pass
            assert hub.closed
            await hub.close()

    asyncio.run(go())
