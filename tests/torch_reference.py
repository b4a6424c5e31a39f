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
from torch.nn import functional

from backprop.expr.ir import OpNode, is_const, is_scalar


def _axes(e: OpNode) -> tuple[int, ...]:
    return tuple(int(a) for a in e.args[-1])


def _reduce(f: Callable[..., Any]) -> Callable[..., Any]:
    def run(e: OpNode, x: torch.Tensor) -> torch.Tensor:
        axes = _axes(e)
        return f(x).reshape(1, 1) if len(axes) == x.dim() else f(x, dim=axes, keepdim=True)

    return run


def _sizes(e: OpNode, k: int, dims: Mapping[sympy.Symbol, int]) -> tuple[int, ...]:
    return tuple(int(sympy.sympify(d).subs(dims)) for d in e.args[k])


def _index(e: OpNode, dims: Mapping[sympy.Symbol, int]) -> tuple[Any, ...]:
    def at(x: Basic) -> int:
        return int(sympy.sympify(x).subs(dims))
    return tuple(at(x[0]) if len(x) == 1 else slice(at(x[0]), at(x[1])) for x in e.args[-1])


def _scatter(out: torch.Tensor, at: tuple[Any, ...], g: torch.Tensor) -> torch.Tensor:
    """Zeros with ``g`` at ``at``, differentiably: a mask times ``g`` padded to the full shape."""
    out = out.clone()
    out[at] = g.reshape(out[at].shape)
    return out


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
    "softmax": lambda e, a: torch.softmax(a, dim=_axes(e)[0]),
    "log_softmax": lambda e, a: torch.log_softmax(a, dim=_axes(e)[0]),
    "einsum": lambda e, *a: _scalar_2d(torch.einsum(str(e.args[-1]), *a)),
    "permute": lambda e, a: a.permute(*_axes(e)),
    "flip": lambda e, a: a.flip(_axes(e)),
    "concat": lambda e, *a: torch.cat(a, dim=_axes(e)[0]),
    "erf": lambda e, a: torch.erf(a),
    "sin": lambda e, a: torch.sin(a),
    "cos": lambda e, a: torch.cos(a),
    "log1p": lambda e, a: torch.log1p(a),
    "expm1": lambda e, a: torch.expm1(a),
    "max": _reduce(torch.amax),
    "min": _reduce(torch.amin),
    "logsumexp": lambda e, a: (torch.logsumexp(a.reshape(-1), 0).reshape(1, 1) if len(_axes(e)) == a.dim()
                               else torch.logsumexp(a, dim=_axes(e), keepdim=True)),
    "gt": lambda e, a, b: (a > b).to(torch.float64),
    "ge": lambda e, a, b: (a >= b).to(torch.float64),
    "lt": lambda e, a, b: (a < b).to(torch.float64),
    "le": lambda e, a, b: (a <= b).to(torch.float64),
    "half_step": lambda e, a: torch.heaviside(a, torch.tensor(0.5, dtype=a.dtype)),
    "where": lambda e, c, a, b: torch.where(c != 0, a, b),
    "trace": lambda e, a: torch.trace(a).reshape(1, 1),
    "inv": lambda e, a: torch.linalg.inv(a),
    "det": lambda e, a: torch.linalg.det(a).reshape(1, 1),
    "logdet": lambda e, a: torch.logdet(a).reshape(1, 1),
    "solve": lambda e, a, b: torch.linalg.solve(a, b),
    "maximum": lambda e, a, b: torch.maximum(a, b),
    "minimum": lambda e, a, b: torch.minimum(a, b),
    "clip": lambda e, x, lo, hi: torch.clamp(x, lo, hi),
    "stop_gradient": lambda e, a: a.detach(),
    "gather": lambda e, a, i: a.index_select(_ax(e), i.long().flatten()).reshape(
        *a.shape[:_ax(e)], *i.shape, *a.shape[_ax(e) + 1:]),
    "pick": lambda e, a, i: torch.gather(a, _ax(e), i.long()),
    "add_at": lambda e, a, i, v: a.scatter_add(_ax(e), i.long(), v.expand(i.shape).to(a.dtype)),
}
def _first(e: OpNode, x: torch.Tensor) -> torch.Tensor:
    """A conv/pool operand with its examples axis (the node's last attribute) first, as torch takes it."""
    return x if int(e.args[-1]) == 0 else x.movedim(-1, 0)


def _back(e: OpNode, x: torch.Tensor) -> torch.Tensor:
    return x if int(e.args[-1]) == 0 else x.movedim(0, -1)


def _conv(nd: int) -> dict[str, Callable[..., torch.Tensor]]:
    """conv{nd}d and its two adjoints, by torch.nn.functional and torch.nn.grad."""
    conv = getattr(functional, f"conv{nd}d")
    grad = torch.nn.grad

    def attrs(e: OpNode) -> tuple[int, int]:
        return int(e.args[-3]), int(e.args[-2])

    def input_size(e: OpNode, g: torch.Tensor, w: torch.Tensor) -> list[int]:
        s, p = attrs(e)
        g = _first(e, g)
        return [g.shape[0], w.shape[1], *(s * (o - 1) + k - 2 * p for o, k in zip(g.shape[2:], w.shape[2:]))]

    def filter_size(e: OpNode, x: torch.Tensor, g: torch.Tensor) -> list[int]:
        s, p = attrs(e)
        x, g = _first(e, x), _first(e, g)
        return [g.shape[1], x.shape[1], *(n + 2 * p - s * (o - 1) for n, o in zip(x.shape[2:], g.shape[2:]))]

    return {
        f"conv{nd}d": lambda e, x, w: _back(e, conv(_first(e, x), w, stride=attrs(e)[0], padding=attrs(e)[1])),
        f"conv{nd}d_input": lambda e, g, w: _back(e, getattr(grad, f"conv{nd}d_input")(
            input_size(e, g, w), w, _first(e, g), stride=attrs(e)[0], padding=attrs(e)[1])),
        f"conv{nd}d_filter": lambda e, x, g: getattr(grad, f"conv{nd}d_weight")(
            _first(e, x), filter_size(e, x, g), _first(e, g), stride=attrs(e)[0], padding=attrs(e)[1]),
    }


def _pool_grad(pool: Callable[..., torch.Tensor], e: OpNode, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The pool's adjoint by autograd: δ pulled back through torch's own pooling of ``x``."""
    size, stride = int(e.args[-3]), int(e.args[-2])
    xx = _first(e, x).detach().requires_grad_(True)
    with torch.enable_grad():
        y = pool(xx, size, stride)
        (out,) = torch.autograd.grad(y, xx, _first(e, g))
    return _back(e, out)


def _spread_input(e: OpNode, g: torch.Tensor) -> torch.Tensor:
    size, stride = int(e.args[-3]), int(e.args[-2])
    gf = _first(e, g)
    shape = (*gf.shape[:2], *(stride * (o - 1) + size for o in gf.shape[2:]))
    return _back(e, torch.zeros(shape, dtype=torch.float64))


def _strided(e: OpNode, ndim: int) -> tuple[slice, ...]:
    """Every stride-th entry along a dilation's (or subsampling's) axes: (stride, axes) are its attributes."""
    stride, axes = int(e.args[1]), {int(k) for k in e.args[2]}
    return tuple(slice(None, None, stride) if k in axes else slice(None) for k in range(ndim))


def _dilate(e: OpNode, a: torch.Tensor) -> torch.Tensor:
    stride, axes = int(e.args[1]), {int(k) for k in e.args[2]}
    out = torch.zeros([(n - 1) * stride + 1 if k in axes else n for k, n in enumerate(a.shape)], dtype=a.dtype)
    out[_strided(e, a.dim())] = a
    return out


def _im2col(e: OpNode, x: torch.Tensor) -> torch.Tensor:
    """Every window of x by torch's unfold, laid out (c, k..., o..., m) as the generated code keeps them."""
    stride, pad, batch, *kernel = (int(v) for v in e.args[1:])
    nd = len(kernel)
    x = functional.pad(x.movedim(batch, 0), (pad,) * (2 * nd))  # (m, c, s...), the spatial axes padded
    for a, k in enumerate(kernel):
        x = x.unfold(2 + a, k, stride)  # (m, c, o..., k...)
    return x.permute(1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd), 0)


def _conv_windows(e: OpNode, cols: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    nd = w.dim() - 2
    return torch.tensordot(w, cols, dims=(list(range(1, nd + 2)), list(range(nd + 1)))).movedim(-1, int(e.args[-1]))


def _corr_windows(e: OpNode, cols: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    g = g.movedim(int(e.args[-1]), -1)  # (f, o..., m)
    nd = g.dim() - 2
    return torch.tensordot(g, cols, dims=(list(range(1, nd + 2)), list(range(nd + 1, 2 * nd + 2))))


TORCH.update({
    "im2col": _im2col,
    "conv_windows": _conv_windows,
    "corr_windows": _corr_windows,
    # handed maxpool(X), which torch's own pooling of X finds again
    "max_pool2d_route_at": lambda e, g, x, p: _pool_grad(functional.max_pool2d, e, g, x),
    "dilate": _dilate,
    "subsample": lambda e, a: a[_strided(e, a.dim())],
    **_conv(1), **_conv(2),
    "max_pool2d": lambda e, x: _back(e, functional.max_pool2d(_first(e, x), int(e.args[-3]), int(e.args[-2]))),
    "max_pool2d_route": lambda e, g, x: _pool_grad(functional.max_pool2d, e, g, x),
    "avg_pool2d": lambda e, x: _back(e, functional.avg_pool2d(_first(e, x), int(e.args[-3]), int(e.args[-2]))),
    "avg_pool2d_spread": lambda e, g: _pool_grad(functional.avg_pool2d, e, g, _spread_input(e, g)),
})

#: Rows whose torch form needs the dims' sizes (a shape or bounds in an attribute).
SIZED: dict[str, Callable[..., torch.Tensor]] = {
    "broadcast": lambda e, dims, a: a.expand(*_sizes(e, 1, dims)),
    "reshape": lambda e, dims, a: a.reshape(*_sizes(e, 1, dims)),
    "slice": lambda e, dims, a: _scalar_2d(a[_index(e, dims)]),
    "embed": lambda e, dims, g: _scatter(torch.zeros(_sizes(e, 1, dims), dtype=torch.float64), _index(e, dims), g),
    "onehot": lambda e, dims, y: functional.one_hot(y.long().squeeze(_ax(e)), _int(e.args[1], dims)).movedim(
        -1, _ax(e)).to(torch.float64),
    "scatter": lambda e, dims, g, i: torch.zeros(*g.shape[:_ax(e)], _int(e.args[2], dims), *g.shape[_ax(e) + i.dim():],
                                                 dtype=torch.float64).index_add(
        _ax(e), i.long().flatten(), g.reshape(*g.shape[:_ax(e)], -1, *g.shape[_ax(e) + i.dim():])),
    "eye": lambda e, dims: torch.eye(int(sympy.sympify(e.args[0]).subs(dims)), dtype=torch.float64),
    "ones": lambda e, dims: torch.ones(_sizes(e, 0, dims), dtype=torch.float64),
    "zeros": lambda e, dims: torch.zeros(_sizes(e, 0, dims), dtype=torch.float64),
}


def _ax(e: Any) -> int:
    """The one axis a labels row works along (its last attribute)."""
    return int(e.args[-1][0])


def _int(x: Any, dims: Mapping[sympy.Symbol, int]) -> int:
    return int(sympy.sympify(x).subs(dims))


def _scalar_2d(x: torch.Tensor) -> torch.Tensor:
    """A 0-d result as the 1×1 a scalar is in the model."""
    return x.reshape(1, 1) if x.dim() == 0 else x


def torch_eval(e: Basic, env: Mapping[str, torch.Tensor], dims: Mapping[sympy.Symbol, int]) -> torch.Tensor:
    """``e`` evaluated with torch; ``env`` maps variable names to (r, c) float64 tensors."""
    if isinstance(e, MatrixSymbol):
        return env[e.name]
    if is_const(e):
        return torch.tensor([[float(e.subs(dims))]], dtype=torch.float64)
    assert isinstance(e, OpNode)
    args = [torch_eval(c, env, dims) for c in e.children]
    if len(e.shape) == 1:  # a scalar (a 1×1 value) goes anywhere: against a vector, as the one number it is
        args = [a.reshape(()) if is_scalar(c) else a for a, c in zip(args, e.children)]
    if e.op.name in SIZED:
        return SIZED[e.op.name](e, dims, *args)
    return TORCH[e.op.name](e, *args)


def torch_loss_and_grads(
    model: Any, values: Mapping[str, Any], dims: Mapping[sympy.Symbol, int]
) -> tuple[float, dict[str, np.ndarray]]:
    """The loss and every param's gradient by torch autograd, in float64, each gradient (r, c)."""
    tenv: dict[str, torch.Tensor] = {}
    for d in model.decls.values():
        shape = tuple(int(sympy.sympify(x).subs(dims)) for x in d.shape)
        v = torch.tensor(np.asarray(values[d.name], dtype=np.float64).reshape(shape), dtype=torch.float64)
        tenv[d.name] = v.requires_grad_(d.kind == "param")
    for a in model.assigns:
        tenv[a.name] = torch_eval(a.expr, tenv, dims)
    loss = tenv[model.loss.name].sum()
    params = [d.name for d in model.decls.values() if d.kind == "param"]
    grads = torch.autograd.grad(loss, [tenv[p] for p in params], allow_unused=True)
    out = {p: (np.zeros(tuple(tenv[p].shape)) if g is None else g.numpy()) for p, g in zip(params, grads)}
    return float(loss.detach()), out
