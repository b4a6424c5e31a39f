"""Errors that read like a compiler's: ``FILE:LINE:COL: error: MESSAGE``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from backprop.support.escape import visible


@dataclass
class SpecError(Exception):
    """A problem in user text, located at a line and column (both 1-based)."""

    message: str
    line: int = 0
    col: int = 0
    file: str = "<spec>"
    source_line: str | None = None
    #: the text is well formed and its names known, but shapes do not fit (a claim with it is wrong, not unusable)
    shapes: bool = False
    #: a rewrite the message suggests, to be checked before it is shown: (start, end) character offsets
    #: in the source line, the replacement, and the hint's text in the message
    fix: tuple[int, int, str, str] | None = None

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        """The one-line diagnostic, plus the source line and a caret when known.

        User text (the path, names quoted in the message, the source line) goes to a terminal: control
        characters in it are shown as escapes, never sent raw, and the caret still points at the column.
        """
        where = f"{visible(self.file)}:{self.line}:{self.col}" if self.line else visible(self.file)
        text = f"{where}: error: {visible(self.message)}"
        if self.source_line is not None and self.line:
            src = self.source_line.rstrip("\n")
            caret = " " * len(visible(src[: max(self.col - 1, 0)])) + "^"
            text += f"\n    {visible(src)}\n    {caret}"
        return text

    def at(self, file: str, source_line: str | None = None) -> SpecError:
        """Attach the file name (and the source line) once they are known."""
        self.file = file
        if self.source_line is None:
            self.source_line = source_line
        return self


class ShapeError(ValueError):
    """A shape rule rejected its operands; the parser adds the location."""


class UnsupportedError(TypeError):
    """A printer or evaluator met a node it has no rule for."""


class UsageError(Exception):
    """A bad option value or an unsafe request; printed as ``backprop: error: ...``."""


def os_error(e: OSError) -> str:
    """An OSError about a user's path as one line: ``PATH: reason`` (the reason as the system words it)."""
    reason = e.strerror or str(e)
    if e.filename is None:
        return visible(reason)
    return f"{visible(os.fsdecode(e.filename))}: {visible(reason)}"
