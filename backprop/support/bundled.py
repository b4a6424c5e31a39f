"""What ships inside the package: the bundled example specs and the jinja2 templates.

Both are package data beside the code (``backprop/examples``, ``backprop/templates``),
so a checkout and an installed wheel find them the same way: relative to this file.
"""

from __future__ import annotations

from pathlib import Path

#: the suffix of spec files; a bare name without it may be a bundled example
SPEC_SUFFIX = ".spec"

_PACKAGE = Path(__file__).resolve().parent.parent


def examples_dir() -> Path:
    """Where the bundled example specs live."""
    return _PACKAGE / "examples"


def templates_dir() -> Path:
    """Where the jinja2 templates for generated files live."""
    return _PACKAGE / "templates"


def example_names() -> list[str]:
    """The bundled examples, by name (``two_layer_sigmoid``, ...), sorted."""
    return sorted(p.stem for p in examples_dir().glob(f"*{SPEC_SUFFIX}"))
