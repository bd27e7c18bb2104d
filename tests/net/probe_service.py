"""A test-only guest service added to the image through an initramfs overlay: on TCP port
8081 it takes one command per connection and answers one line.

- ``ping4 ADDR`` / ``ping6 ADDR``: ICMP echo from the guest (raw socket), ``ok`` or ``fail``
- ``spoof4 SRC DST``: sends one ICMP echo with a forged source address, ``sent``
- ``send ADDR BYTES``: streams BYTES bytes of a fixed pattern over TCP to the sink of the
  guest at ADDR and answers ``sent BYTES SECONDS peer RECEIVED INTACT`` (or ``error ...``)

The sink (TCP port 8082) reads a stream to its end, checks every byte against the pattern, and
answers ``RECEIVED INTACT`` (INTACT is 1 or 0) once the sender has shut down its side.

Runs with the image's interpreter and standard library only (``python3 -S``)."""

import os
import socket
import struct
import threading
import time

PORT = 8081
SINK_PORT = 8082
CHUNK = 65536
# A pattern whose period (251, a prime) is not a divisor of any buffer size, so a lost,
# repeated or reordered piece of the stream shows up as a mismatch.
PERIOD = 251
PATTERN = bytes(range(PERIOD)) * (CHUNK // PERIOD + 2)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo4(ident):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"mvirt-probe"
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def ping(family, dst):
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    sock = socket.socket(family, socket.SOCK_RAW, proto)
    sock.settimeout(0.5)
    ident = os.getpid() & 0xFFFF
    if family == socket.AF_INET:
        packet = echo4(ident)
    else:  # the kernel fills in the ICMPv6 checksum
        packet = struct.pack("!BBHHH", 128, 0, 0, ident, 1) + b"mvirt-probe"
    want = socket.inet_pton(family, dst)
    for _ in range(6):
        sock.sendto(packet, (dst, 0))
        end = time.monotonic() + 1
        while time.monotonic() < end:
            try:
                data, source = sock.recvfrom(2048)
            except OSError:
                break
            if socket.inet_pton(family, source[0]) != want:
                continue
            start = (data[0] & 15) * 4 if family == socket.AF_INET else 0
            reply_type = 0 if family == socket.AF_INET else 129
            if data[start] == reply_type and data[start + 4 : start + 6] == struct.pack(
                "!H", ident
            ):
                return "ok"
    return "fail"


def spoof4(src, dst):
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    icmp = echo4(0x4242)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    sock.sendto(header + icmp, (dst, 0))
    return "sent"


def sink_connection(conn):
    received = 0
    intact = True
    while True:
        data = conn.recv(CHUNK)
        if not data:
            break
        start = received % PERIOD
        if intact and data != PATTERN[start : start + len(data)]:
            intact = False
        received += len(data)
    conn.sendall(b"%d %d\n" % (received, intact))


def sink():
    server = socket.create_server(("", SINK_PORT), family=socket.AF_INET6, dualstack_ipv6=True)
    while True:
        conn, _ = server.accept()
        try:
            sink_connection(conn)
        except OSError:
            pass
        finally:
            conn.close()


def send(dst, count):
    start = time.monotonic()
    with socket.create_connection((dst, SINK_PORT), timeout=30) as conn:
        conn.settimeout(600)
        sent = 0
        while sent < count:
            offset = sent % PERIOD
            piece = PATTERN[offset : offset + min(CHUNK, count - sent)]
            conn.sendall(piece)
            sent += len(piece)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while not answer.endswith(b"\n"):
            data = conn.recv(64)
            if not data:
                break
            answer += data
    elapsed = time.monotonic() - start
    peer = answer.decode(errors="replace").strip() or "none 0"
    return f"sent {sent} {elapsed:.3f} peer {peer}"


def handle(words):
    if words[:1] == ["ping4"] and len(words) == 2:
        return ping(socket.AF_INET, words[1])
    if words[:1] == ["ping6"] and len(words) == 2:
        return ping(socket.AF_INET6, words[1])
    if words[:1] == ["spoof4"] and len(words) == 3:
        return spoof4(words[1], words[2])
    if words[:1] == ["send"] and len(words) == 3 and words[2].isdigit():
        return send(words[1], int(words[2]))
    return "unknown command"


def main():
    threading.Thread(target=sink, daemon=True).start()
    server = socket.create_server(("", PORT), family=socket.AF_INET6, dualstack_ipv6=True)
    print(f"probe listening on port {PORT}", flush=True)
    while True:
        conn, _ = server.accept()
        try:
            words = conn.recv(256).decode(errors="replace").split()
            try:
                answer = handle(words)
            except OSError as exc:
                answer = f"error {exc}"
            conn.sendall(answer.encode() + b"\n")
        finally:
            conn.close()


if __name__ == "__main__":
    main()
