"""The CS230 examples' gradients equal the published formulas, in textbook form.

The formulas of the CS230 backpropagation handout (examples as columns, X is
n×m, L = (1/m)‖ŷ − y‖²) are written directly in NumPy below and compared with
the derived gradients -- recursive and fully expanded -- at random points and
sizes. The second half pins the *forms* a course prints: σ′ through the forward
value, tanh′ as 1 − A², ReLU′ as [Z > 0], (softmax(Z) − Y)/m, (p − y)/m, bias
gradients as row sums and ∂L/∂W = δ Aᵀ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sympy
from helpers import backward, build, clear_point, forward, random_sizes

import backprop
from backprop.expr import ir
from backprop.expr.evaluate import evaluate
from backprop.expr.printing import grad_symbol, text

Formulas = Callable[[dict[str, Any]], dict[str, np.ndarray]]


def _rowsum(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=1, keepdims=True)


def univariate(v: dict[str, Any]) -> dict[str, np.ndarray]:
    """ŷ = w x + b:  ∂L/∂w = (2/m) Σ (ŷ − y) x,  ∂L/∂b = (2/m) Σ (ŷ − y)."""
    m, r = v["x"].shape[1], v["yhat"] - v["y"]
    return {"w": np.array([[2 / m * np.sum(r * v["x"])]]), "b": np.array([[2 / m * np.sum(r)]])}


def multivariate(v: dict[str, Any]) -> dict[str, np.ndarray]:
    """ŷ = w X + b:  ∂L/∂w = (2/m)(ŷ − y) Xᵀ,  ∂L/∂b = (2/m) Σ (ŷ − y)."""
    m, r = v["X"].shape[1], v["yhat"] - v["y"]
    return {"w": 2 / m * r @ v["X"].T, "b": np.array([[2 / m * np.sum(r)]])}


def two_linear(v: dict[str, Any]) -> dict[str, np.ndarray]:
    """Z = W₁X + b₁, ŷ = w₂Z + b₂:  ∂L/∂W₁ = (w₂ᵀ (2/m)(ŷ − y)) Xᵀ,  ∂L/∂b₁ = row sums of w₂ᵀ(2/m)(ŷ − y)."""
    m, r = v["X"].shape[1], v["yhat"] - v["y"]
    delta = v["w2"].T @ (2 / m * r)
    return {
        "W1": delta @ v["X"].T,
        "b1": _rowsum(delta),
        "w2": 2 / m * r @ v["Z"].T,
        "b2": np.array([[2 / m * np.sum(r)]]),
    }


def two_layer_sigmoid(v: dict[str, Any]) -> dict[str, np.ndarray]:
    """A = σ(W₁X + b₁), ŷ = w₂A + b₂:  ∂L/∂W₁ = ((w₂ᵀ (2/m)(ŷ − y)) ⊙ A ⊙ (1 − A)) Xᵀ, ..."""
    m, r, a = v["X"].shape[1], v["yhat"] - v["y"], v["A"]
    delta = (v["w2"].T @ (2 / m * r)) * a * (1 - a)
    return {
        "W1": delta @ v["X"].T,
        "b1": _rowsum(delta),
        "w2": 2 / m * r @ a.T,
        "b2": np.array([[2 / m * np.sum(r)]]),
    }


PUBLISHED: dict[str, Formulas] = {
    "univariate_regression": univariate,
    "multivariate_regression": multivariate,
    "two_linear_layers": two_linear,
    "two_layer_sigmoid": two_layer_sigmoid,
}


@pytest.mark.parametrize("seed", (1, 2, 3))
@pytest.mark.parametrize("example", sorted(PUBLISHED))
def test_gradients_equal_published_formulas(example: str, seed: int) -> None:
    deriv = backprop.get_derivation(example)
    rng = np.random.default_rng([23, seed, len(example)])
    env = clear_point(deriv, random_sizes(deriv.model, rng, lo=1, hi=5), rng)
    vals = forward(deriv, env)
    published = PUBLISHED[example](vals)
    derived = backward(deriv, env)
    assert set(published) == set(deriv.params)
    for p, want in published.items():
        np.testing.assert_allclose(derived[p], want, rtol=1e-12, atol=1e-14, err_msg=f"∂L/∂{p} (recursive)")
        np.testing.assert_allclose(evaluate(deriv.expanded(p), vals), want, rtol=1e-12, atol=1e-14,
                                   err_msg=f"∂L/∂{p} (expanded)")


def test_formulas_catch_a_wrong_gradient() -> None:
    """The comparison is sharp: σ′ = σ (a classic slip) disagrees with the handout."""
    deriv = backprop.get_derivation("two_layer_sigmoid")
    rng = np.random.default_rng(0)
    vals = forward(deriv, clear_point(deriv, {"n": 2, "k": 3, "m": 4}, rng))
    good = two_layer_sigmoid(vals)
    m = vals["X"].shape[1]
    slip = ((vals["w2"].T @ (2 / m * (vals["yhat"] - vals["y"]))) * vals["A"]) @ vals["X"].T
    assert not np.allclose(good["W1"], slip, rtol=1e-6)


# ---------------------------------------------------------------------------
# Textbook forms
# ---------------------------------------------------------------------------


def _sym(deriv: backprop.Derivation, name: str) -> sympy.MatrixSymbol:
    return deriv.model.symbol(name) if name in deriv.model.names() else deriv.equation(name).symbol


def _d(deriv: backprop.Derivation, name: str) -> Any:
    return grad_symbol(name, ir.shape_of(_sym(deriv, name)))


def test_weight_gradient_is_delta_times_input_transposed() -> None:
    """∂L/∂W = δ Aᵀ for every layer (δ = ∂L/∂Z of that layer)."""
    deriv = backprop.get_derivation("deep_relu")
    for layer, below in [("1", "X"), ("2", "A1"), ("3", "A2"), ("4", "A3")]:
        want = ir.matmul(_d(deriv, "Z" + layer), ir.transpose(_sym(deriv, below)))
        assert deriv.step("W" + layer).result == want, text(deriv.step("W" + layer).result)
    d = backprop.get_derivation("two_layer_sigmoid")
    assert text(d.step("W1").result) == "∂L/∂Z Xᵀ"
    assert text(d.step("w2").result) == f"∂L/∂{text(_sym(d, 'yhat'))} Aᵀ"


def test_bias_gradients_are_row_sums() -> None:
    """A column bias b[k, 1] gets the row sums of δ; a scalar bias the sum of all entries."""
    d = backprop.get_derivation("two_layer_sigmoid")
    assert d.step("b1").result == ir.total(_d(d, "Z"), 1)
    assert d.step("b2").result == ir.total(_d(d, "yhat"))
    assert text(d.step("b1").result) == "Σₜ(∂L/∂Z)"
    assert text(d.step("b2").result) == f"Σₜ(∂L/∂{text(_sym(d, 'yhat'))})"


def test_sigmoid_derivative_through_forward_value() -> None:
    """σ′(Z) is written A ⊙ (1 − A), with A = σ(Z) already computed."""
    d = backprop.get_derivation("two_layer_sigmoid")
    a = _sym(d, "A")
    result = d.step("Z").result
    assert not any(isinstance(n, ir.OpNode) and n.op.name == "sigmoid" for n in sympy.preorder_traversal(result))
    assert ir.sub(sympy.Integer(1), a) in set(sympy.preorder_traversal(result))
    assert "A ⊙ (1 − A)" in text(result)


def _tanh_net() -> backprop.Derivation:
    model = build(
        "tanh_net",
        [("input", "X", ("n", "m"), None), ("input", "y", (1, "m"), None),
         ("param", "W1", ("k", "n"), None), ("param", "b1", ("k", 1), None),
         ("param", "w2", (1, "k"), None), ("param", "b2", (), None)],
        [("A", "tanh(W1 @ X + b1)"), ("yhat", "w2 @ A + b2"), ("loss", "sum((yhat - y)**2) / m")],
    )
    return backprop.backpropagate(model)


def test_tanh_derivative_is_one_minus_square() -> None:
    d = _tanh_net()
    a = _sym(d, "A")
    assert d.step("Z").result == ir.mul(_d(d, "A"), ir.sub(sympy.Integer(1), ir.power(a, sympy.Integer(2))))
    assert text(d.step("Z").result) == "∂L/∂A ⊙ (1 − A²)"


def test_relu_derivative_is_indicator() -> None:
    d = backprop.get_derivation("deep_relu")
    for k in "123":
        z = _sym(d, "Z" + k)
        assert d.step("Z" + k).result == ir.mul(_d(d, "A" + k), ir.node("step", z))
    assert text(d.step("Z1").result) == "∂L/∂A₁ ⊙ [Z₁ > 0]"


@pytest.mark.parametrize("example,z", [("mlp_softmax", "Z2"), ("deep_relu", "Z4")])
def test_softmax_cross_entropy_is_p_minus_y_over_m(example: str, z: str) -> None:
    """With one-hot labels, −Σ Y ⊙ log softmax(Z) / m gives ∂L/∂Z = (softmax(Z) − Y)/m."""
    d = backprop.get_derivation(example)
    zs, y, m = _sym(d, z), d.model.symbol("Y"), d.model.dims["m"]
    want = ir.div(ir.sub(ir.node("softmax", zs, ir.axes_attr(0)), y), m)
    assert d.step(z).result == want, text(d.step(z).result)
    assert text(d.step(z).result) == f"(softmax({text(zs)}) − Y)/m"


def test_explicit_log_of_softmax_also_gives_p_minus_y() -> None:
    """P = softmax(Z), L = −Σ Y ⊙ log P / m: the chain through log and softmax collapses to (P − Y)/m."""
    model = build(
        "softmax_log",
        [("input", "X", ("n", "m"), None), ("input", "Y", ("c", "m"), "onehot"),
         ("param", "W", ("c", "n"), None), ("param", "b", ("c", 1), None)],
        [("P", "softmax(W @ X + b, axis=0)"), ("loss", "-sum(Y * log(P)) / m")],
    )
    d = backprop.backpropagate(model)
    assert d.step("Z").result == ir.div(ir.sub(model.symbol("P"), model.symbol("Y")), model.dims["m"])
    assert text(d.step("Z").result) == "(P − Y)/m"


def test_sigmoid_binary_cross_entropy_is_p_minus_y_over_m() -> None:
    d = backprop.get_derivation("logistic_regression")
    want = ir.div(ir.sub(_sym(d, "p"), d.model.symbol("y")), d.model.dims["m"])
    assert d.step("z").result == want, text(d.step("z").result)
    assert text(d.step("z").result) == "(p − y)/m"
    assert d.expanded("w") == ir.matmul(want, ir.transpose(d.model.symbol("X"))), text(d.expanded("w"))


def test_binary_cross_entropy_gradient_reads_prediction_minus_target() -> None:
    """∂L/∂p as notes write it: (p − y)/(m p (1 − p)), not the equal (y − p)/(m p (p − 1))."""
    d = backprop.get_derivation("logistic_regression")
    assert text(d.step("p").result) == "(p − y)/(m · p ⊙ (1 − p))"


_P, _Q, _X, _Y, _M = sympy.symbols("p q x y m", real=True)


@pytest.mark.parametrize("s", [
    (_Y - _P) / (_M * _P * (_P - 1)), (_P - 1) * (_Q - 2) * _X, 3 * (_P - 1) / (_Q - 1) ** 2,
    (_P - 1) ** 3 * (_Y - _P), -(_P - 1) * _Y,
], ids=str)
def test_orienting_differences_keeps_the_value(s: sympy.Expr) -> None:
    """Every constant-first rewrite is an identity, and leaves no difference ending in a constant."""
    from backprop.engine.simplify import _oriented

    o = _oriented(s)
    assert sympy.simplify(o - s) == 0
    for f in sympy.Mul.make_args(o):
        base = f.as_base_exp()[0]
        assert not (isinstance(base, sympy.Add) and base.as_coeff_Add()[0].is_negative), o


def test_every_param_has_an_update_rule() -> None:
    """W ← W − α ∂L/∂W for every param, in the derivation's data."""
    for example in PUBLISHED:
        d = backprop.get_derivation(example)
        for p in d.params:
            assert d.update(p) == ir.sub(d.model.symbol(p), ir.mul(d.rate, d.step(p).grad))
