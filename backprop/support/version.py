"""backprop's version, for ``backprop --version``.

The installed distribution's metadata is the truth (it is what ``pip`` and bug
reports see); a checkout run without installing it (``PYTHONPATH=.``) has no
metadata, so the version is then read from the ``pyproject.toml`` beside the
package.

Both readers are imported when the version is asked for: ``importlib.metadata`` brings the email
parser and zipfile with it, about 20 ms that a command line not printing the version need not pay.
"""

from __future__ import annotations

from pathlib import Path

DISTRIBUTION = "backprop-toolkit"


def _dist_version(name: str) -> str:
    """The installed distribution ``name``'s version (``PackageNotFoundError`` when not installed)."""
    from importlib.metadata import version as dist_version

    return dist_version(name)


def version() -> str:
    """The distribution's version; from pyproject.toml in an uninstalled checkout; else ``unknown``."""
    import tomllib
    from importlib.metadata import PackageNotFoundError

    try:
        return _dist_version(DISTRIBUTION)
    except PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        if project.get("name") == DISTRIBUTION:
            return str(project["version"])
    except (OSError, KeyError, TypeError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        pass
    return "unknown"


__all__ = ["version"]
