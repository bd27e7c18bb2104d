"""The TUI's modal screens: create a VM, show a VM, confirm something destructive, help."""

from __future__ import annotations

import os

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from mvirt.cli.output import safe
from mvirt.cli.vm import vm_fields
from mvirt.proto import vmm_pb2

KEYS = (
    ("c", "create a VM"),
    ("s", "start the VM, or stop it when it runs"),
    ("k", "kill the VM (no guest shutdown)"),
    ("d", "delete the VM (asks first)"),
    ("i / Enter", "details of the VM"),
    ("t", "console of the VM (Ctrl+a t leaves)"),
    ("r", "reload the view"),
    ("1-5", "VMs, Storage, Network, Logs, System"),
    ("?", "this help"),
    ("q", "quit"),
)
"""The keys, as the help screen and docs/cli.md list them."""


class CreateVmModal(ModalScreen[vmm_pb2.CreateVmRequest | None]):
    """A form for a new VM; dismissed with the request, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Create a VM", classes="title")
            with Grid(classes="form"):
                for field, placeholder in (
                    ("name", "web"),
                    ("kernel", "/path/to/bzImage (kernel boot)"),
                    ("initramfs", "optional"),
                    ("cmdline", "console=ttyS0"),
                    ("disk", "/path/to/disk.raw (disk boot)"),
                    ("memory", "512"),
                    ("cpus", "1"),
                ):
                    yield Label(field)
                    yield Input(placeholder=placeholder, id=field)
            yield Static("", id="problem")
            with Horizontal(classes="buttons"):
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#memory", Input).value = "512"
        self.query_one("#cpus", Input).value = "1"
        self.query_one("#name", Input).focus()

    def value(self, field: str) -> str:
        """The stripped text of ``field``."""
        return self.query_one(f"#{field}", Input).value.strip()

    def request(self) -> vmm_pb2.CreateVmRequest:
        """The CreateVm request the form describes; ValueError names a bad field."""
        numbers = {}
        for field in ("memory", "cpus"):
            text = self.value(field)
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"{field} must be a whole number above 0")
            numbers[field] = int(text)
        config = vmm_pb2.VmConfig(vcpus=numbers["cpus"], memory_mb=numbers["memory"])
        for field in ("kernel", "initramfs"):
            if self.value(field):
                setattr(config, field, os.path.abspath(self.value(field)))
        if self.value("cmdline"):
            config.cmdline = self.value("cmdline")
        if self.value("disk"):
            config.disks.append(vmm_pb2.DiskConfig(path=os.path.abspath(self.value("disk"))))
        request = vmm_pb2.CreateVmRequest(config=config)
        if self.value("name"):
            request.name = self.value("name")
        return request

    def on_input_submitted(self) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            self.submit()
        else:
            self.dismiss(None)

    def submit(self) -> None:
        """Dismisses with the request, or says what is wrong with the form."""
        try:
            request = self.request()
        except ValueError as exc:
            self.query_one("#problem", Static).update(str(exc))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)


class VmDetailModal(ModalScreen[None]):
    """Every field of one VM."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close", show=False),
        Binding("i", "close", "Close", show=False),
    ]

    def __init__(self, vm: vmm_pb2.Vm) -> None:
        super().__init__()
        self.vm = vm

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"VM {safe(self.vm.name or self.vm.id)}", classes="title")
            table: DataTable[str] = DataTable(show_cursor=False, id="detail")
            table.add_columns("FIELD", "VALUE")
            for field, value in vm_fields(self.vm):
                table.add_row(field, safe(value))
            yield table
            yield Label("Esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)


class ConfirmModal(ModalScreen[bool]):
    """A yes/no question before something that cannot be undone; No is the default."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class HelpModal(ModalScreen[None]):
    """The keys."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Keys", classes="title")
            table: DataTable[str] = DataTable(show_cursor=False, id="keys")
            table.add_columns("KEY", "ACTION")
            for key, action in KEYS:
                table.add_row(key, action)
            yield table
            yield Label("Esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
