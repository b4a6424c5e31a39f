"""Regenerate ``generated/<example>.py`` for every bundled example.

    python -m backprop.codegen.regenerate          # rewrite the stale ones
    python -m backprop.codegen.regenerate --check  # list the stale ones; exit status 1 if any

Each file is exactly ``backprop codegen NAME -o generated/NAME.py`` (its header
says so), and is written with the same safe, atomic write.
"""

from __future__ import annotations

import sys
from pathlib import Path

from backprop.codegen.emit import generate
from backprop.codegen.safe_write import write_generated
from backprop.support.bundled import example_names

#: The committed modules, in the checkout.
GENERATED = Path(__file__).resolve().parents[2] / "generated"


def expected() -> dict[Path, str]:
    """Every bundled example's module, as ``backprop codegen NAME -o generated/NAME.py`` writes it."""
    return {GENERATED / f"{n}.py": generate(n, output=f"generated/{n}.py", label=n) for n in example_names()}


def stale() -> list[Path]:
    """Committed modules that differ from what the generator writes now (or are missing)."""
    out = []
    for path, text in expected().items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--check"]:
        paths = stale()
        for p in paths:
            print(f"stale: {p.relative_to(GENERATED.parent)}")
        return 1 if paths else 0
    if argv:
        print("usage: python -m backprop.codegen.regenerate [--check]", file=sys.stderr)
        return 2
    for path, text in expected().items():
        if write_generated(path, text):
            print(f"wrote {path.relative_to(GENERATED.parent)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
