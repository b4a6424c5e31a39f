"""Replacing a directory of results as a whole, and only when everything in it is backprop's own.

``backprop train --out DIR`` writes several files; :class:`RunDir` stages them beside ``DIR`` and swaps
the staging directory into place in one step. What may be replaced is decided by content, not by name:
the directory's :data:`MANIFEST` records a hash of every file the run wrote, so a file that merely has a
run file's name (a user's own ``history.csv``), or one edited since, stops the run before any work.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from backprop.support.files import (
    MARK,
    MAX_OWN_SIZE,
    UnsafeWriteError,
    cleanup_on_signals,
    current_umask,
    digest,
    mode_for,
    png_status,
    resolve_target,
    same_file,
)

#: The file in a run directory that records what backprop wrote there: {"generated_by", "files": {name: sha256}}.
MANIFEST = ".backprop-run.json"


def read_manifest(directory: Path) -> dict[str, str]:
    """The recorded hash of each file backprop wrote in ``directory`` ({} if none, or not ours)."""
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) and data.get("generated_by") == MARK else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}


def files_under(directory: Path) -> list[str]:
    """Every entry below ``directory`` that is not a directory, as a relative POSIX path (links not followed)."""
    out = []
    for root, dirs, files in os.walk(directory):
        rel = Path(root).relative_to(directory)
        out += [(rel / f).as_posix() for f in files]
        out += [(rel / d).as_posix() for d in dirs if (Path(root) / d).is_symlink()]  # a link is never ours
    return sorted(out)


def write_manifest(directory: Path, owned: Iterable[str]) -> None:
    """Record the hash of every ``owned`` file now in ``directory`` (a name may be a relative path)."""
    files = {
        name: digest((directory / name).read_bytes())
        for name in sorted(owned)
        if (directory / name).is_file() and not (directory / name).is_symlink()
    }
    text = json.dumps({"generated_by": MARK, "files": files}, indent=1, sort_keys=True) + "\n"
    (directory / MANIFEST).write_text(text, encoding="utf-8")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class RunDir:
    """Write a directory of results as a whole: a staging directory beside ``path``, renamed into place.

    Opening it is the write probe: the staging directory is created (and a
    file written in it) before any work, so an unwritable place fails first.
    An existing ``path`` is replaced only if it holds nothing but ``owned``
    files that backprop wrote there, unchanged since (each file's hash is in
    the directory's :data:`MANIFEST`: a name alone proves nothing, a user's
    own ``history.csv`` is theirs), and ``carried`` ones (other backprop
    outputs that carry their own mark, linked into the new directory). Until
    :meth:`commit`, the old directory is untouched; on any exit the staging
    directory is removed.

    ``owned`` may instead be a pattern of relative paths (``feedback/[^/]+[.]md``): for results
    whose names depend on the input (one feedback page per student), in subdirectories. Then every
    file below ``path`` must match it and have the hash recorded for it, and every file written
    below the staging directory that matches it is recorded.
    """

    def __init__(self, path: str | os.PathLike[str], owned: Iterable[str] | re.Pattern[str], carried: Iterable[str] = (),
                 inputs: Iterable[str | os.PathLike[str]] = (), option: str = "--out") -> None:
        self.shown = Path(path)
        self.option = option
        self.pattern = owned if isinstance(owned, re.Pattern) else None
        self.owned = set() if isinstance(owned, re.Pattern) else set(owned)
        self.carried = set(carried)
        self.inputs = list(inputs)
        self.path = Path(os.path.abspath(resolve_target(self.shown)))
        self.staging: Path | None = None
        self._created: list[Path] = []  # parent directories made for the run, removed if it fails
        self._signals = cleanup_on_signals()

    def check(self) -> None:
        """UnsafeWriteError unless ``path`` is absent or a directory of this command's results."""
        p = self.path
        for source in self.inputs:
            if same_file(source, p) or same_file(Path(source).parent, p):
                raise UnsafeWriteError(f"refusing to replace {self.option} {self.shown}: it holds the input {source}")
        if p.exists() and not p.is_dir():
            raise UnsafeWriteError(f"{self.option} {self.shown}: exists and is not a directory")
        if not p.exists():
            return
        try:
            entries = files_under(p) if self.pattern else sorted(os.listdir(p))
        except OSError as e:
            raise UnsafeWriteError(f"cannot read {self.option} {self.shown}: {(e.strerror or str(e))}") from None
        recorded = read_manifest(p)
        foreign = [e for e in entries if e != MANIFEST and not self._ours(p / e, recorded)]
        if foreign:
            raise UnsafeWriteError(
                f"refusing to replace {self.option} {self.shown}: it holds {', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}, which backprop did not write or which were changed "
                f"since (choose another {self.option} or move them)")
        if not os.access(p, os.W_OK):
            raise UnsafeWriteError(f"cannot replace {self.option} {self.shown}: {os.strerror(errno.EACCES)}")

    def _ours(self, path: Path, recorded: dict[str, str]) -> bool:
        """A regular file this command wrote (its hash as recorded), or a carried output with its own intact mark."""
        name = path.relative_to(self.path).as_posix()
        known = self.pattern.fullmatch(name) if self.pattern else name in self.owned | self.carried
        if path.is_symlink() or not path.is_file() or not known:
            return False
        if path.stat().st_size > MAX_OWN_SIZE:
            return False
        data = path.read_bytes()
        if self.pattern or name in self.owned:
            return recorded.get(name) == digest(data)
        return png_status(data) == "generated"

    def __enter__(self) -> Path:
        self.check()
        parent = self.path.parent
        self._signals.__enter__()
        try:
            missing = [a for a in [parent, *parent.parents] if not a.exists()]
            for a in reversed(missing):
                a.mkdir()
                self._created.append(a)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=parent))
            probe = self.staging / ".probe"
            probe.write_bytes(b"backprop")
            probe.unlink()
        except BaseException as e:
            self.__exit__()
            if isinstance(e, OSError):
                raise UnsafeWriteError(f"cannot write {self.option} {self.shown}: {(e.strerror or str(e))}") from None
            raise
        return self.staging

    def commit(self) -> None:
        """Put the staging directory in ``path``'s place (with the carried files of the old one)."""
        assert self.staging is not None
        self.check()  # nothing foreign appeared meanwhile
        pattern = self.pattern
        owned = [f for f in files_under(self.staging) if pattern.fullmatch(f)] if pattern else self.owned
        write_manifest(self.staging, owned)
        old = self.path
        if not old.exists():
            os.chmod(self.staging, mode_for(old) | 0o111 & ~current_umask())  # mkdtemp makes 0700
            os.rename(self.staging, old)
            self.staging = None
            return
        for name in sorted(self.carried - set(os.listdir(self.staging))):
            if (old / name).is_file():
                try:
                    os.link(old / name, self.staging / name)
                except OSError:
                    shutil.copy2(old / name, self.staging / name)
        os.chmod(self.staging, old.stat().st_mode & 0o7777)
        if _exchange(self.staging, old):  # staging now holds the old results: removed by _cleanup
            return
        trash = Path(tempfile.mkdtemp(prefix=f".{old.name}.", suffix=".old", dir=old.parent))
        os.rename(old, trash / old.name)
        try:
            os.rename(self.staging, old)
        except BaseException:
            os.rename(trash / old.name, old)
            shutil.rmtree(trash, ignore_errors=True)
            raise
        self.staging = trash

    def _cleanup(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        if not self.path.exists():  # the run failed: the directories made for it go too
            for a in reversed(self._created):
                with contextlib.suppress(OSError):
                    a.rmdir()
        self._created = []

    def __exit__(self, *exc: object) -> None:
        try:
            self._cleanup()
        finally:
            self._signals.__exit__(None, None, None)


