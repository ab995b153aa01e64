"""The one exception type the CLI turns into a one-screen message and exit code 1."""

from __future__ import annotations


class MmplanError(Exception):
    """A problem the user can act on: what went wrong, where, and what to do.

    `where` names a file and line or a cluster; `hint` says what to do next.
    The message must never contain a resolved secret.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def render(self) -> str:
        lines = [f"error: {self.where}: {self.message}" if self.where else f"error: {self.message}"]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)
