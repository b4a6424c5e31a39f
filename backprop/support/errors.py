"""Errors that read like a compiler's: ``FILE:LINE:COL: error: MESSAGE``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SpecError(Exception):
    """A problem in user text, located at a line and column (both 1-based)."""

    message: str
    line: int = 0
    col: int = 0
    file: str = "<spec>"
    source_line: str | None = None

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        """The one-line diagnostic, plus the source line and a caret when known."""
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        text = f"{where}: error: {self.message}"
        if self.source_line is not None and self.line:
            src = self.source_line.rstrip("\n")
            caret = " " * max(self.col - 1, 0) + "^"
            text += f"\n    {src}\n    {caret}"
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
