"""At small concrete sizes, derived gradients equal SymPy's own derivatives, exactly.

For each bundled example the forward pass is evaluated on SymPy matrices --
a param entry as a symbol, inputs and other entries as rationals from their
domains -- giving the fully expanded elementwise loss as one SymPy scalar.
``sympy.diff`` of that scalar, at a random rational point, must equal the derived
gradient evaluated exactly at the same point (each ``Step.result`` in order,
``dNAME`` bound), with the difference proved zero by exact cancellation.
Each param entry in turn is the symbol; everything else is rational. For the
784-input ``mlp_softmax`` a few random entries of each param are checked. For
three small examples every param entry is a symbol at once and the difference
simplifies to zero identically.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sympy
from helpers import FLAT_EXAMPLES, exact_backward, exact_forward, exact_point, is_exact_zero, kink_distance
from test_networks import NETS

import backprop

EXAMPLES = FLAT_EXAMPLES  # a loop: its reference evaluator against finite differences and PyTorch
#: Sizes per example (dims 1–3, distinct where possible so shapes cannot be confused). None: sizes the
#: spec fixes too large for exact arithmetic -- LeNet's 28×28 images: one symbolic weight of the first
#: convolution reaches 576 ReLUs and 144 window maxima, each a Piecewise of the one before; its rows are
#: checked exactly on the small conv examples here and against torch in tests/test_conv.py.
SIZES: dict[str, dict[str, int] | None] = {
    "univariate_regression": {"m": 3},
    "multivariate_regression": {"n": 2, "m": 3},
    "two_linear_layers": {"n": 2, "k": 3, "m": 2},
    "two_layer_sigmoid": {"n": 2, "k": 2, "m": 2},
    "sigmoid_neuron": {"n": 2, "m": 2},
    "logistic_regression": {"n": 2, "m": 3},
    "mlp_softmax": {"h": 2, "m": 2},
    "deep_relu": {"n": 2, "h": 2, "c": 2, "m": 1},
    "mlp_rows": {"m": 2, "n": 2, "c": 2, "h": 2},
    "self_attention": {"d": 2, "T": 2, "m": 1},
    "multihead_attention": {"d": 2, "T": 2, "m": 1, "a": 1, "k": 1},
    "transformer_block": {"d": 2, "T": 1, "m": 1, "a": 1, "k": 1, "f": 1},
    "gated_concat": {"n": 1, "k": 1, "m": 1},
    "embedding": {"V": 2, "T": 2, "m": 1, "d": 1, "c": 2},
    "maxout": {"n": 2, "m": 2, "c": 2, "h": 1},
    "gaussian_full_cov": {"d": 2, "m": 2},
    "svm_hinge": {"n": 2, "m": 2, "c": 3},
    "embedding_bag": {"T": 2, "m": 2, "V": 3, "c": 2, "d": 1},
    "lenet": None,
    "conv_stride_pad": {"m": 1, "k": 2},
    "conv1d_text": {"T": 3, "m": 2, "V": 3, "c": 2, "d": 1, "h": 2},
}
MAX_SYMBOLIC = 3  # entries checked per param for wide params (784 columns)


def test_every_example_has_sizes() -> None:
    assert set(SIZES) == set(EXAMPLES)


def _symbolic_entries(shape: tuple[int, ...], rng: np.random.Generator) -> list[tuple[int, ...]]:
    idx = list(np.ndindex(*shape))
    if len(idx) <= 12:
        return [tuple(int(i) for i in x) for x in idx]
    return [tuple(int(i) for i in idx[k]) for k in sorted(rng.choice(len(idx), MAX_SYMBOLIC, replace=False))]


def _float_env(env: dict[Any, Any]) -> dict[Any, Any]:
    return {k: (np.array(v, dtype=float) if isinstance(v, np.ndarray) else v) for k, v in env.items()}


def _point(deriv: backprop.Derivation, sizes: dict[str, int], rng: np.random.Generator) -> dict[Any, Any]:
    """A rational point whose ReLU arguments are clear of 0 (the derivative is defined there)."""
    for _ in range(100):
        env = exact_point(deriv.model, sizes, rng)
        if kink_distance(deriv, _float_env(env)) > 1e-3:
            return env
    raise AssertionError("no rational point clear of kinks")


def _expanded_loss(deriv: backprop.Derivation, env: dict[Any, Any]) -> sympy.Expr:
    """The loss as one SymPy scalar: every forward equation evaluated, elementwise."""
    loss = exact_forward(deriv, env)[deriv.loss.name]
    assert loss.shape == (1, 1)
    return loss[0, 0]


@pytest.mark.parametrize("example", [e for e in EXAMPLES if SIZES[e] is not None])
def test_gradients_equal_sympy_diff_exactly(example: str) -> None:
    """Each param entry in turn is a symbol t; d/dt of the expanded loss equals the derived entry."""
    deriv = backprop.get_derivation(example)
    rng = np.random.default_rng([17, len(example)])
    point = _point(deriv, SIZES[example], rng)
    derived = exact_backward(deriv, point)
    t = sympy.Symbol("t", real=True)
    checked = 0
    for p in deriv.params:
        for at in _symbolic_entries(point[p].shape, rng):
            value = point[p].copy()
            value[at] = t
            loss = _expanded_loss(deriv, {**point, p: value})
            assert loss.free_symbols <= {t}
            want = sympy.diff(loss, t).xreplace({t: point[p][at]})
            got = derived[p][at]
            assert not got.free_symbols
            assert is_exact_zero(got - want), f"∂L/∂{p}{list(at)}: derived {got} but SymPy's diff gives {want}"
            checked += 1
    assert checked >= len(deriv.params)


@pytest.mark.parametrize("example", ["two_layer_sigmoid", "logistic_regression", "two_linear_layers"])
def test_all_symbolic_params_simplify_to_zero(example: str) -> None:
    """With every param entry a symbol at once, the difference simplifies to 0 identically (not just at a point)."""
    deriv = backprop.get_derivation(example)
    sizes = {name: min(n, 2) for name, n in SIZES[example].items()}
    point = _point(deriv, sizes, np.random.default_rng([19, len(example)]))
    symbolic = dict(point)
    for p in deriv.params:
        r, c = point[p].shape
        symbolic[p] = sympy.Matrix(r, c, lambda i, j, p=p: sympy.Symbol(f"{p}_{i}{j}", real=True))
    loss = _expanded_loss(deriv, symbolic)
    derived = exact_backward(deriv, symbolic)
    for p in deriv.params:
        for (i, j), s in np.ndenumerate(np.array(symbolic[p].tolist(), dtype=object)):
            assert sympy.simplify(derived[p][i, j] - sympy.diff(loss, s)) == 0, f"∂L/∂{p}[{i},{j}]"


def test_exact_comparison_can_fail() -> None:
    """The exact check distinguishes a wrong gradient (σ′ without the 1 − σ factor)."""
    x = sympy.Rational(2, 3)
    s = 1 / (1 + sympy.exp(-x))
    assert is_exact_zero(sympy.diff(1 / (1 + sympy.exp(-sympy.Symbol("t"))), "t").subs("t", x) - s * (1 - s))
    assert not is_exact_zero(sympy.diff(1 / (1 + sympy.exp(-sympy.Symbol("t"))), "t").subs("t", x) - s)


@pytest.mark.parametrize("name", sorted(NETS))
def test_small_networks_equal_sympy_diff_exactly(name: str) -> None:
    """The other activations and operations (tanh, leaky, softplus, sqrt, |·|, powers, ...) too."""
    deriv = backprop.backpropagate(backprop.parse_spec(NETS[name], path=f"<{name}>", name=name))
    rng = np.random.default_rng([43, len(name)])
    point = _point(deriv, {d: 2 for d in deriv.model.dims}, rng)
    derived = exact_backward(deriv, point)
    t = sympy.Symbol("t", real=True)
    for p in deriv.params:
        for i, j in _symbolic_entries(point[p].shape, rng)[:4]:
            value = point[p].copy()
            value[i, j] = t
            want = sympy.diff(_expanded_loss(deriv, {**point, p: value}), t).xreplace({t: point[p][i, j]})
            assert is_exact_zero(derived[p][i, j] - want), f"∂L/∂{p}[{i},{j}]: derived {derived[p][i, j]}, diff {want}"


def test_exact_zero_decides_exponentials() -> None:
    """e^(1/D) is transcendental: identities in it hold, near misses do not."""
    half, third = sympy.Rational(1, 2), sympy.Rational(1, 3)
    assert is_exact_zero(sympy.exp(half) * sympy.exp(third) - sympy.exp(half + third))
    assert is_exact_zero(sympy.exp(half) ** 2 - sympy.E)
    assert is_exact_zero(1 / (1 + sympy.exp(-half)) - sympy.exp(half) / (1 + sympy.exp(half)))
    assert not is_exact_zero(sympy.E - sympy.Rational(27183, 10000))
    assert not is_exact_zero(sympy.exp(half) * sympy.exp(third) - sympy.exp(sympy.Rational(5, 7)))
