"""Variables used more than once get every contribution; derived sizes grow linearly.

Tied weights, a residual connection, a param in both a layer and the loss's
regularizer, and a param used twice in one equation: each Step holds one Path
per use, with the right ``via``, and the summed gradient matches central finite
differences. Deep ReLU perceptrons built programmatically show no expression
swell: the total size of all backward results is a linear function of depth.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from helpers import assert_close, backward, build, clear_point, count_result_nodes, fd_gradient, forward, random_sizes

import backprop
from backprop.expr.evaluate import evaluate
from backprop.expr.ir import count_nodes

X_NM = ("input", "X", ("n", "m"), None)

TIED = build(
    "tied",
    [X_NM, ("input", "Y", ("n", "m"), None), ("param", "W", ("n", "n"), None), ("param", "b", ("n", 1), None)],
    [("A1", "tanh(W @ X + b)"), ("A2", "W @ A1"), ("loss", "sum((A2 - Y)**2) / m")],
)
RESIDUAL = build(
    "residual",
    [X_NM, ("input", "y", (1, "m"), None),
     ("param", "W1", ("n", "n"), None), ("param", "b1", ("n", 1), None),
     ("param", "W2", ("n", "n"), None), ("param", "b2", ("n", 1), None), ("param", "w3", (1, "n"), None)],
    [("A1", "relu(W1 @ X + b1)"), ("A2", "relu(W2 @ A1 + b2) + A1"), ("loss", "sum((w3 @ A2 - y)**2) / m")],
)
REGULARIZED = build(
    "regularized",
    [X_NM, ("input", "Y", ("c", "m"), "onehot"), ("input", "lam", (), None),
     ("param", "W1", ("h", "n"), None), ("param", "b1", ("h", 1), None), ("param", "W2", ("c", "h"), None)],
    [("A1", "sigmoid(W1 @ X + b1)"),
     ("loss", "-sum(Y * log_softmax(W2 @ A1, axis=0)) / m + lam * sum(W1**2)")],
)
SQUARED = build(
    "squared",
    [X_NM, ("input", "Y", ("n", "m"), None), ("param", "W", ("n", "n"), None)],
    [("loss", "sum((W @ (W @ X) - Y)**2) / m")],
)
MULTI = {"tied": TIED, "residual": RESIDUAL, "regularized": REGULARIZED, "squared": SQUARED}

#: (model, variable) -> the equations its Paths come through, one entry per use.
EXPECTED_VIA = {
    ("tied", "W"): ["A2", "Z1"],  # W A₁ and the lifted pre-activation W X + b
    ("tied", "b"): ["Z1"],
    ("residual", "A1"): ["A2", "Z2"],  # the skip connection and the second layer
    ("regularized", "W1"): ["Z1", "loss"],  # the layer and the regularizer λ Σ W₁²
    ("squared", "W"): ["loss", "loss"],  # two uses in one equation: two paths
}


def _via(deriv: backprop.Derivation, name: str) -> Counter[str]:
    return Counter(p.via for p in deriv.step(name).paths)


def _residual_inner(deriv: backprop.Derivation) -> str:
    """The name the chain rule gave the residual block's pre-activation W₂A₁ + b₂."""
    return next(e.name for e in deriv.equations if e.lifted and "W2" in {s.name for s in e.expr.free_symbols})


@pytest.mark.parametrize("model,var", sorted(EXPECTED_VIA), ids=[f"{m}-{v}" for m, v in sorted(EXPECTED_VIA)])
def test_one_path_per_use(model: str, var: str) -> None:
    deriv = backprop.backpropagate(MULTI[model])
    want = Counter(EXPECTED_VIA[(model, var)])
    if model == "residual":  # whatever the lifted pre-activation is called
        want = Counter(_residual_inner(deriv) if v == "Z2" else v for v in want.elements())
    assert _via(deriv, var) == want
    for p in deriv.step(var).paths:
        assert p.rules, f"every path of ∂L/∂{var} cites the rules it applied"


def test_paths_sum_to_the_step() -> None:
    """The recursive gradient is the sum of the paths' contributions (numerically)."""
    deriv = backprop.backpropagate(TIED)
    env = clear_point(deriv, {"n": 3, "m": 4}, np.random.default_rng(5))
    grads = backward(deriv, env)
    vals = forward(deriv, env) | {"d" + k: v for k, v in grads.items()}
    total = sum(evaluate(p.expr, vals) for p in deriv.step("W").paths)
    np.testing.assert_allclose(total, grads["W"], rtol=1e-12)


@pytest.mark.parametrize("seed", (1, 2))
@pytest.mark.parametrize("model", sorted(MULTI))
def test_multi_path_gradients_match_finite_differences(model: str, seed: int) -> None:
    deriv = backprop.backpropagate(MULTI[model])
    rng = np.random.default_rng([29, seed, len(model)])
    sizes = random_sizes(deriv.model, rng, lo=2, hi=4)
    env = clear_point(deriv, sizes, rng)
    if "lam" in env:
        env["lam"] = np.array([[0.7]])
    grads = backward(deriv, env)
    vals = forward(deriv, env)
    for p in deriv.params:
        assert_close(p, grads[p], fd_gradient(deriv, env, p))
        np.testing.assert_allclose(evaluate(deriv.expanded(p), vals), grads[p], rtol=1e-10, atol=1e-12,
                                   err_msg=f"∂L/∂{p} expanded")


# ---------------------------------------------------------------------------
# No expression swell
# ---------------------------------------------------------------------------


def relu_mlp(depth: int, residual: bool = False) -> backprop.Model:
    """``depth`` ReLU layers (optionally with skip connections), then softmax cross-entropy."""
    decls = [X_NM, ("input", "Y", ("c", "m"), "onehot")]
    assigns = []
    prev, rows = "X", "n"
    for i in range(1, depth + 1):
        decls += [("param", f"W{i}", ("h", rows), None), ("param", f"b{i}", ("h", 1), None)]
        skip = f" + {prev}" if residual and rows == "h" else ""
        assigns.append((f"A{i}", f"relu(W{i} @ {prev} + b{i}){skip}"))
        prev, rows = f"A{i}", "h"
    decls += [("param", "Wout", ("c", "h"), None), ("param", "bout", ("c", 1), None)]
    assigns.append(("loss", f"-sum(Y * log_softmax(Wout @ {prev} + bout, axis=0)) / m"))
    return build(f"mlp{depth}", decls, assigns)


@pytest.mark.parametrize("residual", (False, True), ids=("plain", "residual"))
def test_derived_size_grows_linearly_with_depth(residual: bool) -> None:
    depths = np.array([5, 10, 20, 40])
    derivs = [backprop.backpropagate(relu_mlp(int(d), residual)) for d in depths]
    sizes = np.array([count_result_nodes(d) for d in derivs], dtype=float)
    slope, intercept = np.polyfit(depths, sizes, 1)
    residuals = sizes - (slope * depths + intercept)
    assert np.max(np.abs(residuals)) <= 0.02 * sizes.max(), f"not linear in depth: {dict(zip(depths, sizes))}"
    assert np.all(sizes <= (slope + 1) * depths + max(intercept, 0) + 1)
    assert slope < 30, f"{slope:.1f} nodes per layer"
    # and no single step grows with depth: each δ refers to the one before by name
    largest = [max(count_nodes(s.result) for s in d.steps) for d in derivs]
    assert len(set(largest)) == 1, f"largest step size changes with depth: {largest}"


def test_fifty_layer_mlp_derives() -> None:
    deriv = backprop.backpropagate(relu_mlp(50))
    assert len(deriv.params) == 102
    assert {s.target for s in deriv.steps} >= set(deriv.params)
    assert deriv.step("W1").paths[0].via == "Z1"


def test_deep_network_gradients_match_finite_differences() -> None:
    """Depth does not break correctness: an 8-layer residual ReLU network, FD-checked."""
    deriv = backprop.backpropagate(relu_mlp(8, residual=True))
    rng = np.random.default_rng(31)
    env = clear_point(deriv, {"n": 3, "h": 3, "c": 2, "m": 3}, rng)
    grads = backward(deriv, env)
    for p in ("W1", "b1", "W5", "Wout"):
        assert_close(p, grads[p], fd_gradient(deriv, env, p))
