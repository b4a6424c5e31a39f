"""``-o FILE`` for generated files: atomic, and never over someone's work.

A file is replaced only when it does not exist, or when its header says
backprop generated it and its hash still matches (nobody edited it since);
otherwise the write is refused unless forced. The spec being compiled is
never replaced, forced or not. A symbolic link is followed: the file it
points to is replaced and the link stays (see :mod:`backprop.support.files`). An unchanged
file is left alone, timestamps included.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from backprop.codegen.header import status
from backprop.support.files import UnsafeWriteError, safe_write

__all__ = ["UnsafeWriteError", "write_generated"]


def write_generated(path: str | Path, text: str, force: bool = False,
                    inputs: Iterable[str | os.PathLike[str]] = ()) -> bool:
    """Write ``text`` to ``path`` safely; False when the file already held exactly ``text``.

    ``inputs`` are files the command read (the spec): never overwritten. The rules are
    :func:`backprop.support.files.safe_write`'s; only the mark differs: a generated module's header.
    """
    return safe_write(path, text, inputs=inputs, force=force, judge=status, verb="generated")
