"""Evaluate model expressions: numerically (NumPy) or exactly (SymPy matrices).

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
        if e.op.name == "broadcast":
            shape = tuple(int(sympy.sympify(d).subs(_dims_env(env))) for d in e.args[1])
            out = np.broadcast_to(args[0], shape)
        else:
            out = e.op.np_eval(*args, e)
        out = np.asarray(out, dtype=float)
        if out.ndim == 0:
            out = out.reshape(1, 1)
    else:
        raise UnsupportedError(f"cannot evaluate {type(e).__name__}")
    cache[e] = out
    return out


def evaluate_exact(e: Basic, env: Mapping[Any, Any], cache: dict | None = None) -> sympy.Matrix:
    """Exact value on concrete SymPy matrices (small sizes only)."""
    cache = {} if cache is None else cache
    if e in cache:
        return cache[e]
    if isinstance(e, MatrixSymbol):
        out = sympy.Matrix(env[e.name])
    elif is_const(e):
        out = sympy.Matrix([[constant(e, env)]])
    elif isinstance(e, OpNode):
        args = [evaluate_exact(c, env, cache) for c in e.children]
        if e.op.elementwise:
            out = _elementwise(e, args)
        elif e.op.name == "broadcast":
            r, c = (int(sympy.sympify(d).subs(_dims_env(env))) for d in e.args[1])
            x = args[0]
            out = sympy.Matrix(r, c, lambda i, j: x[i if x.rows > 1 else 0, j if x.cols > 1 else 0])
        else:
            out = e.op.sym_eval(*args, e)
    else:
        raise UnsupportedError(f"cannot evaluate {type(e).__name__}")
    cache[e] = out
    return out


def _elementwise(e: OpNode, args: list[sympy.Matrix]) -> sympy.Matrix:
    rows = max(a.rows for a in args)
    cols = max(a.cols for a in args)

    def at(a: sympy.Matrix, i: int, j: int) -> Any:
        return a[i if a.rows > 1 else 0, j if a.cols > 1 else 0]

    return sympy.Matrix(rows, cols, lambda i, j: e.op.exact(*(at(a, i, j) for a in args)))
