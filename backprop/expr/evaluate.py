"""Evaluate model expressions: numerically (NumPy) or exactly (NumPy arrays of SymPy numbers).

Both walk the expression and apply each operation's registry forms, so they
serve as the reference the derived gradients and generated code are checked
against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy
from sympy import Basic, MatrixSymbol
from sympy.core.function import AppliedUndef

from backprop.expr.ir import OpNode, is_const
from backprop.expr.ops import REGISTRY
from backprop.support.errors import UnsupportedError


def _dims_env(env: Mapping[str, Any]) -> dict[sympy.Symbol, int]:
    return {k: v for k, v in env.items() if isinstance(k, sympy.Symbol)}


def constant(e: Basic, env: Mapping[Any, Any]) -> sympy.Expr:
    """A constant with its dims' sizes substituted and every registry function of numbers in
    its exact SymPy form: the simplifier keeps ``sqrt(k)`` or ``sigmoid(k)`` as an undefined
    function of its registry name, which SymPy cannot turn into a number by itself."""

    def exact(f: Any) -> Any:
        return REGISTRY[type(f).__name__].exact(*f.args)

    def known(f: Any) -> bool:
        op = REGISTRY.get(type(f).__name__)
        return isinstance(f, AppliedUndef) and op is not None and op.exact is not None

    return sympy.sympify(e).subs(_dims_env(env)).replace(known, exact)


def evaluate(e: Basic, env: Mapping[Any, Any], cache: dict | None = None) -> Any:
    """NumPy value of ``e``; ``env`` maps variable names to arrays and dim symbols to ints."""
    cache = {} if cache is None else cache
    if e in cache:
        return cache[e]
    if isinstance(e, MatrixSymbol):
        v = np.asarray(env[e.name], dtype=float)
        out = v.reshape(1, 1) if v.ndim == 0 else v
    elif is_const(e):
        out = np.array([[float(constant(e, env))]])
    elif isinstance(e, OpNode):
        args = [evaluate(c, env, cache) for c in e.children]
        out = e.op.np_eval(*args, e, _dims_env(env)) if e.op.sized else e.op.np_eval(*args, e)
        out = np.asarray(out, dtype=float)
        if out.ndim == 0:
            out = out.reshape(1, 1)
    else:
        raise UnsupportedError(f"cannot evaluate {type(e).__name__}")
    cache[e] = out
    return out


def exact_array(x: Any) -> np.ndarray:
    """An exact value as a NumPy array of SymPy numbers or expressions (``dtype=object``), any rank:
    NumPy's own indexing, broadcasting, sums and products then work on it exactly. A SymPy matrix
    or a nested list is converted; a 0-d value becomes 1×1, as a scalar is everywhere."""
    if isinstance(x, sympy.MatrixBase):
        x = x.tolist()
    out = np.array(x, dtype=object)
    return out.reshape(1, 1) if out.ndim == 0 else out


def evaluate_exact(e: Basic, env: Mapping[Any, Any], cache: dict | None = None) -> np.ndarray:
    """Exact value, an object array of SymPy expressions (small sizes only)."""
    cache = {} if cache is None else cache
    if e in cache:
        return cache[e]
    if isinstance(e, MatrixSymbol):
        out = exact_array(env[e.name])
    elif is_const(e):
        out = exact_array([[constant(e, env)]])
    elif isinstance(e, OpNode):
        args = [evaluate_exact(c, env, cache) for c in e.children]
        if e.op.elementwise:
            out = np.vectorize(e.op.exact, otypes=[object])(*args)
        else:
            out = exact_array(e.op.sym_eval(*args, e, _dims_env(env)) if e.op.sized else e.op.sym_eval(*args, e))
    else:
        raise UnsupportedError(f"cannot evaluate {type(e).__name__}")
    cache[e] = out
    return out
