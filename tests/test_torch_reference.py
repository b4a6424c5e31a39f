"""Whole networks against an independent reference: PyTorch's autograd.

The reference evaluates each model expression with torch's own functions
(``TORCH`` in torch_reference.py: an independent implementation of every registered operation)
and differentiates with ``torch.autograd``; our derivation's gradients must
agree to float64 precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sympy
import torch
from helpers import FLAT_EXAMPLES
from torch_reference import SIZED, TORCH, torch_eval

import backprop
from backprop.expr.evaluate import evaluate
from backprop.expr.ops import REGISTRY
from backprop.language.domains import sample


def test_reference_covers_every_registered_operation() -> None:
    assert set(TORCH) | set(SIZED) == set(REGISTRY) and not set(TORCH) & set(SIZED)


def draw(model: backprop.Model, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[sympy.Symbol, int]]:
    """Random sizes, and a value of every declaration from its domain (one-hot along its class axis)."""
    dims = {s: int(rng.integers(2, 6)) for s in model.dims.values()}
    classes = model.domains().class_axes
    values: dict[str, np.ndarray] = {}
    for d in model.decls.values():
        shape = tuple(int(sympy.sympify(x).subs(dims)) for x in d.shape)
        values[d.name] = sample(d.domain, shape, rng, classes.get(d.name, 0), {s.name: v for s, v in dims.items()})
    return values, dims


@pytest.mark.parametrize("name", FLAT_EXAMPLES)  # a loop: tests/test_codegen_through_time.py
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_derived_gradients_match_pytorch(name: str, seed: int) -> None:
    model = backprop.load(name)
    d = backprop.get_derivation(model)
    values, dims = draw(model, np.random.default_rng(seed))
    env: dict[Any, Any] = {**values, **dims}
    for eq in d.equations:
        env[eq.name] = evaluate(eq.expr, env)
    for step in d.steps:
        env["d" + step.target] = evaluate(step.result, env)

    tenv = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k in d.params) for k, v in values.items()}
    for eq in d.equations:
        tenv[eq.name] = torch_eval(eq.expr, tenv, dims)
    loss = tenv[d.loss.name].sum()
    loss.backward()
    assert float(loss.detach()) == pytest.approx(float(env[d.loss.name][0, 0]), rel=1e-12)
    for p in d.params:
        ours, ref = env["d" + p], tenv[p].grad.numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12, err_msg=f"{name}: ∂L/∂{p}")
