"""A manual clock for driving the event loop's timers in tests."""


class ManualClock:
    """Time that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
