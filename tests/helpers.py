"""Shared machinery for checking derived gradients against the loss itself.

Everything here evaluates a :class:`~backprop.Derivation` through the reference
evaluators of :mod:`backprop.expr.evaluate` -- forward equations in order, then every
backward ``Step.result`` in order with ``dNAME`` bound to the value of the step
that computed it -- and compares against central finite differences (float64)
or against SymPy's own differentiation of the fully expanded loss (exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop import Derivation, Model, NetworkBuilder
from backprop.expr.evaluate import evaluate, evaluate_exact, exact_array
from backprop.expr.ir import OpNode, shape_of
from backprop.language.domains import sample
from backprop.support.naming import grad_name

#: Operations whose derivative jumps at 0: random points must stay clear of it.
KINKED = frozenset({"relu", "leaky_relu", "abs", "step", "sign", "leaky_step"})
KINK_MARGIN = 1e-3


# ---------------------------------------------------------------------------
# Sizes and random points
# ---------------------------------------------------------------------------


def dim_env(model: Model, sizes: Mapping[str, int]) -> dict[sympy.Symbol, int]:
    """Dimension symbol -> size, as the evaluators expect."""
    return {sym: int(sizes[name]) for name, sym in model.dims.items()}


def random_sizes(model: Model, rng: np.random.Generator, lo: int = 1, hi: int = 4) -> dict[str, int]:
    return {name: int(rng.integers(lo, hi + 1)) for name in model.dims}


def concrete_shape(model: Model, name: str, sizes: Mapping[str, int]) -> tuple[int, ...]:
    env = dim_env(model, sizes)
    return tuple(int(sympy.sympify(d).subs(env)) for d in model.shape(name))


def random_point(model: Model, sizes: Mapping[str, int], rng: np.random.Generator) -> dict[Any, Any]:
    """An evaluator environment: every input and param drawn from its domain, plus the dims."""
    env: dict[Any, Any] = dict(dim_env(model, sizes))
    classes = model.domains().class_axes
    for d in model.decls.values():
        env[d.name] = sample(d.domain, concrete_shape(model, d.name, sizes), rng, classes.get(d.name, 0), sizes)
    return env


# ---------------------------------------------------------------------------
# Forward and backward through the reference evaluator
# ---------------------------------------------------------------------------


def forward(deriv: Derivation, env: Mapping[Any, Any]) -> dict[Any, Any]:
    """``env`` plus the value of every forward equation, in order."""
    out = dict(env)
    for eq in deriv.equations:
        out[eq.name] = evaluate(eq.expr, out)
    return out


def loss_value(deriv: Derivation, env: Mapping[Any, Any]) -> float:
    return float(forward(deriv, env)[deriv.loss.name].reshape(()))


def backward(deriv: Derivation, env: Mapping[Any, Any]) -> dict[str, np.ndarray]:
    """Every step's value (target -> array), each ``dNAME`` bound as it is computed."""
    vals = forward(deriv, env)
    grads: dict[str, np.ndarray] = {}
    for s in deriv.steps:
        g = evaluate(s.result, vals)
        want = concrete(s.shape, env)
        assert g.shape == want, f"∂L/∂{s.target} evaluates to {g.shape}, its step says {want}"
        vals[grad_name(s.target)] = g
        grads[s.target] = g
    return grads


def concrete(shape: tuple[Basic, Basic], env: Mapping[Any, Any]) -> tuple[int, int]:
    dims = {k: v for k, v in env.items() if isinstance(k, sympy.Symbol)}
    return tuple(int(sympy.sympify(d).subs(dims)) for d in shape)  # type: ignore[return-value]


def kink_distance(deriv: Derivation, env: Mapping[Any, Any]) -> float:
    """Smallest |argument| of any kinked operation in the forward pass (inf if none)."""
    vals = forward(deriv, env)
    best = np.inf
    for eq in deriv.equations:
        for e in sympy.preorder_traversal(eq.expr):
            if isinstance(e, OpNode) and e.op.name in KINKED:
                x = evaluate(e.children[0], vals)
                best = min(best, float(np.min(np.abs(x))))
    return best


def clear_point(deriv: Derivation, sizes: Mapping[str, int], rng: np.random.Generator) -> dict[Any, Any]:
    """A random point whose kinked operations are all at least KINK_MARGIN from 0."""
    for _ in range(200):
        env = random_point(deriv.model, sizes, rng)
        if kink_distance(deriv, env) > KINK_MARGIN:
            return env
    raise AssertionError(f"no random point clear of kinks for {deriv.model.name} at {dict(sizes)}")


# ---------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------


def richardson(f: Callable[[float], float], h: float = 1e-5) -> float:
    """The derivative at 0 of ``f`` by central differences at h and h/2, extrapolated (error O(h⁴)):
    a layer norm over a near-constant axis curves too sharply for a plain central difference."""
    def central(step: float) -> float:
        return (f(step) - f(-step)) / (2 * step)
    return (4 * central(h / 2) - central(h)) / 3


def fd_entry(deriv: Derivation, env: Mapping[Any, Any], name: str, idx: tuple[int, ...], h: float = 1e-5) -> float:
    """Derivative of the loss in one entry of ``name``, by finite differences."""
    base = np.array(env[name], dtype=float)

    def loss_at(step: float) -> float:
        x = base.copy()
        x[idx] += step
        return loss_value(deriv, {**env, name: x})

    return richardson(loss_at, h)


def fd_gradient(
    deriv: Derivation, env: Mapping[Any, Any], name: str, entries: Iterable[tuple[int, int]] | None = None
) -> dict[tuple[int, int], float]:
    """Finite-difference gradient of the loss in ``name`` (all entries, or the given ones)."""
    shape = concrete_shape(deriv.model, name, sizes_of(deriv.model, env))
    idxs = list(entries) if entries is not None else list(np.ndindex(*shape))
    return {tuple(int(i) for i in idx): fd_entry(deriv, env, name, idx) for idx in idxs}


def sizes_of(model: Model, env: Mapping[Any, Any]) -> dict[str, int]:
    return {name: int(env[sym]) for name, sym in model.dims.items()}


def assert_close(
    name: str, derived: np.ndarray, fd: Mapping[tuple[int, int], float], rtol: float = 1e-6, floor: float = 1e-4
) -> None:
    """Relative error, against the gradient's scale, below ``rtol`` at every checked entry.

    A scale below ``floor`` counts as ``floor``: an exactly zero gradient (Σ softmax is
    constant) is then compared absolutely, against the finite differences' rounding noise.
    """
    idxs = list(fd)
    got = np.array([derived[i] for i in idxs])
    want = np.array([fd[i] for i in idxs])
    scale = max(np.max(np.abs(want)), np.max(np.abs(got)), floor)
    err = np.max(np.abs(got - want)) / scale
    assert err < rtol, f"∂L/∂{name}: relative error {err:.3g} (derived {got}, finite differences {want})"


# ---------------------------------------------------------------------------
# Exact evaluation
# ---------------------------------------------------------------------------


def rational(x: float, den: int = 8) -> sympy.Rational:
    return sympy.Rational(Fraction(round(float(x) * den), den))


def exact_point(model: Model, sizes: Mapping[str, int], rng: np.random.Generator, den: int = 4) -> dict[Any, Any]:
    """Like :func:`random_point`, with every value a SymPy rational (domains respected)."""
    env: dict[Any, Any] = dict(dim_env(model, sizes))
    for d in model.decls.values():
        x = sample(d.domain, concrete_shape(model, d.name, sizes), rng, model.domains().class_axes.get(d.name, 0),
                   sizes)
        if d.domain == "positive":
            x = np.maximum(x, 1 / den)
        if d.domain == "prob":
            x = np.clip(x, 1 / den, 1 - 1 / den)
        env[d.name] = exact_array([[rational(v, den) for v in row] for row in x.reshape(x.shape[0], -1)]).reshape(x.shape)
    return env


def exact_forward(deriv: Derivation, env: Mapping[Any, Any]) -> dict[Any, Any]:
    out = dict(env)
    for eq in deriv.equations:
        out[eq.name] = evaluate_exact(eq.expr, out)
    return out


def exact_backward(deriv: Derivation, env: Mapping[Any, Any]) -> dict[str, np.ndarray]:
    vals = exact_forward(deriv, env)
    grads: dict[str, np.ndarray] = {}
    for s in deriv.steps:
        g = evaluate_exact(s.result, vals)
        want = concrete(s.shape, env)
        assert g.shape == want, f"∂L/∂{s.target} evaluates to {g.shape}, its step says {want}"
        vals[grad_name(s.target)] = g
        grads[s.target] = g
    return grads


def is_exact_zero(x: sympy.Expr) -> bool:
    """Decide ``x == 0`` exactly for a number built from rationals, exp(rational) and radicals.

    Every exp(p/q) is written t**(p·D/q) with D the common denominator of the
    exponents: since e^(1/D) is transcendental, x is zero exactly when that
    rational function of t cancels to zero. (SymPy combines exp(a)·exp(b) into
    exp(a + b), so treating each exp as its own generator could miss a
    cancellation.) Anything else transcendental falls back to ``simplify``.
    """
    x = sympy.sympify(x)
    if x == 0:
        return True
    exps = [a for a in x.atoms(sympy.exp) if a.args[0].is_Rational]
    if exps or x.has(sympy.E):  # exp(1) is the constant E, not an exp node
        den = math.lcm(1, *(int(a.args[0].q) for a in exps))
        t = sympy.Dummy("t")
        x = x.xreplace({a: t ** (a.args[0] * den) for a in exps}).xreplace({sympy.E: t**den})
    if sympy.cancel(sympy.together(x)) == 0:
        return True
    if x.atoms(sympy.exp, sympy.log, sympy.Function):
        return sympy.simplify(x) == 0
    return False


# ---------------------------------------------------------------------------
# Small specs
# ---------------------------------------------------------------------------


def build(name: str, decls: Iterable[tuple[str, str, tuple, str | None]], assigns: Iterable[tuple[str, str]]) -> Model:
    """A model from (kind, name, dims, domain) declarations and (name, expr) lines."""
    net = NetworkBuilder(name)
    for kind, var, dims, domain in decls:
        if kind == "input":
            net.input(var, *dims, domain=domain)
        else:
            net.param(var, *dims)
    for var, expr in assigns:
        net.assign(var, expr)
    return net.build()


def count_result_nodes(deriv: Derivation) -> int:
    from backprop.expr.ir import count_nodes

    return sum(count_nodes(s.result) for s in deriv.steps)


def shape_is(e: Basic, shape: tuple[Basic, Basic]) -> bool:
    return tuple(shape_of(e)) == tuple(shape)


def _loop_examples() -> list[str]:
    from backprop import example_names, load

    return [n for n in example_names() if load(n).loops]


#: The bundled examples with a loop: backpropagation through time, derived, rendered and generated by
#: their own path (tests/test_codegen_through_time.py, tests/test_through_time_notes.py); the tests of
#: the flat derivation (its exact check, verify's tables, the JAX backend, the registry's PyTorch
#: reference) run on the others, :data:`FLAT_EXAMPLES`, and check that a loop is refused at the loop.
LOOP_EXAMPLES = _loop_examples()
FLAT_EXAMPLES = [n for n in __import__("backprop").example_names() if n not in LOOP_EXAMPLES]
