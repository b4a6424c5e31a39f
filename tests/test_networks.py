"""Whole small networks through every other activation and operation.

tanh, leaky_relu with a learnable (param) and a fixed slope, softplus, exp,
sqrt, abs, mean along each axis, softmax with an explicit log, softmax along
rows, division (by data and by a param-dependent denominator), transposes,
powers (constant and variable exponents, a constant base), a scalar param
scaling a matrix, a 1×m row bias and probability-valued targets: each network
is derived and every param gradient FD-checked at random sizes; the fully
expanded gradients agree with the recursive ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from helpers import assert_close, backward, clear_point, fd_gradient, forward, random_sizes

import backprop
from backprop.engine.simplify import simplify
from backprop.expr import ir
from backprop.expr.evaluate import evaluate
from backprop.expr.printing import text

NETS: dict[str, str] = {
    "tanh_mlp": """
input X[n, m]
input y[1, m]
param W1[h, n]
param b1[h, 1]
param w2[1, h]
param b2
A1 = tanh(W1 @ X + b1)
loss = mean((w2 @ A1 + b2 - y)**2)
    """,
    "leaky_learnable_slope": """
input X[n, m]
input y[1, m]
param W1[h, n]
param b1[h, 1]
param s
param w2[1, h]
A1 = leaky_relu(W1 @ X + b1, s)
loss = sum((w2 @ A1 - y)**2) / m
    """,
    "leaky_fixed_slope": """
input X[n, m]
input Y[c, m] onehot
param W1[h, n]
param W2[c, h]
A1 = leaky_relu(W1 @ X, 0.01)
loss = -sum(Y * log_softmax(W2 @ A1, axis=0)) / m
    """,
    "softplus_exp": """
input X[n, m]
input y[1, m]
param W[h, n]
param b[h, 1]
param v[1, h]
A = softplus(W @ X + b)
loss = sum(exp(-y * (v @ A))) / m
    """,
    "sqrt_abs": """
input X[n, m]
input Y[k, m]
input lam positive
param W[k, n]
loss = sum(sqrt((W @ X - Y)**2 + 1)) / m + lam * sum(abs(W))
    """,
    "mean_axes": """
input X[n, m]
input Y[k, m]
param W[k, n]
param b[1, m]
E = (W @ X + b - Y)**2
loss = sum(mean(E, axis=1)) + sum(mean(E, axis=0)) / k
    """,
    "softmax_explicit_log": """
input X[n, m]
input Y[c, m] onehot
param W[c, n]
param b[c, 1]
P = softmax(W @ X + b, axis=0)
loss = -sum(Y * log(P)) / m
    """,
    "softmax_rows": """
input X[m, n]
input T[m, c] onehot
param W[n, c]
loss = -mean(sum(T * log_softmax(X @ W, axis=1), axis=1))
    """,
    "division": """
input X[n, m]
input y[1, m]
param W[h, n]
param v[1, h]
H = (W @ X) / (1 + sum(X**2, axis=0))
loss = sum((v @ H - y)**2) / (1 + sum(W**2))
    """,
    "transposes": """
input X[n, m]
input Y[m, k]
param W[k, n]
loss = sum((X.T @ W.T - Y)**2) / m + sum((W @ W.T)**2)
    """,
    "powers": """
input S[k, m] positive
input X[n, m]
param p
param W[k, n]
param q[k, 1]
loss = sum(S ** p) / m + sum((W @ X)**3) / m + sum(2 ** q) + sum(S ** (q * q))
    """,
    "scaled_sigmoid_prob": """
input X[n, m]
input T[1, m] prob
param alpha
param w[1, n]
param b
p = sigmoid(alpha * (w @ X) + b)
loss = -mean(T * log(p) + (1 - T) * log(1 - p))
    """,
    # A cotangent smaller than its node stands for its broadcast; a broadcast operand sums its copies.
    "bias_under_mean": """
input X[n, m]
param W[k, n]
param b[k, 1]
loss = mean(W @ X + b)
    """,
    "column_times_sum": """
input X[n, m]
param b[n, 1]
param d[n, 1]
loss = sum((b + X) * d)
    """,
    "scalar_and_column": """
input X[n, m]
param b[n, 1]
param s
loss = mean(s * b + X) + sum(s + X)
    """,
    "row_param_division": """
input X[n, m]
param r[1, m]
loss = sum(X / r) + mean(r - X)
    """,
    "outer_broadcast": """
input X[n, m]
param b[n, 1]
param c[1, m]
param s
loss = sum((s * (b + c) - X)**2) + mean(b * c) + sum(mean(b + X, axis=1) ** 2)
    """,
}


def _derive(name: str) -> backprop.Derivation:
    return backprop.backpropagate(backprop.parse_spec(NETS[name], path=f"<{name}>", name=name))


@pytest.mark.parametrize("seed", (1, 2))
@pytest.mark.parametrize("name", sorted(NETS))
def test_gradients_match_finite_differences(name: str, seed: int) -> None:
    deriv = _derive(name)
    rng = np.random.default_rng([37, seed, len(name)])
    env = clear_point(deriv, random_sizes(deriv.model, rng, lo=2, hi=4), rng)
    grads = backward(deriv, env)
    for p in deriv.params:
        assert_close(p, grads[p], fd_gradient(deriv, env, p))


@pytest.mark.parametrize("name", sorted(NETS))
def test_expanded_gradients_agree(name: str) -> None:
    deriv = _derive(name)
    rng = np.random.default_rng([41, len(name)])
    env = clear_point(deriv, random_sizes(deriv.model, rng, lo=2, hi=3), rng)
    grads, vals = backward(deriv, env), forward(deriv, env)
    for p in deriv.params:
        np.testing.assert_allclose(evaluate(deriv.expanded(p), vals), grads[p], rtol=1e-10, atol=1e-12, err_msg=p)


def test_leaky_relu_forms() -> None:
    """LeakyReLU′ = [Z > 0] + s [Z ≤ 0]; the learnable slope gets Σ ∂L/∂A ⊙ Z ⊙ [Z ≤ 0]."""
    deriv = _derive("leaky_learnable_slope")
    z, s = deriv.equation("Z1").symbol, deriv.model.symbol("s")
    assert ir.node("leaky_step", z, s) in set(_nodes(deriv.step("Z1").result))
    assert deriv.step("s").shape == ir.SCALAR
    assert any(isinstance(n, ir.OpNode) and n.op.name == "sum" for n in _nodes(deriv.step("s").result))


def test_negated_right_factor_is_parenthesized() -> None:
    """vᵀ (−y ⊙ …/m), never vᵀ −y ⊙ …/m, which reads as a difference."""
    deriv = _derive("softplus_exp")
    shown = text(deriv.step("A").result)
    assert shown.startswith("vᵀ (−"), shown


def _nodes(e: object) -> list:
    return list(sympy.preorder_traversal(e))


def test_sum_over_broadcast_copies() -> None:
    """Σ(c𝟏[k×m]) counts the copies, in the chain rule's own constructor and in simplify."""
    k, m = backprop.language.parse.dim_symbol("k"), backprop.language.parse.dim_symbol("m")
    b = sympy.MatrixSymbol("b", k, 1)
    env = {"b": np.arange(1.0, 4.0).reshape(3, 1), k: 3, m: 4}
    for axis in (None, 0, 1):
        spread = ir.mul(sympy.Integer(2), ir.broadcast_to(b, (k, m)))
        direct = ir.node("sum", spread, ir.axes_attr(axis))
        want = evaluate(direct, env)
        assert evaluate(simplify(direct), env).tolist() == want.tolist(), f"simplify, axis={axis}"
        assert evaluate(ir.total(ir.broadcast_to(b, (k, m)), axis), env).tolist() == \
            evaluate(ir.node("sum", ir.broadcast_to(b, (k, m)), ir.axes_attr(axis)), env).tolist()
    assert ir.total(ir.broadcast_to(sympy.Integer(1) / m, (k, m)), 1) == ir.broadcast_to(sympy.Integer(1), (k, 1))
