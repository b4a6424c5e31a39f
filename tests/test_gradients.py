"""Every bundled example: derived gradients equal central finite differences.

At several seeded random sizes (and with every dimension 1), inputs drawn from
their declared domains, each backward step is evaluated in order -- ``dNAME``
bound to the step that computed it -- and compared with central differences of
the loss in float64. Intermediate steps (δ of a layer) are checked too, by
holding that variable fixed and perturbing it; ``Derivation.expanded`` must
give the same numbers as the recursive form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from helpers import (
    FLAT_EXAMPLES,
    assert_close,
    backward,
    clear_point,
    concrete_shape,
    fd_gradient,
    forward,
    loss_value,
    random_sizes,
    richardson,
)

import backprop
from backprop.expr import ir
from backprop.expr.evaluate import evaluate
from backprop.expr.printing import GradSymbol

EXAMPLES = FLAT_EXAMPLES  # a loop: tests/test_through_time.py
SEEDS = (1, 2, 3)
MAX_ENTRIES = 12  # entries checked per gradient; 784-wide weights get a random subset


def _sizes(model: backprop.Model, seed: int | str) -> dict[str, int]:
    if seed == "ones":
        return {name: 1 for name in model.dims}
    return random_sizes(model, np.random.default_rng([seed, len(model.name)]), lo=1, hi=4)


def _entries(shape: tuple[int, int], rng: np.random.Generator) -> list[tuple[int, int]]:
    idx = list(np.ndindex(*shape))
    if len(idx) <= MAX_ENTRIES:
        return idx
    return [idx[i] for i in rng.choice(len(idx), MAX_ENTRIES, replace=False)]


def _loss_holding(deriv: backprop.Derivation, env: dict[Any, Any], name: str, value: np.ndarray) -> float:
    """The loss with the intermediate ``name`` set to ``value`` (its own equation skipped)."""
    vals = dict(env)
    vals[name] = value
    for eq in deriv.equations:
        if eq.name != name:
            vals[eq.name] = evaluate(eq.expr, vals)
    return float(vals[deriv.loss.name].reshape(()))


def test_examples_exist() -> None:
    assert {"univariate_regression", "two_layer_sigmoid", "mlp_softmax", "logistic_regression"} <= set(EXAMPLES)


@pytest.mark.parametrize("seed", ("ones",) + SEEDS)
@pytest.mark.parametrize("example", EXAMPLES)
def test_param_gradients_match_finite_differences(example: str, seed: int | str) -> None:
    deriv = backprop.get_derivation(example)
    sizes = _sizes(deriv.model, seed)
    rng = np.random.default_rng([7, len(example), 0 if seed == "ones" else int(seed)])
    env = clear_point(deriv, sizes, rng)
    grads = backward(deriv, env)
    assert set(deriv.params) <= set(grads), "every param gets a gradient step"
    for p in deriv.params:
        shape = concrete_shape(deriv.model, p, sizes)
        assert grads[p].shape == shape
        assert_close(p, grads[p], fd_gradient(deriv, env, p, _entries(shape, rng)))


def _one_sided(f: Callable[[float], float], h: float) -> float:
    """The right derivative at 0 of ``f``, forward differences at h and h/2 extrapolated (error O(h²))."""
    return 2 * (f(h / 2) - f(0.0)) / (h / 2) - (f(h) - f(0.0)) / h


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize("example", EXAMPLES)
def test_intermediate_gradients_match_finite_differences(example: str, seed: int) -> None:
    """Each layer's δ (∂L/∂Z, ∂L/∂A, ...) is the derivative of the loss in that value."""
    deriv = backprop.get_derivation(example)
    sizes = _sizes(deriv.model, seed)
    rng = np.random.default_rng([11, len(example), seed])
    env = clear_point(deriv, sizes, rng)
    grads = backward(deriv, env)
    vals = forward(deriv, env)
    h = 1e-5
    intermediates = [s.target for s in deriv.steps if s.kind == "intermediate"]
    assert intermediates, "every bundled example has at least one intermediate step"
    for name in intermediates:
        base = vals[name]
        fd = {}
        for idx in _entries(base.shape, rng):
            def loss_at(step: float, idx: tuple[int, ...] = idx, base: np.ndarray = base, name: str = name) -> float:
                x = base.copy()
                x[idx] += step
                return _loss_holding(deriv, env, name, x)

            fd[idx] = richardson(loss_at, h)
            right, left = _one_sided(loss_at, h), -_one_sided(lambda s, f=loss_at: f(-s), h)
            if abs(right - left) > 1e-4 * max(1.0, abs(right), abs(left)):
                # a tie in a max the entry is in (ReLU zeros under max pooling or a max over time): the loss
                # has a kink there in this value, and the derived δ must lie between its one-sided
                # derivatives (a subgradient): PyTorch's conventions, checked against torch elsewhere, pick
                # one side (max pooling: the first max takes it all) or the middle (max: ties share evenly)
                fd[idx] = float(np.clip(grads[name][idx], min(right, left), max(right, left)))
        # an exactly zero δ (a softmax over one key) is compared against the differences' rounding
        # noise, which grows with the loss
        assert_close(name, grads[name], fd, floor=1e-4 * max(1.0, abs(loss_value(deriv, env))))


@pytest.mark.parametrize("example", EXAMPLES)
def test_expanded_gradients_equal_recursive(example: str) -> None:
    """The fully expanded gradient (forward quantities only) gives the same numbers."""
    deriv = backprop.get_derivation(example)
    sizes = _sizes(deriv.model, 5)
    env = clear_point(deriv, sizes, np.random.default_rng([13, len(example)]))
    grads = backward(deriv, env)
    vals = forward(deriv, env)
    for p in deriv.params:
        expanded = deriv.expanded(p)
        assert not expanded.atoms(GradSymbol), f"∂L/∂{p} expanded still refers to a δ: {expanded}"
        got = evaluate(expanded, vals)
        assert got.shape == grads[p].shape
        np.testing.assert_allclose(got, grads[p], rtol=1e-10, atol=1e-12, err_msg=p)


@pytest.mark.parametrize("example", EXAMPLES)
def test_steps_are_ordered_and_shaped(example: str) -> None:
    """Each δ is computed once, before any step that uses it; every result has its target's shape."""
    deriv = backprop.get_derivation(example)
    targets = [s.target for s in deriv.steps]
    assert len(targets) == len(set(targets)), "each gradient is computed once"
    assert [s.target for s in deriv.steps if s.kind == "param"] == [
        t for t in targets if t in deriv.params
    ] and set(deriv.params) <= set(targets)
    seen: set[str] = set()
    for s in deriv.steps:
        uses = {g.of for g in s.result.atoms(GradSymbol)} | {g.of for g in s.recursive.atoms(GradSymbol)}
        assert uses <= seen, f"∂L/∂{s.target} uses {sorted(uses - seen)} before they are computed"
        symbol = deriv.model.symbol(s.target) if s.target in deriv.model.names() else deriv.equation(s.target).symbol
        assert tuple(ir.shape_of(s.result)) == tuple(s.shape) == tuple(ir.shape_of(symbol)), s.target
        assert s.paths and all(p.via in deriv.model.names() or p.via in {e.name for e in deriv.equations}
                               for p in s.paths)
        seen.add(s.target)
