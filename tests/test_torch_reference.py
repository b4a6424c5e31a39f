"""Whole networks against an independent reference: PyTorch's autograd.

The reference evaluates each model expression with torch's own functions
(``TORCH`` below: an independent implementation of every registered operation)
and differentiates with ``torch.autograd``; our derivation's gradients must
agree to float64 precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sympy
import torch
from sympy import Basic, MatrixSymbol

import derive
from derive.evaluate import evaluate
from derive.ir import OpNode, is_const
from derive.ops import REGISTRY


def _axes(e: OpNode) -> tuple[int, ...]:
    return tuple(int(a) for a in e.args[-1])


def _reduce(f: Callable[..., Any]) -> Callable[..., Any]:
    def run(e: OpNode, x: torch.Tensor) -> torch.Tensor:
        axes = _axes(e)
        return f(x).reshape(1, 1) if len(axes) == 2 else f(x, dim=axes[0], keepdim=True)

    return run


TORCH: dict[str, Callable[..., torch.Tensor]] = {
    "add": lambda e, a, b: a + b,
    "sub": lambda e, a, b: a - b,
    "mul": lambda e, a, b: a * b,
    "div": lambda e, a, b: a / b,
    "pow": lambda e, a, b: torch.pow(a, b),
    "neg": lambda e, a: -a,
    "sigmoid": lambda e, a: torch.sigmoid(a),
    "tanh": lambda e, a: torch.tanh(a),
    "step": lambda e, a: (a > 0).to(a.dtype),
    "relu": lambda e, a: torch.relu(a),
    "leaky_step": lambda e, a, s: torch.where(a > 0, torch.ones_like(a), s.expand_as(a)),
    "leaky_relu": lambda e, a, s: torch.where(a > 0, a, s * a),
    "softplus": lambda e, a: torch.nn.functional.softplus(a),
    "exp": lambda e, a: torch.exp(a),
    "log": lambda e, a: torch.log(a),
    "sqrt": lambda e, a: torch.sqrt(a),
    "sign": lambda e, a: torch.sign(a),
    "abs": lambda e, a: torch.abs(a),
    "matmul": lambda e, a, b: a @ b,
    "transpose": lambda e, a: a.T,
    "sum": _reduce(torch.sum),
    "mean": _reduce(torch.mean),
    "broadcast": lambda e, a: a.expand(*(int(d) for d in e.args[1])),
    "softmax": lambda e, a: torch.softmax(a, dim=_axes(e)[0]),
    "log_softmax": lambda e, a: torch.log_softmax(a, dim=_axes(e)[0]),
}


def test_reference_covers_every_registered_operation() -> None:
    assert set(TORCH) == set(REGISTRY)


def torch_eval(e: Basic, env: dict[str, torch.Tensor], dims: dict[sympy.Symbol, int]) -> torch.Tensor:
    if isinstance(e, MatrixSymbol):
        return env[e.name]
    if is_const(e):
        return torch.tensor([[float(e.subs(dims))]], dtype=torch.float64)
    assert isinstance(e, OpNode)
    if e.op.name == "broadcast":
        shape = tuple(int(sympy.sympify(d).subs(dims)) for d in e.args[1])
        return torch_eval(e.children[0], env, dims).expand(*shape)
    return TORCH[e.op.name](e, *(torch_eval(c, env, dims) for c in e.children))


def draw(model: derive.Model, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[sympy.Symbol, int]]:
    dims = {s: int(rng.integers(2, 6)) for s in model.dims.values()}
    values: dict[str, np.ndarray] = {}
    for d in model.decls.values():
        r, c = (int(sympy.sympify(x).subs(dims)) for x in d.shape)
        if d.domain == "onehot":
            v = np.eye(r)[rng.integers(0, r, size=c)].T
        elif d.domain == "binary":
            v = (rng.random((r, c)) > 0.5).astype(float)
        elif d.domain in ("positive", "prob"):
            v = rng.uniform(0.1, 0.9, size=(r, c))
        else:
            v = rng.normal(size=(r, c))
        values[d.name] = v
    return values, dims


@pytest.mark.parametrize("name", derive.example_names())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_derived_gradients_match_pytorch(name: str, seed: int) -> None:
    model = derive.load(name)
    d = derive.get_derivation(model)
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
