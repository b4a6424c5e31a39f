"""Every generated name comes from here (as in Tangent's ``naming.py``).

Names for lifted pre-activations (Z₁ for A₁ = σ(W₁X + b₁)), gradient names
(dW1), and Python-safe identifiers for generated code.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Container

#: Names generated code must not shadow.
PY_RESERVED = frozenset(
    {"np", "numpy", "params", "inputs", "grads", "cache", "dims", "seed", "rng", "dtype", "loss"}
    | set(dir(builtins))
)


def _digits(name: str) -> str:
    m = re.search(r"(\d+)$", name)
    return m.group(1) if m else ""


def fresh(base: str, taken: Container[str]) -> str:
    """``base``, or ``base_2``, ``base_3`` ... whichever is free."""
    if base not in taken:
        return base
    i = 2
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


def pre_activation(owner: str | None, layer: int, taken: Container[str]) -> str:
    """Name the argument of an activation: A1 -> Z1, A -> Z, p -> z.

    ``owner`` is the assigned name when the activation is a whole right-hand
    side; otherwise (an activation inside the loss) ``layer`` numbers it.
    """
    if owner is not None:
        letter = "z" if owner[0].islower() else "Z"
        digits = _digits(owner)
        candidates = [letter + digits, f"{letter}_{owner}"]
    else:
        candidates = [f"Z{layer}" if layer else "Z", "Z_out"]
    for c in candidates:
        if c not in taken and ("d" + c) not in taken:
            return c
    return fresh(candidates[-1], taken)


def grad_name(name: str) -> str:
    """The gradient of NAME is written dNAME (reserved by the spec language)."""
    return "d" + name


def py_name(name: str) -> str:
    """A spec name as a Python identifier that shadows nothing."""
    return name + "_" if name in PY_RESERVED or keyword.iskeyword(name) else name


#: Index letters for index notation: free (output) indices, then summed ones.
#: All have Unicode subscripts, so the terminal can write Σₜ.
OUTPUT_INDICES = "ijkl"
SUMMED_INDICES = "tsuvrpqaeho"


def index_letter(taken: Container[str], summed: bool) -> str:
    """A fresh index letter (``i, j`` for entries, ``t, s, u ...`` for sums) not in ``taken``.

    ``taken`` holds dimension names and one-letter variable names, so ``Σₜ``
    never reads as a sum over a dimension or a variable.
    """
    for ch in SUMMED_INDICES if summed else OUTPUT_INDICES + SUMMED_INDICES:
        if ch not in taken:
            return ch
    return fresh("t" if summed else "i", taken)
