"""The one error type the builder raises for problems a user can act on."""

from __future__ import annotations


class BuildError(Exception):
    """A failure with a message for the user and, where one exists, the next step (hint)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message
