"""The console pane: a running VM's serial console inside the TUI. Keys go to the guest;
``Ctrl+a t`` leaves (shown at the top), as in ``mvirt console``.

Guest output is shown as text: terminal control sequences are removed and other control
characters escaped, so a guest cannot take over the TUI's terminal.
"""

from __future__ import annotations

import queue
import re
from collections.abc import Iterator

import grpc
from textual import events, work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Label, Log

from mvirt.cli.console import EscapeFilter
from mvirt.cli.output import safe
from mvirt.proto import vmm_pb2, vmm_pb2_grpc

LEAVE_HINT = "Ctrl+a t leaves"
_SEQUENCE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_KEYS = {
    "enter": b"\r",
    "backspace": b"\x7f",
    "tab": b"\t",
    "escape": b"\x1b",
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "right": b"\x1b[C",
    "left": b"\x1b[D",
}


def printable(output: str) -> str:
    """Guest output as text for the pane: sequences removed, other controls escaped."""
    text = _SEQUENCE.sub("", output).replace("\r\n", "\n").replace("\r", "")
    return "\n".join(safe(line) for line in text.split("\n"))


def key_bytes(event: events.Key) -> bytes:
    """What a key sends to the guest, as a terminal would."""
    if event.key in _KEYS:
        return _KEYS[event.key]
    modifier, _, letter = event.key.rpartition("+")
    if modifier == "ctrl" and len(letter) == 1 and "a" <= letter <= "z":
        return bytes([ord(letter) - ord("a") + 1])  # Ctrl+a is 0x01, as on a terminal
    if event.character:
        return event.character.encode()
    return b""


class ConsoleScreen(Screen[None]):
    """The console of one VM, until Ctrl+a t or the end of the stream."""

    def __init__(self, channel: grpc.Channel, vm_id: str, title: str) -> None:
        super().__init__()
        self.channel = channel
        self.vm_id = vm_id
        self.vm_title = title
        self.keys: queue.Queue[bytes | None] = queue.Queue()
        self.escape = EscapeFilter()
        self.call: grpc.Future | None = None

    def compose(self) -> ComposeResult:
        yield Label(f"console of {safe(self.vm_title)} -- {LEAVE_HINT}", id="console-title")
        yield Log(id="console-output", max_lines=5000)

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self.attach()

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        data = self.escape.feed(key_bytes(event))
        if data:
            self.keys.put(data)
        if self.escape.leave:
            self.leave()

    def leave(self) -> None:
        """Ends the stream and goes back to the views."""
        self.keys.put(None)
        if self.call is not None:
            self.call.cancel()
        self.dismiss(None)

    @work(thread=True)
    def attach(self) -> None:
        """Streams keys in and output out until the stream ends."""

        def requests() -> Iterator[vmm_pb2.ConsoleInput]:
            yield vmm_pb2.ConsoleInput(vm_id=self.vm_id)
            while (data := self.keys.get()) is not None:
                yield vmm_pb2.ConsoleInput(data=data)

        stub = vmm_pb2_grpc.VmServiceStub(self.channel)
        self.call = stub.Console(requests())
        ended = "console closed"
        try:
            for message in self.call:
                self._show(printable(message.data.decode(errors="replace")))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return
            ended = f"console ended: {exc.code().name}: {safe(exc.details() or '')}"
        self._show(f"\n[{ended}; {LEAVE_HINT}]\n")

    def _show(self, text: str) -> None:
        try:
            self.app.call_from_thread(self._write, text)
        except RuntimeError:
            pass  # the app is shutting down

    def _write(self, text: str) -> None:
        self.query_one(Log).write(text)
