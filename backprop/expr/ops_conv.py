"""Rows of the registry: convolution (``conv1d``, ``conv2d``) and pooling (``max_pool2d``, ``avg_pool2d``).

A convolution here is PyTorch's: a cross-correlation of the input ``X[c, spatial…, m]`` (examples
last, as the rest of the language; or ``X[m, c, spatial…]`` when the spec's examples axis comes
first) with filters ``W[f, c, k…]`` as PyTorch stores them, every window ``stride`` apart over the
input padded by ``padding`` zeros on each side. The output's spatial sizes are
``(s + 2p − k)/stride + 1``, and must be whole: a size that does not divide is refused at parse
time with the strides and paddings that would fit.

The adjoints are rows of their own, so that the generated code computes each in one vectorized
helper and a derivation cites each in words:

- ∂L/∂W is the correlation of the input with δ (``conv2d_filter``): every filter entry's gradient
  sums input × δ over the positions and the examples;
- ∂L/∂X is the full convolution of δ with the flipped filters (``conv2d_input``): δ dilated by
  the stride (zeros between its entries), the filters turned 180° in space with their filter and
  channel axes swapped, and the padding cropped off. The helper computes it as col2im: per filter
  offset, that offset's share ``W[:, :, offset]ᵀδ`` added back where the windows read it, one
  strided slice;
- max pooling routes δ to each window's maximum (the first in row-major order on a tie, as
  PyTorch's CPU kernel does); average pooling spreads it evenly over the window.

Every helper is written once, as the source the generated module carries, and evaluated from that
same source here (on float arrays and on object arrays of exact SymPy numbers alike). A JAX module
carries the forms in :mod:`backprop.expr.conv_jax` where these write in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.conv_index import attr_ints as _attrs
from backprop.expr.conv_index import (
    avg_pool_index,
    avg_pool_spread_index,
    conv_filter_index,
    conv_index,
    conv_input_index,
    max_pool_route_index,
)
from backprop.expr.conv_index import join_layout as _join
from backprop.expr.conv_index import split_layout as _split
from backprop.expr.conv_jax import (
    CONV_INPUT_JAX,
    MAX_POOL_JAX,
    MAX_POOL_ROUTE_JAX,
    OFFSETS_JAX,
    SCATTER_JAX,
    WINDOWS_JAX,
)
from backprop.expr.ir import OpNode, Shape, fmt_shape
from backprop.expr.ops_row import Op
from backprop.support.errors import ShapeError

# ---------------------------------------------------------------------------
# The helpers, as the generated module carries them
# ---------------------------------------------------------------------------

_WINDOWS = '''\
def _windows(x, kernel, stride, pad, batch):
    """x as (channels, positions..., examples, kernel...): every window a view (im2col without a copy)."""
    nd = len(kernel)
    x = np.moveaxis(x, batch, -1)
    if pad:
        x = np.pad(x, [(0, 0)] + [(pad, pad)] * nd + [(0, 0)])
    win = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=tuple(range(1, nd + 1)))
    return win[(slice(None),) + (slice(None, None, stride),) * nd]
'''

_SCATTER = '''\
def _scatter_windows(parts, size, stride, pad, dtype):
    """Each window's share parts[:, k..., o..., m] added back where the window was read (col2im):
    one strided slice per kernel offset, never a loop over positions or examples."""
    nd = len(size)
    kernel, positions = parts.shape[1:nd + 1], parts.shape[nd + 1:2 * nd + 1]
    out = np.zeros((parts.shape[0],) + tuple(s + 2 * pad for s in size) + (parts.shape[-1],), dtype=dtype)
    for at in np.ndindex(*kernel):
        region = tuple(slice(a, a + stride * (o - 1) + 1, stride) for a, o in zip(at, positions))
        out[(slice(None),) + region] += parts[(slice(None),) + at]
    return out[(slice(None),) + tuple(slice(pad, pad + s) for s in size)] if pad else out
'''

_CONV = '''\
def _conv(x, w, stride, pad, batch):
    """Convolution as PyTorch's conv1d/conv2d: the windows of x, then one tensordot with the filters."""
    nd = w.ndim - 2
    win = _windows(x, w.shape[2:], stride, pad, batch)  # (c, o..., m, k...)
    out = np.tensordot(w, win, axes=((1, *range(2, nd + 2)), (0, *range(nd + 2, 2 * nd + 2))))
    return np.moveaxis(out, -1, batch)
'''

_CONV_FILTER = '''\
def _conv_filter(x, g, stride, pad, batch):
    """∂L/∂W: the correlation of the input's windows with δ, summed over positions and examples: the
    windows copied once channel-and-offset major (runs of examples), then one matrix product. The
    product is taken as cols δᵀ, transposed after: its rows are the c·k·k window entries rather than
    the f filters, which BLAS splits across threads better (on LeNet a quarter faster on 2 threads, no
    slower on 1)."""
    nd = x.ndim - 2
    g = np.moveaxis(g, batch, -1)  # (f, o..., m)
    x_size = np.moveaxis(x, batch, -1).shape[1:nd + 1]
    kernel = tuple(s + 2 * pad - stride * (o - 1) for s, o in zip(x_size, g.shape[1:nd + 1]))
    win = _windows(x, kernel, stride, pad, batch)  # (c, o..., m, k...)
    cols = win.transpose((0, *range(nd + 2, 2 * nd + 2), *range(1, nd + 2))).reshape(-1, g[0].size)
    return (cols @ g.reshape(g.shape[0], -1).T).T.reshape((g.shape[0], win.shape[0]) + kernel)
'''

_CONV_INPUT = '''\
def _conv_input(g, w, stride, pad, batch):
    """∂L/∂X: the full convolution of δ (dilated by the stride) with the flipped filters, as col2im:
    per kernel offset, that offset's filter entries times δ (one matrix product) added back where the
    windows read it (one strided slice). Every window's share is never held at once (c·k·k times δ's
    size, 4.9 MB in LeNet): writing and reading it back cost more than the 25 products' calls."""
    nd = w.ndim - 2
    g = np.moveaxis(g, batch, -1)  # (f, o..., m)
    kernel, positions, c = w.shape[2:], g.shape[1:nd + 1], w.shape[1]
    size = tuple(stride * (o - 1) + k - 2 * pad for o, k in zip(positions, kernel))
    out = np.zeros((c,) + tuple(s + 2 * pad for s in size) + g.shape[-1:], dtype=np.result_type(g, w))
    taps, rows = w.transpose((*range(2, nd + 2), 1, 0)), g.reshape(g.shape[0], -1)  # (k..., c, f), (f, o...·m)
    for at in np.ndindex(*kernel):
        region = tuple(slice(a, a + stride * (o - 1) + 1, stride) for a, o in zip(at, positions))
        out[(slice(None),) + region] += (taps[at] @ rows).reshape((c,) + g.shape[1:])
    return np.moveaxis(out[(slice(None),) + tuple(slice(pad, pad + s) for s in size)] if pad else out, -1, batch)
'''

_MAX_POOL = '''\
def _max_pool(x, size, stride, batch):
    """The largest entry of every window: the maximum of size**nd strided views of x, one per offset
    in the window (no window is gathered)."""
    nd, kernel = x.ndim - 2, (size,) * (x.ndim - 2)
    x = np.moveaxis(x, batch, -1)
    positions = tuple((s - size) // stride + 1 for s in x.shape[1:nd + 1])
    out = None
    for at in np.ndindex(*kernel):
        view = x[(slice(None),) + tuple(slice(a, a + stride * (o - 1) + 1, stride) for a, o in zip(at, positions))]
        out = view.copy() if out is None else np.maximum(out, view, out=out)
    return np.moveaxis(out, -1, batch)
'''

_ROUTE_AT = '''\
def _max_pool_route_at(g, x, best, size, stride, batch):
    """δ routed to each window's largest entry (``best``, the pooled x), the first in row-major order
    on a tie (as PyTorch): the offsets visited in that order, each taking δ where it holds the maximum
    and no earlier did. One bool buffer serves every offset (no mask is allocated per offset); windows
    that do not overlap (stride >= size) write their share straight into the output, with no add."""
    nd, kernel = x.ndim - 2, (size,) * (x.ndim - 2)
    x, g, best = np.moveaxis(x, batch, -1), np.moveaxis(g, batch, -1), np.moveaxis(best, batch, -1)
    out = np.zeros(x.shape, dtype=np.result_type(g, x))
    hit, free = np.empty(best.shape, dtype=bool), np.ones(best.shape, dtype=bool)
    share = hit.view(np.uint8)  # the mask as 0/1 numbers: an exact SymPy value does not multiply a bool
    first, last = (0,) * nd, (size - 1,) * nd
    for at in np.ndindex(*kernel):
        region = (slice(None),) + tuple(slice(a, a + stride * (o - 1) + 1, stride) for a, o in zip(at, best.shape[1:]))
        np.equal(x[region], best, out=hit)
        if at != first:  # every window is still free at the first offset
            hit &= free
        if at != last:  # hit lies within free, so this takes the hits out of it
            free ^= hit
        if stride >= size:
            np.multiply(g, share, out=out[region])
        else:
            out[region] += g * share
    return np.moveaxis(out, -1, batch)
'''

_MAX_POOL_ROUTE = '''\
def _max_pool_route(g, x, size, stride, batch):
    """δ routed to each window's largest entry: x pooled again, then routed (_max_pool_route_at)."""
    return _max_pool_route_at(g, x, _max_pool(x, size, stride, batch), size, stride, batch)
'''

_AVG_POOL = '''\
def _avg_pool(x, size, stride, batch):
    """The mean of every window."""
    nd = x.ndim - 2
    win = _windows(x, (size,) * nd, stride, 0, batch)
    return np.moveaxis(win.mean(axis=tuple(range(nd + 2, 2 * nd + 2))), -1, batch)
'''

_AVG_POOL_SPREAD = '''\
def _avg_pool_spread(g, size, stride, batch):
    """δ spread evenly over each window: every entry of it receives δ / (size ** nd)."""
    nd = g.ndim - 2
    g = np.moveaxis(g, batch, -1) / size ** nd
    parts = np.broadcast_to(np.expand_dims(g, tuple(range(1, nd + 1))), g.shape[:1] + (size,) * nd + g.shape[1:])
    x_size = tuple(stride * (o - 1) + size for o in g.shape[1:nd + 1])
    return np.moveaxis(_scatter_windows(parts, x_size, stride, 0, g.dtype), -1, batch)
'''

_SOURCES = (_WINDOWS, _SCATTER, _CONV, _CONV_FILTER, _CONV_INPUT, _MAX_POOL, _ROUTE_AT, _MAX_POOL_ROUTE, _AVG_POOL,
            _AVG_POOL_SPREAD)
_DEFS: dict[str, Any] = {"np": np}
for _src in _SOURCES:
    exec(compile(_src, "<backprop.expr.ops_conv>", "exec"), _DEFS)  # noqa: S102 -- our own helper source


#: Helper sources the generated-code-only rows of :mod:`backprop.expr.ops_cols` build on.
WINDOWS_SOURCE, MAX_POOL_SOURCE, ROUTE_AT_SOURCE = _WINDOWS, _MAX_POOL, _ROUTE_AT


def _helper(src: str, *needs: str) -> str:
    """A helper's source with the helpers it calls before it (the generated module defines each once)."""
    return "\n\n".join([*needs, src]) if needs else src


def _run(name: str) -> Callable[..., Any]:
    """Evaluate a row from its helper: operands first, the node last (its attributes as ints)."""
    fn = _DEFS[name]
    return lambda *a: fn(*(np.asarray(x) for x in a[:-1]), *(int(v) for v in a[-1].attrs))


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


def _whole(x: Basic) -> bool:
    return x.is_Integer is True


def _fits(size: Basic, kernel: Basic, stride: int, pad: int, what: str, axis: int, can_pad: bool = True) -> Basic:
    """The output size along one spatial axis, ``(s + 2p − k)/stride + 1``; ShapeError unless whole."""
    span = sympy.expand(size + 2 * pad - kernel)
    if _whole(span):
        if span < 0:
            raise ShapeError(f"{what}'s window ({kernel}) is larger than spatial axis {axis} ({size}"
                             f"{f' padded by {pad} on each side' if pad else ''})")
        if span % stride:
            strides = [s for s in range(2, int(span) + 1) if span % s == 0 and s != stride]
            pads = [p for p in range(pad + 1, pad + stride + 1) if (size + 2 * p - kernel) % stride == 0]
            hint = [f"padding={pads[0]}"] if pads and can_pad else []
            hint += ["stride=1"] + ([f"stride={min(strides, key=lambda s: abs(s - stride))}"] if strides else [])
            raise ShapeError(f"{what} with stride {stride} does not fit spatial axis {axis}: ({size} + 2·{pad} − {kernel}) "
                             f"= {span} is not a multiple of {stride}; {' or '.join(hint)} would fit")
        return span // stride + 1
    if stride != 1:
        raise ShapeError(f"{what} with stride {stride} needs spatial axis {axis}'s size as a number "
                         f"(it is {size}): with a name, only stride 1 fits every size")
    return span + 1


def output_size(size: Basic, kernel: int, stride: int, pad: int) -> Basic:
    """The output size along a spatial axis whose fit the convolution's own shape rule has checked."""
    return _fits(size, sympy.Integer(kernel), stride, pad, "im2col", 0)


def _conv_shape(nd: int) -> Callable[[list[Shape], OpNode], Shape]:
    def rule(shapes: list[Shape], e: OpNode) -> Shape:
        x, w = shapes
        stride, pad, batch = _attrs(e)
        what = f"conv{nd}d"
        if len(x) != nd + 2 or len(w) != nd + 2:
            raise ShapeError(f"{what} takes X of rank {nd + 2} (channels, {nd} spatial axes, examples) and filters "
                             f"W[f, c, {', '.join('k' * nd)}] of rank {nd + 2}; got X {fmt_shape(x)} and W {fmt_shape(w)}")
        c, spatial, m = _split(x, batch)
        if sympy.expand(w[1] - c) != 0:
            raise ShapeError(f"{what}: the filters W {fmt_shape(w)} read {w[1]} channels but X {fmt_shape(x)} has {c}")
        out = tuple(_fits(s, k, stride, pad, what, a + 1) for a, (s, k) in enumerate(zip(spatial, w[2:])))
        return _join(w[0], out, m, batch)

    return rule


def _conv_input_shape(nd: int) -> Callable[[list[Shape], OpNode], Shape]:
    def rule(shapes: list[Shape], e: OpNode) -> Shape:
        g, w = shapes
        stride, pad, batch = _attrs(e)
        _, out, m = _split(g, batch)
        return _join(w[1], tuple(sympy.expand(stride * (o - 1) + k - 2 * pad) for o, k in zip(out, w[2:])), m, batch)

    return rule


def _conv_filter_shape(nd: int) -> Callable[[list[Shape], OpNode], Shape]:
    def rule(shapes: list[Shape], e: OpNode) -> Shape:
        x, g = shapes
        stride, pad, batch = _attrs(e)
        c, spatial, _ = _split(x, batch)
        f, out, _ = _split(g, batch)
        return (f, c, *(sympy.expand(s + 2 * pad - stride * (o - 1)) for s, o in zip(spatial, out)))

    return rule


def _pool_shape(what: str) -> Callable[[list[Shape], OpNode], Shape]:
    def rule(shapes: list[Shape], e: OpNode) -> Shape:
        (x,) = shapes
        size, stride, batch = _attrs(e)
        if len(x) != 4:
            raise ShapeError(f"{what} takes X of rank 4 (channels, height, width, examples), got {fmt_shape(x)}")
        c, spatial, m = _split(x, batch)
        return _join(c, tuple(_fits(s, size, stride, 0, what, a + 1, can_pad=False) for a, s in enumerate(spatial)),
                     m, batch)

    return rule


def _spread_shape(shapes: list[Shape], e: OpNode) -> Shape:
    (g,) = shapes
    size, stride, batch = _attrs(e)
    c, out, m = _split(g, batch)
    return _join(c, tuple(sympy.expand(stride * (o - 1) + size) for o in out), m, batch)


# ---------------------------------------------------------------------------
# Forms
# ---------------------------------------------------------------------------


def _tag(e: OpNode, latex: bool, pool: bool = False) -> str:
    """The stride and padding (a pool's window) as the subscript a form carries: only what differs
    from the default is written."""
    if pool:
        size, stride, _ = _attrs(e)
        parts = [f"{size}\\times {size}" if latex else f"{size}×{size}"] + ([f"s={stride}"] if stride != size else [])
    else:
        stride, pad, _ = _attrs(e)
        parts = ([f"s={stride}"] if stride != 1 else []) + ([f"p={pad}"] if pad else [])
    if not parts:
        return ""
    return ("_{" + r",\,".join(parts) + "}") if latex else "[" + ", ".join(parts) + "]"


def _call(name: str, latex_name: str, pool: bool = False, flip: int | None = None) -> tuple[Any, Any]:
    """(latex, text) forms of a call ``name[tag](operands)``; operand ``flip`` is shown flipped."""
    def form(latex: bool) -> Any:
        def f(p: Any, e: OpNode) -> str:
            args = []
            for i, c in enumerate(e.children):
                a = p.operand(c, 0)
                if i == flip:
                    a = rf"\operatorname{{flip}}\left({a}\right)" if latex else f"flip({a})"
                args.append(a)
            if latex:
                return rf"{latex_name}{_tag(e, True, pool)}\left({', '.join(args)}\right)"
            return f"{name}{_tag(e, False, pool)}({', '.join(args)})"
        return f

    return form(True), form(False)


def _numpy_call(helper: str, pool: bool = False) -> Any:
    """``_conv(X, W1, stride=2, pad=1, batch=3)``: the attributes by name, as the helper takes them."""
    names = ("size", "stride", "batch") if pool else ("stride", "pad", "batch")

    def form(p: Any, e: OpNode) -> str:
        args = [p.operand(c, 0) for c in e.children] + [f"{n}={v}" for n, v in zip(names, _attrs(e))]
        return f"{helper}({', '.join(args)})"

    return form


# ---------------------------------------------------------------------------
# The rows
# ---------------------------------------------------------------------------


def _conv_rows(nd: int) -> tuple[Op, ...]:
    name = f"conv{nd}d"
    conv_l, conv_t = _call(name, rf"\operatorname{{conv{nd}d}}")
    input_l, input_t = _call(f"{name}_full", rf"\operatorname{{conv{nd}d}}^{{\mathrm{{full}}}}", flip=1)
    filter_l, filter_t = _call(f"corr{nd}d", rf"\operatorname{{corr{nd}d}}")
    axes = ", ".join("k" * nd)
    return (
        Op(
            name, 2, _conv_shape(nd),
            vjps=(lambda g, out, e: ir.node(f"{name}_input", g, e.children[1], *e.attrs),
                  lambda g, out, e: ir.node(f"{name}_filter", e.children[0], g, *e.attrs)),
            rules=("convolution, input (the gradient dilated by the stride, flipped filters): "
                "∂L/∂𝒳 = conv(∂L/∂𝒵, flip(𝒲)) in full, for 𝒵 = conv(𝒳, 𝒲)",
                   "convolution, filters: ∂L/∂𝒲 = corr(𝒳, ∂L/∂𝒵) for 𝒵 = conv(𝒳, 𝒲)"),
            latex=conv_l, text=conv_t, numpy=_numpy_call("_conv"), np_eval=_run("_conv"), sym_eval=_run("_conv"),
            numpy_helper=_CONV, shared_helpers=(_WINDOWS,), jax_shared_helpers=(OFFSETS_JAX, WINDOWS_JAX), spec_name=name,
            attrs=("stride", "padding", "batch"), windowed=True, index=conv_index,
            signature="(X, W, stride=1, padding=0)",
            contracts=lambda e, i, nd=nd: tuple(range(1, nd + 2)) if i == 1 else (0,),
            doc=f"{nd}-d convolution as PyTorch's: X[c, {'…' if nd > 1 else 'L'}, m] with filters W[f, c, {axes}]",
        ),
        Op(
            f"{name}_input", 2, _conv_input_shape(nd), vjps=(None, None),
            rules=(f"the adjoint of {name}",) * 2,
            latex=input_l, text=input_t, numpy=_numpy_call("_conv_input"), np_eval=_run("_conv_input"),
            sym_eval=_run("_conv_input"), numpy_helper=_CONV_INPUT, jax_helper=CONV_INPUT_JAX,
            jax_shared_helpers=(OFFSETS_JAX, SCATTER_JAX),
            attrs=("stride", "padding", "batch"), windowed=True, index=conv_input_index,
            doc=f"∂L/∂X of {name}: the full convolution of δ with the flipped filters (col2im)",
        ),
        Op(
            f"{name}_filter", 2, _conv_filter_shape(nd), vjps=(None, None),
            rules=(f"the adjoint of {name}",) * 2,
            latex=filter_l, text=filter_t, numpy=_numpy_call("_conv_filter"), np_eval=_run("_conv_filter"),
            sym_eval=_run("_conv_filter"), numpy_helper=_CONV_FILTER, shared_helpers=(_WINDOWS,),
            jax_shared_helpers=(OFFSETS_JAX, WINDOWS_JAX),
            attrs=("stride", "padding", "batch"), windowed=True, index=conv_filter_index,
            doc=f"∂L/∂W of {name}: the correlation of the input with δ",
        ),
    )



def _pool_rows() -> tuple[Op, ...]:
    max_l, max_t = _call("maxpool2d", r"\operatorname{maxpool2d}", pool=True)
    route_l, route_t = _call("route_max", r"\operatorname{route}^{\max}", pool=True)
    avg_l, avg_t = _call("avgpool2d", r"\operatorname{avgpool2d}", pool=True)
    spread_l, spread_t = _call("spread", r"\operatorname{spread}", pool=True)
    attrs = ("size", "stride", "batch")
    return (
        Op(
            "max_pool2d", 1, _pool_shape("max_pool2d"),
            vjps=(lambda g, out, e: ir.node("max_pool2d_route", g, e.children[0], *e.attrs),),
            rules=("max pooling (to each window's largest entry): ∂L/∂𝒳 = route(∂L/∂𝒴, 𝒳) for 𝒴 = maxpool(𝒳)",),
            latex=max_l, text=max_t, numpy=_numpy_call("_max_pool", pool=True), np_eval=_run("_max_pool"),
            sym_eval=_run("_max_pool"), numpy_helper=_MAX_POOL, jax_helper=MAX_POOL_JAX,
            jax_shared_helpers=(OFFSETS_JAX, WINDOWS_JAX), spec_name="max_pool2d",
            attrs=attrs, windowed=True, signature="(X, size=k, stride=k)", piecewise=True,
            doc="the largest entry of each size×size window, windows stride apart (default: size)",
        ),
        Op(
            "max_pool2d_route", 2, lambda shapes, e: shapes[1], vjps=(None, None),
            rules=("the adjoint of max_pool2d",) * 2,
            latex=route_l, text=route_t, numpy=_numpy_call("_max_pool_route", pool=True), np_eval=_run("_max_pool_route"),
            sym_eval=_run("_max_pool_route"), numpy_helper=_MAX_POOL_ROUTE, jax_helper=MAX_POOL_ROUTE_JAX,
            shared_helpers=(_MAX_POOL, _ROUTE_AT),
            jax_shared_helpers=(OFFSETS_JAX, WINDOWS_JAX, SCATTER_JAX),
            attrs=attrs, windowed=True, index=max_pool_route_index,
            doc="∂L/∂X of max_pool2d: δ at each window's largest entry",
        ),
        Op(
            "avg_pool2d", 1, _pool_shape("avg_pool2d"),
            vjps=(lambda g, out, e: ir.node("avg_pool2d_spread", g, *e.attrs),),
            rules=("average pooling (evenly over each window): ∂L/∂𝒳 = spread(∂L/∂𝒴) for 𝒴 = avgpool(𝒳)",),
            latex=avg_l, text=avg_t, numpy=_numpy_call("_avg_pool", pool=True), np_eval=_run("_avg_pool"),
            sym_eval=_run("_avg_pool"), numpy_helper=_AVG_POOL, shared_helpers=(_WINDOWS,),
            jax_shared_helpers=(OFFSETS_JAX, WINDOWS_JAX), spec_name="avg_pool2d",
            attrs=attrs, windowed=True, signature="(X, size=k, stride=k)", index=avg_pool_index,
            doc="the mean of each size×size window, windows stride apart (default: size)",
        ),
        Op(
            "avg_pool2d_spread", 1, _spread_shape, vjps=(None,),
            rules=("the adjoint of avg_pool2d",),
            latex=spread_l, text=spread_t, numpy=_numpy_call("_avg_pool_spread", pool=True), np_eval=_run("_avg_pool_spread"),
            sym_eval=_run("_avg_pool_spread"), numpy_helper=_AVG_POOL_SPREAD, shared_helpers=(_SCATTER,),
            jax_shared_helpers=(OFFSETS_JAX, SCATTER_JAX),
            attrs=attrs, windowed=True, index=avg_pool_spread_index,
            doc="∂L/∂X of avg_pool2d: δ spread evenly over each window",
        ),
    )


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (*_conv_rows(1), *_conv_rows(2), *_pool_rows())
