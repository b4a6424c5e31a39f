"""Import a generated module: a ``.py`` file with ``importlib``, generated source in memory.

Source is compiled and executed into a fresh module object; nothing is written
to disk, so a process killed by any signal (SIGKILL included) leaves no
temporary files behind. Its lines are registered in :mod:`linecache` under the
pseudo-filename ``<backprop_gen_NAME_DIGEST>``, so ``inspect.getsource`` (which
the LaTeX renderer needs), tracebacks and debuggers still show real lines.

This module only compiles and imports source it is given; generating that source
from a spec and loading it is :func:`backprop.codegen.emit.load_module`.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import linecache
from pathlib import Path
from types import CodeType, ModuleType

from backprop.codegen.header import digest
from backprop.support.naming import module_name


def import_file(path: str | Path, name: str | None = None) -> ModuleType:
    """Import the Python file at ``path`` as a fresh module object (not added to sys.modules)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for non-.py paths
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_source(text: str) -> bool:
    """Generated source rather than a spec path or name: it has lines and defines forward."""
    return "\n" in text and "def forward(" in text


class _SourceLoader(importlib.abc.InspectLoader):
    """importlib's loader protocol for source held in memory: the same machinery that runs
    a ``.py`` file, so generated code is imported, never passed to exec by hand."""

    def __init__(self, source: str, filename: str) -> None:
        self.source, self.filename = source, filename

    def get_source(self, fullname: str) -> str:
        return self.source

    def get_code(self, fullname: str) -> CodeType:
        return self.source_to_code(self.source, self.filename)

    def is_package(self, fullname: str) -> bool:
        return False


def load_source(source: str, model_name: str = "network") -> ModuleType:
    """Import ``source`` from memory as a fresh module (not added to sys.modules).

    The pseudo-filename is keyed by the source's digest, and its linecache entry
    has no mtime, so ``linecache.checkcache`` keeps it (there is no file to compare).
    """
    name = module_name(model_name, digest(source))
    filename = f"<{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    loader = _SourceLoader(source, filename)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader, origin=filename))
    loader.exec_module(module)
    return module
