"""The one error type of the builder: a message a person can act on, and the fix when known."""


class BuildError(Exception):
    """A build failed for a reason that can be named; `hint` says what to do about it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"
