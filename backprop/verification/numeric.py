"""Comparing numerically: sizes, random points, forward values and true gradients at them.

A claim is judged by its values: at several sets of sizes (distinct primes, so a stray factor m or
a swapped pair of dimensions shows) and random points drawn from the inputs' domains, with every
``dOTHER`` bound to the true gradient. :class:`Points` holds those points and compares values
across all of them; the verdict and the diagnosis both ask it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.engine.derivation import Derivation
from backprop.expr.evaluate import evaluate
from backprop.expr.ir import shape_of
from backprop.language.domains import sample
from backprop.language.model import Model
from backprop.support.naming import grad_name
from backprop.verification.factors import Factor, fit_factor

#: Relative error below which two values count as equal (float64, small nets).
TOL = 1e-7
#: Sizes for the numerical check: distinct primes, so factors of one dimension cannot pose as another's.
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)


def size_sets(model: Model, seed: int) -> list[dict[str, int]]:
    """Several sets of sizes: within a set the dims are distinct primes; each dim varies across sets."""
    dims = sorted(model.dims)
    pool = PRIMES[: max(len(dims) + 1, 4)]
    rng = np.random.default_rng(seed)
    count = max(3, len(dims) + 2)
    out: list[dict[str, int]] = []
    for i in range(count):
        perm = rng.permutation(len(pool)) if i else np.arange(len(pool))
        out.append({d: int(pool[int(j)]) for d, j in zip(dims, perm)})
    return out


def concrete(shape: tuple[Basic, ...], env: Mapping[Any, Any]) -> tuple[int, ...]:
    """A symbolic shape at the sizes in ``env`` (its dimension-symbol keys)."""
    return tuple(_size(d, env) for d in shape)


def _size(d: Any, env: Mapping[Any, Any]) -> int:
    """One dimension at the sizes in ``env``. A number or a plain dimension symbol (nearly every
    dimension) is read directly; SymPy's ``subs`` is the general way, and the slow one."""
    d = sympy.sympify(d)
    if d.is_Integer:
        return int(d)
    if d.is_Symbol and d in env:
        return int(env[d])
    return int(d.subs({k: v for k, v in env.items() if isinstance(k, sympy.Symbol)}))


class Point:
    """One size set and random point: forward values and every true gradient."""

    def __init__(self, deriv: Derivation, sizes: dict[str, int], rng: np.random.Generator, ties: bool = False) -> None:
        model = deriv.model
        self.sizes = sizes
        self.env: dict[Any, Any] = {model.dims[d]: v for d, v in sizes.items()}
        classes = model.domains().class_axes
        for d in model.decls.values():
            shape = concrete(d.shape, self.env)
            if ties and d.domain is None:  # -1, 0, 1: values tie and sit on kinks
                self.env[d.name] = rng.integers(-1, 2, size=shape).astype(float)
            else:
                self.env[d.name] = sample(d.domain, shape, rng, classes.get(d.name, 0), sizes)
        for eq in deriv.equations:
            self.env[eq.name] = evaluate(eq.expr, self.env)
        for s in deriv.steps:
            self.env[grad_name(s.target)] = np.broadcast_to(evaluate(s.result, self.env), concrete(s.shape, self.env))

    def value(self, e: Basic, subs: Mapping[Basic, np.ndarray] | None = None) -> np.ndarray:
        """``e`` at this point, with the given sub-expressions replaced by the given values."""
        return evaluate(e, self.env, dict(subs) if subs else {})


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative difference of two arrays of one shape (0 when both vanish)."""
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    if scale == 0.0:
        return 0.0
    return float(np.linalg.norm(a - b)) / scale


def ratio(c: np.ndarray, g: np.ndarray) -> float | None:
    """r with c = r·g (least squares), or None when c is not a multiple of g."""
    gg = float(np.sum(g * g))
    if gg == 0.0:
        return None
    r = float(np.sum(c * g)) / gg
    if not math.isfinite(r):
        return None
    if rel(c, r * g) > TOL * 10:
        return None
    return r



def tie_point(deriv: Derivation, sizes: dict[str, int], seed: int) -> Point | None:
    """A point where the params and plain inputs are -1, 0 or 1, so values tie and sit on kinks
    (maximum(A, B) at A = B, relu at 0, clip on its boundary), with finite values and gradients; None
    when this spec has no finite one there (a log or a quotient of 0)."""
    with np.errstate(all="ignore"):
        try:
            p = Point(deriv, sizes, np.random.default_rng(seed + 7), ties=True)
        except (ValueError, FloatingPointError):
            return None
    finite = all(np.all(np.isfinite(np.asarray(v, dtype=float))) for k, v in p.env.items() if isinstance(k, str))
    return p if finite else None


class Points:
    """Every size set's random point, fixed per instance (deterministic for a seed)."""

    def __init__(self, deriv: Derivation, seed: int = 0) -> None:
        self.sizes = size_sets(deriv.model, seed)
        rng = np.random.default_rng(seed + 1)
        self.points = [Point(deriv, s, rng) for s in self.sizes]

    def vals(self, e: Basic, subs: Mapping[Basic, Sequence[np.ndarray]] | None = None) -> list[np.ndarray]:
        """``e`` at every point; ``subs`` replaces sub-expressions by given values (one per point)."""
        out = []
        with np.errstate(all="ignore"):  # a trial substitution may divide by zero: it just does not match
            for i, p in enumerate(self.points):
                v = p.value(e, {k: vs[i] for k, vs in (subs or {}).items()})
                out.append(np.broadcast_to(v, concrete(shape_of(e), p.env)))
        return out

    def grad(self, name: str) -> list[np.ndarray]:
        return [p.env[grad_name(name)] for p in self.points]

    def var(self, name: str) -> list[np.ndarray]:
        return [p.env[name] for p in self.points]

    @staticmethod
    def close(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
        return all(x.shape == y.shape and rel(x, y) <= TOL for x, y in zip(a, b))

    def factor(self, a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> Factor | None:
        """``a = f · b`` at every point, with f explained as c · ∏ dim^k (None if not)."""
        if any(x.shape != y.shape for x, y in zip(a, b)):
            return None
        rs = [ratio(x, y) for x, y in zip(a, b)]
        if any(r is None for r in rs):
            return None
        return fit_factor([float(r) for r in rs if r is not None], self.sizes)

