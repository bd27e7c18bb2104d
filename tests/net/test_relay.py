"""The TCP relay the tests and the benchmark reach services in namespaces through: a stream
the client has finished sending (half-closed) still gets the service's answer back."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.net.netns import Netns, Relay, enter


@pytest.fixture
def netns() -> Iterator[Netns]:
    ns = Netns("relay")
    yield ns
    ns.delete()


def counting_sink(ns: Netns) -> int:
    """A service inside ``ns`` that reads one stream to its end and answers its length;
    returns its port."""
    ready = threading.Event()
    ports: list[int] = []

    def serve() -> None:
        enter(ns.name)
        with socket.create_server(("127.0.0.1", 0)) as server:
            ports.append(server.getsockname()[1])
            ready.set()
            server.settimeout(30)
            conn, _ = server.accept()
            with conn:
                total = 0
                while data := conn.recv(65536):
                    total += len(data)
                conn.sendall(f"{total}\n".encode())

    threading.Thread(target=serve, daemon=True).start()
    assert ready.wait(10)
    return ports[0]


def test_an_answer_after_the_clients_half_close_comes_back(netns: Netns) -> None:
    relay = Relay(netns.name, counting_sink(netns))
    try:
        host, port = relay.endpoint.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(b"x" * 300_000)
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while data := conn.recv(64):
                answer += data
        assert answer == b"300000\n"
    finally:
        relay.close()
