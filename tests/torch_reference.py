"""PyTorch as an independent reference for every registered operation.

``TORCH`` evaluates each registry row with torch's own functions (an
implementation written without our forms), ``torch_eval`` evaluates a model
expression with it, and ``torch_loss_and_grads`` differentiates a model's
forward equations with ``torch.autograd``. Shared by the whole-network test
(test_torch_reference.py) and the differential fuzzer (test_fuzz_codegen.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import sympy
import torch
from sympy import Basic, MatrixSymbol

from backprop.expr.ir import OpNode, is_const


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


def torch_eval(e: Basic, env: Mapping[str, torch.Tensor], dims: Mapping[sympy.Symbol, int]) -> torch.Tensor:
    """``e`` evaluated with torch; ``env`` maps variable names to (r, c) float64 tensors."""
    if isinstance(e, MatrixSymbol):
        return env[e.name]
    if is_const(e):
        return torch.tensor([[float(e.subs(dims))]], dtype=torch.float64)
    assert isinstance(e, OpNode)
    if e.op.name == "broadcast":
        shape = tuple(int(sympy.sympify(d).subs(dims)) for d in e.args[1])
        return torch_eval(e.children[0], env, dims).expand(*shape)
    return TORCH[e.op.name](e, *(torch_eval(c, env, dims) for c in e.children))


def torch_loss_and_grads(
    model: Any, values: Mapping[str, Any], dims: Mapping[sympy.Symbol, int]
) -> tuple[float, dict[str, np.ndarray]]:
    """The loss and every param's gradient by torch autograd, in float64, each gradient (r, c)."""
    tenv: dict[str, torch.Tensor] = {}
    for d in model.decls.values():
        r, c = (int(sympy.sympify(x).subs(dims)) for x in d.shape)
        v = torch.tensor(np.asarray(values[d.name], dtype=np.float64).reshape(r, c), dtype=torch.float64)
        tenv[d.name] = v.requires_grad_(d.kind == "param")
    for a in model.assigns:
        tenv[a.name] = torch_eval(a.expr, tenv, dims)
    loss = tenv[model.loss.name].sum()
    params = [d.name for d in model.decls.values() if d.kind == "param"]
    grads = torch.autograd.grad(loss, [tenv[p] for p in params], allow_unused=True)
    out = {p: (np.zeros(tuple(tenv[p].shape)) if g is None else g.numpy()) for p, g in zip(params, grads)}
    return float(loss.detach()), out
