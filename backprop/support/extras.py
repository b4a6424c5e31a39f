"""Optional dependencies: say which extra to install instead of failing with a traceback.

``backprop train`` and ``backprop gradflow`` draw figures with matplotlib (and
``train`` shows a tqdm progress bar); both come with ``pip install
'backprop-toolkit[train]'``, not with a bare ``pip install backprop-toolkit``. Each command
calls :func:`require` before doing any work, so a missing module is one line
and exit status 2 (:class:`MissingExtraError` is caught in ``backprop.cli``),
not a ``ModuleNotFoundError`` after minutes of training. The optional modules
themselves are imported only inside the functions that use them.
"""

from __future__ import annotations

import importlib.util

#: optional module -> the extra that installs it
EXTRA_OF: dict[str, str] = {"matplotlib": "train", "tqdm": "train", "shtab": "completion", "jax": "jax"}


class MissingExtraError(ImportError):
    """An optional module is not installed; the message names the extra that provides it."""


def missing(*modules: str) -> list[str]:
    """The ``modules`` that cannot be imported (found without importing them: a check costs no import time)."""
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken parent package, or a module blocked in sys.modules
            found = False
        if not found:
            out.append(name)
    return out


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def require(what: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` naming the missing ``modules`` and the extra to install.

    ``what`` is who needs them, as the user called it: ``'backprop train'`` or
    ``backprop.train.plots``.
    """
    absent = missing(*modules)
    if absent:
        extras = sorted({EXTRA_OF.get(m, m) for m in absent})
        install = " ".join(f"'backprop-toolkit[{e}]'" for e in extras)
        raise MissingExtraError(f"{what} needs {_and(absent)}: pip install {install}", name=absent[0])


__all__ = ["EXTRA_OF", "MissingExtraError", "missing", "require"]
