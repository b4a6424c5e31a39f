"""Import a generated module from a file, never by exec/eval of a string.

The source is written to a per-process temporary directory and imported with
``importlib``, so ``inspect.getsource`` (which latexify needs), tracebacks and
debuggers see real lines. Files are removed when the process exits.
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

from derive.derivation import Derivation
from derive.model import Model
from derive.naming import module_name

from .emit import derivation_of, generate
from .header import digest

_DIR: Path | None = None


def _tmpdir() -> Path:
    global _DIR
    if _DIR is None:
        _DIR = Path(tempfile.mkdtemp(prefix="backprop-gen-"))
        atexit.register(shutil.rmtree, _DIR, True)
    return _DIR


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


def load_source(source: str, model_name: str = "network") -> ModuleType:
    """Write ``source`` to a temporary file and import it."""
    name = module_name(model_name, digest(source))
    path = _tmpdir() / f"{name}.py"
    if not path.exists():
        path.write_text(source, encoding="utf-8")
    return import_file(path, name)


def load_module(spec_or_source: str | Path | Model | Derivation | ModuleType) -> ModuleType:
    """The generated module for a spec (path, bundled name, Model or Derivation), for
    generated source text, or for a ``.py`` file; a module is returned as is."""
    if isinstance(spec_or_source, ModuleType):
        return spec_or_source
    if isinstance(spec_or_source, Path) or (isinstance(spec_or_source, str) and spec_or_source.endswith(".py")):
        return import_file(spec_or_source)
    if isinstance(spec_or_source, str) and is_source(spec_or_source):
        return load_source(spec_or_source)
    d = derivation_of(spec_or_source)
    return load_source(generate(d), d.model.name)
