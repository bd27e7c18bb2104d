"""Phase timing of import jobs: consecutive laps on one clock add up to the whole."""

from __future__ import annotations

import pytest

from mvirt.zfs.phase_times import PhaseTimes


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_laps_measure_the_time_since_the_previous_lap():
    clock = FakeClock()
    times = PhaseTimes(clock)
    clock.now += 0.002
    times.lap("queued")
    clock.now += 0.5
    times.lap("convert")
    assert times.as_ms() == {"queued": 2.0, "convert": 500.0}
    assert times.total() == pytest.approx(0.502)


def test_a_phase_that_ends_twice_adds_up_and_keeps_its_first_place():
    clock = FakeClock()
    times = PhaseTimes(clock)
    clock.now += 0.010
    times.lap("cleanup")
    clock.now += 0.020
    times.lap("finish")
    clock.now += 0.030
    times.lap("cleanup")
    assert list(times.as_ms().items()) == [("cleanup", 40.0), ("finish", 20.0)]
    assert sum(times.as_ms().values()) == round(times.total() * 1000, 1)


def test_nothing_measured_before_the_first_lap():
    clock = FakeClock()
    times = PhaseTimes(clock)
    clock.now += 1.0
    assert times.as_ms() == {}
    assert times.total() == 0.0
