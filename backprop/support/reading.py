"""Reading a file the user named (a spec, a claims file): the same checks and messages for every reader.

A user may name a regular file, ``/dev/stdin`` or a process substitution (``<(...)``, a pipe): those
are read. A directory, a missing path, something that is not UTF-8 text, or a stream that never ends
(``/dev/zero``) is a located error, never a traceback or a hang.
"""

from __future__ import annotations

from pathlib import Path

from backprop.support.errors import SpecError

#: No spec or claims file is this large; reading stops here rather than filling memory.
MAX_BYTES = 64 * 2**20


def read_user_text(path: str, what: str, missing: str | None = None) -> str:
    """The text of ``path`` (UTF-8), or a SpecError located in the file.

    ``what`` names the kind of file in messages ("spec file", "claims file"); ``missing`` replaces
    the message for a path that does not exist.
    """
    p = Path(path)
    if p.is_dir():
        raise SpecError(f"is a directory, not a {what}", 0, 0, path)
    if not p.exists():
        raise SpecError(missing or f"no such {what}", 0, 0, path)
    with open(p, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SpecError(f"larger than {MAX_BYTES // 2**20} MiB: not a {what}", 0, 0, path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError(f"not UTF-8 text: byte 0x{data[e.start]:02x} cannot be decoded", line, col, path) from None
