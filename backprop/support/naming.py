"""Every generated name comes from here (as in Tangent's ``naming.py``).

Names for lifted pre-activations (Z₁ for A₁ = σ(W₁X + b₁)), gradient names
(dW1), and Python-safe identifiers for generated code.
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata
from collections.abc import Container

#: Names generated code must not shadow.
PY_RESERVED = frozenset(
    {"np", "numpy", "params", "inputs", "grads", "cache", "dims", "seed", "rng", "dtype", "loss"}
    | set(dir(builtins))
)


def _digits(name: str) -> str:
    m = re.search(r"(\d+)$", name)
    return m.group(1) if m else ""


def layer_number(name: str) -> int:
    """The layer a name's trailing digits give (A2 -> 2), or 0."""
    digits = _digits(name)
    return int(digits) if digits else 0


def fresh(base: str, taken: Container[str]) -> str:
    """``base``, or ``base_2``, ``base_3`` ... whichever is free."""
    if base not in taken:
        return base
    i = 2
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


def pre_activation(owner: str | None, layer: int, taken: Container[str], by_owner: bool = False) -> str:
    """Name the argument of an activation: A1 -> Z1, A -> Z, p -> z.

    ``owner`` is the assigned name when the activation is a whole right-hand
    side; otherwise (an activation inside the loss) ``layer`` numbers it: the
    number its weights carry (Z2 for W2 A + b2), else the next layer's.
    ``by_owner``: after the owner first, Z_I for I (an LSTM's gates, each its own Z).
    """
    if owner is not None:
        letter = "z" if owner[0].islower() else "Z"
        digits = _digits(owner)
        candidates = [letter + digits, f"{letter}_{owner}"]
        if by_owner:
            candidates.reverse()
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


# ---------------------------------------------------------------------------
# Generated NumPy modules (codegen): one namespace per module
# ---------------------------------------------------------------------------

#: Names a generated module defines at module level (``templates/module.py.j2`` and the
#: optimizer's ``init_state``/``step``; registry helpers are reserved from the registry),
#: and the locals its functions keep beside the spec's names (``params``, ``grads``,
#: ``cache``, ``dims`` ...). A spec name equal to one of these would shadow it inside
#: ``_forward``, ``backward`` or ``loss_and_grads``: it gets a trailing ``_`` instead.
#: tests/test_codegen.py checks this list against every name a rendered module uses.
MODULE_NAMES = frozenset({
    "np", "numpy", "forward", "backward", "loss_and_grads", "init_params", "init_state", "step",
    "SHAPES", "PARAMS", "INPUTS", "DOMAINS", "EXAMPLES", "EXAMPLE_AXES", "DIMS", "INIT",
    "_forward", "_check_shapes", "_expect_keys", "_like", "_normal", "_init_dims", "_fmt_shape", "_scalar",
    "_weak", "_ACCEPTED", "_CACHE", "_bind", "_blame", "_layout_hint", "_check_labels",
    "cache", "params", "inputs", "grads", "dims", "seed", "dtype", "rng",
})
#: What a generated JAX module defines beside :data:`MODULE_NAMES` (``templates/module_jax.py.j2``).
JAX_MODULE_NAMES = frozenset({"jax", "jnp", "functools", "_loss_and_grads", "_traced"})
TEMP_PREFIX = "t"


class CodeNames:
    """Python identifiers for one generated module, all distinct and collision-free.

    Spec names keep their spelling unless they would shadow something the module
    uses (``np`` -> ``np_``); gradients are ``dNAME``; common subexpressions are
    ``t1, t2, ...``. Every name is handed out once, in call order, so the
    result is deterministic.
    """

    def __init__(self, reserved: Container[str] = ()) -> None:
        self.reserved = set(reserved) | MODULE_NAMES | set(dir(builtins))
        self.taken: set[str] = set()
        self.of: dict[tuple[str, str], str] = {}
        self.temps = 0

    def _claim(self, kind: str, name: str, base: str) -> str:
        key = (kind, name)
        if key not in self.of:
            base = unicodedata.normalize("NFKC", base)  # as Python reads identifiers: 𝐰 is w
            if base in self.reserved or keyword.iskeyword(base) or keyword.issoftkeyword(base):
                base += "_"
            py = fresh(base, self.taken | self.reserved)
            self.taken.add(py)
            self.of[key] = py
        return self.of[key]

    def named(self, kind: str, name: str, base: str) -> str:
        """``name`` of ``kind`` as an identifier from ``base`` (a loop's step values: H[t] -> H_t)."""
        return self._claim(kind, name, base)

    def var(self, name: str) -> str:
        """A spec variable (input, param, assigned or lifted value)."""
        return self._claim("var", name, name)

    def dim(self, name: str) -> str:
        return self._claim("dim", name, name)

    def grad(self, name: str) -> str:
        """The gradient of spec variable ``name``: ``dW1``."""
        return self._claim("grad", name, grad_name(name))

    def temp(self) -> str:
        """A fresh name for a common subexpression."""
        self.temps += 1
        return self._claim("temp", str(self.temps), f"{TEMP_PREFIX}{self.temps}")

    def lookup(self, kind: str, name: str) -> str:
        return self.of[(kind, name)]


def module_name(model_name: str, digest: str) -> str:
    """An importable module name for a generated module (``backprop_gen_mlp_softmax_1a2b3c``)."""
    safe = re.sub(r"\W", "_", model_name) or "network"
    return f"backprop_gen_{safe}_{digest[:12]}"


def helper_name(source: str) -> str:
    """The function a registry ``numpy_helper`` defines (``def _sigmoid(x):`` -> ``_sigmoid``)."""
    m = re.match(r"\s*def\s+([A-Za-z_]\w*)\s*\(", source)
    if not m:
        raise ValueError(f"a numpy_helper must start with 'def NAME(': {source[:40]!r}")
    return m.group(1)


def placeholder(table: dict[str, str], text: str, prefix: str) -> str:
    """The identifier standing for ``text`` in ``table`` (``prefix`` + a number), added if new:
    the LaTeX renderers write formulas as Python with such names, then put the LaTeX back."""
    for key, value in table.items():
        if value == text:
            return key
    key = f"{prefix}{len(table)}"
    table[key] = text
    return key
