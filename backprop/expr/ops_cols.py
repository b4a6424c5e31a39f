"""Rows of the registry that only generated code uses: a convolution's windows gathered once, and a
max pooling's route that is handed the pooled value.

A convolution's forward pass and its filter gradient both read every window of the same input:
``conv2d(X, W)`` multiplies them by the filters, ``corr2d(X, δ)`` by δ. Each helper of
:mod:`backprop.expr.ops_conv` gathers them (an im2col copy, c·k·k times the output's size) for its
own product, so a NumPy module would gather them twice, the second time into freshly faulted-in
memory in the backward pass. The pass :mod:`backprop.codegen.windows` rewrites the two into
``conv_windows(im2col(X), W)`` and ``corr_windows(im2col(X), δ)``, and common-subexpression
elimination then computes ``im2col(X)`` once, in the forward pass, kept for the backward one (as a
hand-written im2col layer keeps its columns). Likewise ``route_max`` recomputes the pooling it
routes through unless it is handed the pooled value the forward pass computed: ``route_max_at``.

None of these is in the spec language or a derivation: they have no adjoint (nothing differentiates
generated code), and the notes keep writing ``conv2d``, ``corr2d`` and ``route_max``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import sympy

from backprop.expr.conv_index import join_layout as _join
from backprop.expr.conv_index import split_layout as _split
from backprop.expr.ir import OpNode, Shape
from backprop.expr.ops_conv import MAX_POOL_SOURCE, ROUTE_AT_SOURCE, WINDOWS_SOURCE, output_size
from backprop.expr.ops_row import Op

# ---------------------------------------------------------------------------
# The helpers, as the generated module carries them
# ---------------------------------------------------------------------------

_IM2COL = '''\
def _im2col(x, kernel, stride, pad, batch):
    """Every window of x copied once into one contiguous array (c, k..., o..., m): the convolution and
    its filter gradient each read it as a matrix (c·k·k rows, a run of examples in each) without a copy."""
    nd = len(kernel)
    win = _windows(x, kernel, stride, pad, batch)  # (c, o..., m, k...), a view
    return np.ascontiguousarray(win.transpose((0, *range(nd + 2, 2 * nd + 2), *range(1, nd + 2))))
'''

_CONV_WINDOWS = '''\
def _conv_windows(cols, w, batch):
    """The convolution from the gathered windows (see _im2col): one matrix product with the filters."""
    nd = w.ndim - 2
    out = w.reshape(w.shape[0], -1) @ cols.reshape(w[0].size, -1)
    return np.moveaxis(out.reshape(w.shape[:1] + cols.shape[nd + 1:]), -1, batch)
'''

_CORR_WINDOWS = '''\
def _corr_windows(cols, g, batch):
    """∂L/∂W from the gathered windows (see _im2col): one matrix product with δ over positions and
    examples, taken as cols δᵀ and transposed after: its rows are the c·k·k window entries rather than
    the f filters, which BLAS splits across threads better."""
    g = np.moveaxis(g, batch, -1)  # (f, o..., m)
    nd = g.ndim - 2
    rows = cols.reshape(-1, g[0].size) @ g.reshape(g.shape[0], -1).T
    return rows.T.reshape(g.shape[:1] + cols.shape[:nd + 1])
'''

_DEFS: dict[str, Any] = {"np": np}
for _src in (WINDOWS_SOURCE, MAX_POOL_SOURCE, ROUTE_AT_SOURCE, _IM2COL, _CONV_WINDOWS, _CORR_WINDOWS):
    exec(compile(_src, "<backprop.expr.ops_cols>", "exec"), _DEFS)  # noqa: S102 -- our own helper source


def _ints(e: OpNode) -> tuple[int, ...]:
    return tuple(int(v) for v in e.attrs)


def _im2col_eval(x: Any, e: OpNode) -> Any:
    stride, pad, batch, *kernel = _ints(e)
    return _DEFS["_im2col"](np.asarray(x), tuple(kernel), stride, pad, batch)


def _run(name: str) -> Callable[..., Any]:
    """Evaluate a row from its helper: operands first, then the node's attributes as ints."""
    fn = _DEFS[name]
    return lambda *a: fn(*(np.asarray(x) for x in a[:-1]), *_ints(a[-1]))


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


def _im2col_shape(shapes: list[Shape], e: OpNode) -> Shape:
    (x,) = shapes
    stride, pad, batch, *kernel = _ints(e)
    c, spatial, m = _split(x, batch)
    out = tuple(output_size(s, k, stride, pad) for s, k in zip(spatial, kernel))
    return (c, *(sympy.Integer(k) for k in kernel), *out, m)


def _conv_windows_shape(shapes: list[Shape], e: OpNode) -> Shape:
    cols, w = shapes
    nd = len(w) - 2
    return _join(w[0], tuple(cols[nd + 1:2 * nd + 1]), cols[-1], _ints(e)[0])


def _corr_windows_shape(shapes: list[Shape], e: OpNode) -> Shape:
    cols, g = shapes
    nd = len(g) - 2
    f, _, _ = _split(g, _ints(e)[0])
    return (f, *cols[:nd + 1])


# ---------------------------------------------------------------------------
# Forms: calls to the helpers, and how a comment in the generated code reads them
# ---------------------------------------------------------------------------


def _form(text_name: str, latex_name: str) -> tuple[Any, Any]:
    def form(latex: bool) -> Any:
        def f(p: Any, e: OpNode) -> str:
            args = ", ".join(p.operand(c, 0) for c in e.children)
            return rf"\operatorname{{{latex_name}}}\left({args}\right)" if latex else f"{text_name}({args})"
        return f

    return form(True), form(False)


def _im2col_text(latex: bool) -> Any:
    def f(p: Any, e: OpNode) -> str:
        stride, pad, _, *kernel = _ints(e)
        parts = [("\\times " if latex else "×").join(map(str, kernel))]
        parts += ([f"s={stride}"] if stride != 1 else []) + ([f"p={pad}"] if pad else [])
        x = p.operand(e.children[0], 0)
        if latex:
            tag = r",\,".join(parts)
            return rf"\operatorname{{im2col}}_{{{tag}}}\left({x}\right)"
        return f"im2col[{', '.join(parts)}]({x})"
    return f


def _call(helper: str, names: tuple[str, ...]) -> Any:
    def form(p: Any, e: OpNode) -> str:
        return f"{helper}({', '.join([p.operand(c, 0) for c in e.children] + [f'{n}={v}' for n, v in zip(names, _ints(e))])})"
    return form


def _im2col_call(p: Any, e: OpNode) -> str:
    stride, pad, batch, *kernel = _ints(e)
    kernel_code = f"({', '.join(map(str, kernel))}{',' if len(kernel) == 1 else ''})"
    return f"_im2col({p.operand(e.children[0], 0)}, {kernel_code}, stride={stride}, pad={pad}, batch={batch})"


_CONV_L, _CONV_T = _form("conv_windows", "conv")
_CORR_L, _CORR_T = _form("corr_windows", "corr")
_ROUTE_L, _ROUTE_T = _form("route_max_at", r"route^{\max}")

#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "im2col", 1, _im2col_shape, vjps=(None,), rules=("the windows of a convolution's input, gathered",),
        latex=_im2col_text(True), text=_im2col_text(False), numpy=_im2col_call, np_eval=_im2col_eval,
        sym_eval=_im2col_eval, numpy_helper=_IM2COL, shared_helpers=(WINDOWS_SOURCE,),
        attrs=("stride", "padding", "batch", "kernel"), windowed=True,
        doc="every window of X in one contiguous array (c, k…, o…, m): generated code only",
    ),
    Op(
        "conv_windows", 2, _conv_windows_shape, vjps=(None, None), rules=("a convolution from its gathered windows",) * 2,
        latex=_CONV_L, text=_CONV_T, numpy=_call("_conv_windows", ("batch",)), np_eval=_run("_conv_windows"),
        sym_eval=_run("_conv_windows"), numpy_helper=_CONV_WINDOWS, attrs=("batch",), windowed=True,
        doc="conv2d(X, W) as conv_windows(im2col(X), W): generated code only",
    ),
    Op(
        "corr_windows", 2, _corr_windows_shape, vjps=(None, None), rules=("a filter gradient from gathered windows",) * 2,
        latex=_CORR_L, text=_CORR_T, numpy=_call("_corr_windows", ("batch",)), np_eval=_run("_corr_windows"),
        sym_eval=_run("_corr_windows"), numpy_helper=_CORR_WINDOWS, attrs=("batch",), windowed=True,
        doc="corr2d(X, δ) as corr_windows(im2col(X), δ): generated code only",
    ),
    Op(
        "max_pool2d_route_at", 3, lambda shapes, e: shapes[1], vjps=(None, None, None),
        rules=("the adjoint of max_pool2d",) * 3,
        latex=_ROUTE_L, text=_ROUTE_T, numpy=_call("_max_pool_route_at", ("size", "stride", "batch")),
        np_eval=_run("_max_pool_route_at"), sym_eval=_run("_max_pool_route_at"), numpy_helper=ROUTE_AT_SOURCE,
        attrs=("size", "stride", "batch"), windowed=True,
        doc="route_max(δ, X) handed maxpool(X) as its third operand: generated code only",
    ),
)
