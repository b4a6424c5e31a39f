"""Safe file output: atomic writes that never replace what backprop did not write.

Every ``-o``/``--out`` goes through here:

- :func:`write_atomic` writes a temp file beside the target and renames it
  over the target, so readers never see half a file and a failure leaves the
  old file untouched. A symbolic link is *followed*: the file it points to is
  replaced and the link stays a link (a dangling link or a loop is refused).
- :func:`check_target` refuses a target that is an input of the command
  (the same file, however spelled), a directory, or a file backprop did not
  write -- recognized by a one-line mark carrying a hash of the rest of the
  file (:func:`stamp`), so an edited file counts as someone's work too.
- :class:`~backprop.support.rundir.RunDir` (its own module) writes a whole
  directory of results the same way.
- :func:`cleanup_on_signals` turns SIGTERM/SIGHUP into SystemExit while temp
  files exist, so ``finally`` blocks remove them (SIGINT already raises
  KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType

from backprop.support.bundled import SPEC_SUFFIX, examples_dir
from backprop.support.escape import comment_text

#: Marks a file written by backprop; the hash after HASH_KEY covers the file without the mark's line.
MARK = "written by backprop"
HASH_KEY = "backprop-hash:"
_MARK_LINE = re.compile(rf"^.*{re.escape(MARK)}.*{re.escape(HASH_KEY)} (?P<digest>[0-9a-f]{{64}}).*(?:\n|$)", re.M)
#: A file larger than this is not one backprop wrote (its mark is not even looked for).
MAX_OWN_SIZE = 256 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEY = b"backprop"


class UnsafeWriteError(Exception):
    """The target cannot or must not be written; the message is one line naming it."""


# ---------------------------------------------------------------------------
# Signals: temp files go away on SIGTERM/SIGHUP too
# ---------------------------------------------------------------------------


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """While active, SIGTERM and SIGHUP raise SystemExit, so ``finally`` clauses run (and remove temp files).

    A no-op outside the main thread, where Python cannot install handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            previous[sig] = signal.signal(sig, _raise_exit)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------
# Marks: "written by backprop", with a hash of the rest of the file
# ---------------------------------------------------------------------------


def digest(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def stamp(text: str, fmt: str, command: str) -> str:
    """``text`` with a first line (JSON: a first key) saying backprop wrote it, how, and a hash of the rest.

    ``command`` is one line (:func:`~backprop.support.escape.shell_join`), shown as a comment can
    (:func:`~backprop.support.escape.comment_text`); the note is ASCII but for what ``command`` holds.
    Each format gets a form valid in it: a ``%`` comment in LaTeX, an HTML
    comment in Markdown, a ``"generated_by"`` member in JSON (which has no
    comments), a plain line in text.
    """
    note = f"{MARK} -- do not edit; rewrite with: {comment_text(command)}; {HASH_KEY} {digest(text)}"
    if fmt == "latex":
        return f"% {note}\n{text}"
    if fmt == "markdown":
        return "<!-- " + note.replace("-->", "--&gt;").replace("--!>", "--!&gt;") + " -->\n" + text
    if fmt == "json":
        head, sep, rest = text.partition("\n")
        if head != "{" or not sep:
            raise ValueError("stamp: expected JSON written with indent (a first line '{')")
        return f"{head}\n  \"generated_by\": {json.dumps(note, ensure_ascii=False)},\n{rest}"
    return f"{note}\n{text}"


def status(text: str) -> str:
    """"generated" (mark and hash match), "edited" (our mark, hash differs) or "foreign" (no mark)."""
    m = _MARK_LINE.search(text[:8192])
    if m is None:
        return "foreign"
    rest = text[: m.start()] + text[m.end():]
    return "generated" if digest(rest) == m.group("digest") else "edited"


def stamp_png(data: bytes, command: str) -> bytes:
    """A PNG with a ``tEXt`` chunk saying backprop wrote it, with a hash of the PNG without that chunk."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("stamp_png: not a PNG")
    ihdr_end = len(PNG_SIGNATURE) + 8 + struct.unpack(">I", data[8:12])[0] + 4
    note = f"{MARK} -- do not edit; rewrite with: {comment_text(command)}; {HASH_KEY} {digest(data)}"
    raw = note.replace("—", "-").encode("latin-1", "replace")
    body = b"tEXt" + _PNG_KEY + b"\0" + raw
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def png_status(data: bytes) -> str:
    """:func:`status` for a PNG written by :func:`stamp_png`."""
    if not data.startswith(PNG_SIGNATURE):
        return "foreign"
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind == b"tEXt" and data[pos + 8 : pos + 8 + len(_PNG_KEY) + 1] == _PNG_KEY + b"\0":
            note = data[pos + 9 + len(_PNG_KEY) : pos + 8 + length].decode("latin-1")
            m = re.search(rf"{re.escape(HASH_KEY)} ([0-9a-f]{{64}})", note)
            if MARK not in note or m is None:
                return "foreign"
            return "generated" if digest(data[:pos] + data[end:]) == m.group(1) else "edited"
        if kind in (b"IDAT", b"IEND"):
            break
        pos = end
    return "foreign"


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def resolve_target(path: str | os.PathLike[str]) -> Path:
    """The file a write to ``path`` changes: a symbolic link's target (links are followed, never replaced).

    UnsafeWriteError for a dangling link (it would create a file wherever it points)
    or a loop.
    """
    p = Path(path)
    if not p.is_symlink():
        return p
    try:
        real = Path(os.path.realpath(p, strict=True))
    except FileNotFoundError:
        raise UnsafeWriteError(f"refusing to write {path}: it is a symbolic link to a missing file "
                          f"({os.readlink(p)})") from None
    except OSError as e:
        raise UnsafeWriteError(f"cannot write {path}: {_why(e)}") from None
    return real


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (through links, ``..``, other spellings); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_target(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = (),
                 force: bool = False, png: bool = False, option: str = "-o",
                 make_parents: bool = False, judge: Callable[[str], str] | None = None,
                 verb: str = "wrote") -> str | bytes | None:
    """Whether ``path`` may be written: the current content (None if absent), else UnsafeWriteError.

    Never an input (not even with ``force``); never a directory; an existing
    file only if backprop wrote it and nobody edited it since (or ``force``).
    ``make_parents``: the caller creates missing directories (see :func:`probe`).
    ``judge`` reads a text file's mark (default :func:`status`; generated code has its
    own header), ``verb`` says what backprop did to it in messages.
    """
    for source in inputs:
        if same_file(path, source):
            raise UnsafeWriteError(f"refusing to write {option} {path}: it is the input {source}")
    target = resolve_target(path)
    if target.is_dir():
        raise UnsafeWriteError(f"{option} {path}: is a directory")
    parent = target.parent
    if not parent.is_dir() and not make_parents:
        raise UnsafeWriteError(f"{option} {path}: no such directory {parent}")
    if not target.exists():
        return None
    if not target.is_file():
        raise UnsafeWriteError(f"refusing to write {option} {path}: not a regular file")
    try:
        size = target.stat().st_size
        raw = target.read_bytes() if size <= MAX_OWN_SIZE else b""
    except OSError as e:
        raise UnsafeWriteError(f"cannot read {option} {path}: {_why(e)}") from None
    if force:
        return raw if png else raw.decode("utf-8", "replace")
    if png:
        state = png_status(raw)
        current: str | bytes = raw
    else:
        try:
            current = raw.decode("utf-8")
        except UnicodeDecodeError:
            current, state = "", "foreign"
        else:
            state = (judge or status)(current)
    participle = {"wrote": "written"}.get(verb, verb)
    if state == "foreign":
        raise UnsafeWriteError(f"refusing to overwrite {path}: it was not {participle} by backprop "
                               "(use --force to overwrite it)")
    if state == "edited":
        raise UnsafeWriteError(f"refusing to overwrite {path}: it was edited since backprop {verb} it "
                               "(its content no longer matches the hash backprop recorded in it; use --force to overwrite it)")
    return current


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, so readers never see half a file.

    The temp file sits beside the file actually replaced (a symbolic link's
    target: the link stays), keeps that file's permissions, and is removed on
    any failure, KeyboardInterrupt and SIGTERM included.
    """
    target = resolve_target(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with cleanup_on_signals():
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
            os.chmod(tmp, mode_for(target))  # mkstemp makes 0600; keep the file's usual mode
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def safe_write(path: str | os.PathLike[str], data: str | bytes, *, inputs: Iterable[str | os.PathLike[str]] = (),
               force: bool = False, option: str = "-o", judge: Callable[[str], str] | None = None,
               verb: str = "wrote") -> bool:
    """:func:`check_target`, then :func:`write_atomic` unless the file already holds ``data``; whether it wrote."""
    current = check_target(path, inputs=inputs, force=force, png=isinstance(data, bytes), option=option,
                           judge=judge, verb=verb)
    if current == data:
        return False
    try:
        write_atomic(path, data)
    except OSError as e:
        raise UnsafeWriteError(f"cannot write {option} {path}: {_why(e)}") from None
    return True


def mode_for(target: Path) -> int:
    """The replaced file's permissions, or what a plain ``open`` would give a new file."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# ---------------------------------------------------------------------------
# A directory of results, written as a whole
# ---------------------------------------------------------------------------


def probe(directory: str | os.PathLike[str], shown: str | os.PathLike[str], option: str = "--out") -> None:
    """UsageError-style UnsafeWriteError unless a file can be created in ``directory`` (or, if it does not exist
    yet, in its nearest existing ancestor, where it would be made): checked before the work, not after."""
    here = Path(os.path.abspath(directory))
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise UnsafeWriteError(f"cannot write {option} {shown}: {here} is not a directory")
    try:
        with cleanup_on_signals():
            fd, tmp = tempfile.mkstemp(prefix=".backprop-probe.", dir=here)
            try:
                os.write(fd, b"backprop")
            finally:
                os.close(fd)
                os.unlink(tmp)
    except OSError as e:
        raise UnsafeWriteError(f"cannot write {option} {shown}: {_why(e)}") from None


def spec_files(spec: str) -> list[str]:
    """The file a spec argument reads (a path, or a bundled example's file): what ``-o`` must never replace."""
    if os.path.exists(spec):
        return [spec]
    bundled = examples_dir() / f"{spec}{SPEC_SUFFIX}"
    return [str(bundled)] if bundled.is_file() else []
