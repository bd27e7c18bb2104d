"""A test-only guest service added to the image through an initramfs overlay: on TCP port
8081 it takes one command per connection and answers one line.

- ``ping4 ADDR`` / ``ping6 ADDR``: ICMP echo from the guest (raw socket), ``ok`` or ``fail``
- ``spoof4 SRC DST``: sends one ICMP echo with a forged source address, ``sent``

Runs with the image's interpreter and standard library only (``python3 -S``)."""

import os
import socket
import struct
import time

PORT = 8081


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


def handle(words):
    if words[:1] == ["ping4"] and len(words) == 2:
        return ping(socket.AF_INET, words[1])
    if words[:1] == ["ping6"] and len(words) == 2:
        return ping(socket.AF_INET6, words[1])
    if words[:1] == ["spoof4"] and len(words) == 3:
        return spoof4(words[1], words[2])
    return "unknown command"


def main():
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
