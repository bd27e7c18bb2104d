"""The interactive side of ``mvirt console``: the terminal in raw mode bridged to the
Console stream. ``Ctrl+a t`` leaves; ``Ctrl+a a`` sends a literal Ctrl+a."""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import termios
import threading
import tty
from collections.abc import Iterator

import click
import grpc

from mvirt.proto import vmm_pb2, vmm_pb2_grpc

ESCAPE = 0x01  # Ctrl+a
LEAVE = ord("t")


class EscapeFilter:
    """Finds the leave sequence in keystrokes; keeps state across reads."""

    def __init__(self) -> None:
        self._pending = False
        self.leave = False

    def feed(self, data: bytes) -> bytes:
        """The bytes to send to the guest; sets ``leave`` on Ctrl+a t."""
        out = bytearray()
        for byte in data:
            if self._pending:
                self._pending = False
                if byte == LEAVE:
                    self.leave = True
                    break
                if byte != ESCAPE:
                    out.append(ESCAPE)
                out.append(byte)
            elif byte == ESCAPE:
                self._pending = True
            else:
                out.append(byte)
        return bytes(out)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode while attached (keys go to the guest as typed), restored on the way out."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_console(stub: vmm_pb2_grpc.VmServiceStub, vm_id: str) -> None:
    """Bridge stdin/stdout to the VM's console until Ctrl+a t, end of input, or VM stop."""
    keys: queue.Queue[bytes | None] = queue.Queue()
    stdin = sys.stdin.fileno()
    escape = EscapeFilter()

    def requests() -> Iterator[vmm_pb2.ConsoleInput]:
        yield vmm_pb2.ConsoleInput(vm_id=vm_id)
        while (data := keys.get()) is not None:
            yield vmm_pb2.ConsoleInput(data=data)

    call = stub.Console(requests())

    def read_keys() -> None:
        while True:
            try:
                data = os.read(stdin, 1024)
            except OSError:
                data = b""
            if not data:
                break  # end of input: leave (a script piping keys is done)
            to_send = escape.feed(data)
            if to_send:
                keys.put(to_send)
            if escape.leave:
                break
        keys.put(None)
        call.cancel()

    if os.isatty(stdin):
        click.echo(f"attached to {vm_id}; Ctrl+a t leaves", err=True)
    out = sys.stdout.buffer
    with raw_terminal(stdin):
        threading.Thread(target=read_keys, daemon=True).start()
        try:
            for message in call:
                out.write(message.data)
                out.flush()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise
    if os.isatty(stdin):
        click.echo("\r\ndetached", err=True)
