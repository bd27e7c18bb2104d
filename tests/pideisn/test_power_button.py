"""The ACPI power button: KEY_POWER presses read from an input event device."""

import os

from mvirt.pideisn.loop import Loop
from mvirt.pideisn.power_button import EV_KEY, INPUT_EVENT, KEY_POWER, PowerButton, power_pressed


def event(kind: int, code: int, value: int) -> bytes:
    return INPUT_EVENT.pack(0, 0, kind, code, value)


def test_only_a_power_key_press_counts():
    assert power_pressed(event(EV_KEY, KEY_POWER, 1))
    assert not power_pressed(event(EV_KEY, KEY_POWER, 0))  # release
    assert not power_pressed(event(EV_KEY, 30, 1))  # another key
    assert not power_pressed(event(0, 0, 0) + event(EV_KEY, KEY_POWER, 1)[:10])  # truncated
    assert power_pressed(event(0, 0, 0) + event(EV_KEY, KEY_POWER, 1))


def test_press_on_an_event_device_requests_power_off(tmp_path):
    # A FIFO stands in for /dev/input/event0: same read(2) interface, bytes written by the test.
    os.mkfifo(tmp_path / "event0")
    (tmp_path / "mouse0").write_bytes(b"")  # not an event device: ignored
    loop = Loop()
    presses = []
    button = PowerButton(loop, lambda: presses.append(True), directory=str(tmp_path))
    button.scan()
    assert button.watched == ["event0"]
    writer = os.open(tmp_path / "event0", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(writer, event(EV_KEY, 30, 1))
        loop.run_once(1.0)
        assert presses == []
        os.write(writer, event(EV_KEY, KEY_POWER, 1) + event(EV_KEY, KEY_POWER, 0))
        loop.run_until(lambda: bool(presses), 2.0)
        assert presses == [True]
    finally:
        os.close(writer)
        loop.close()
