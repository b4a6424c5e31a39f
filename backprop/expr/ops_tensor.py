"""Rows of the registry: the operations that move entries of tensors of any rank -- reshape,
transpose by a permutation, concatenation, slicing and its adjoint (embedding a slice in zeros).

Each moves entries without computing new ones, so each adjoint is another row of this family:
reshape's is a reshape back, a permutation's its inverse, a concatenation's a slice per operand, a
slice's an embedding in zeros. The smart constructors (:func:`reshape`, :func:`permute`,
:func:`take`, :func:`embed`) drop what is the identity, so derived adjoints stay readable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import SCALAR, OpNode, Shape, fmt_shape, shape_of
from backprop.expr.ops_row import ATOM, POW, IndexForm, Op, axes_of
from backprop.support.errors import ShapeError

# ---------------------------------------------------------------------------
# reshape and permutations
# ---------------------------------------------------------------------------


def _entries(s: Shape) -> Basic:
    return sympy.Mul(*s)


def _reshape_shape(shapes: list[Shape], e: OpNode) -> Shape:
    target = tuple(e.args[1])
    if sympy.expand(_entries(shapes[0]) - _entries(target)) != 0:
        raise ShapeError(f"cannot reshape {fmt_shape(shapes[0])} ({_entries(shapes[0])} entries) to "
                         f"{fmt_shape(target)} ({_entries(target)} entries)")
    return target


def reshape(a: Basic, shape: Sequence[Basic]) -> Basic:
    shape = tuple(sympy.sympify(d) for d in shape)
    if shape_of(a) == shape:
        return a
    if isinstance(a, OpNode) and a.op.name == "reshape":
        return reshape(a.children[0], shape)
    return ir.node("reshape", a, sympy.Tuple(*shape))


def _reshape_numpy(p: Any, e: OpNode) -> str:
    dims = ", ".join(p.doprint(d) for d in e.args[1])
    x = e.children[0]
    if ir.is_scalar(x):  # may be a Python float
        return f"np.reshape({p.operand(x, 0)}, ({dims},))"
    return f"{p.operand(x, ATOM)}.reshape({dims})"


def _reshape_latex(p: Any, e: OpNode) -> str:
    dims = r" \times ".join(p.doprint(d) for d in e.args[1])
    return rf"\operatorname{{reshape}}_{{{dims}}}\left({p.operand(e.children[0], 0)}\right)"


def _perm(e: OpNode) -> tuple[int, ...]:
    return tuple(int(k) for k in e.args[1])


def _permute_shape(shapes: list[Shape], e: OpNode) -> Shape:
    perm, s = _perm(e), shapes[0]
    if sorted(perm) != list(range(len(s))):
        raise ShapeError(f"transpose of a {fmt_shape(s)} value (rank {len(s)}) needs a permutation of "
                         f"0 to {len(s) - 1}, got [{', '.join(map(str, perm))}]")
    return tuple(s[k] for k in perm)


def permute(a: Basic, perm: Sequence[int]) -> Basic:
    """Axes of ``a`` reordered: result axis k is axis perm[k] of ``a``."""
    perm = tuple(int(k) for k in perm)
    if perm == tuple(range(len(perm))):
        return a
    if perm == (1, 0):
        return ir.transpose(a)
    if isinstance(a, OpNode) and a.op.name == "permute":
        inner = _perm(a)
        return permute(a.children[0], [inner[k] for k in perm])
    return ir.node("permute", a, sympy.Tuple(*perm))


def _inverse(perm: Sequence[int]) -> list[int]:
    return [perm.index(k) for k in range(len(perm))]


def _permute_forms(latex: bool) -> Callable[[Any, OpNode], str]:
    def form(p: Any, e: OpNode) -> str:
        perm = ",".join(map(str, _perm(e)))
        x = p.operand(e.children[0], POW + 1)
        return rf"{x}^{{\top({perm})}}" if latex else f"{x}ᵀ⁽{perm}⁾"

    return form


def _flip_axes(e: OpNode) -> tuple[int, ...]:
    return tuple(int(k) for k in e.args[1])


def _flip_shape(shapes: list[Shape], e: OpNode) -> Shape:
    axes, s = _flip_axes(e), shapes[0]
    if not axes or len(set(axes)) != len(axes) or not all(0 <= k < len(s) for k in axes):
        raise ShapeError(f"flip of a {fmt_shape(s)} value (rank {len(s)}) needs distinct axes from 0 to "
                         f"{len(s) - 1}, got [{', '.join(map(str, axes))}]")
    return s


def flip(a: Basic, axes: Sequence[int]) -> Basic:
    """``a`` with its entries reversed along ``axes`` (a convolution's filters turned in space);
    flipping a flip along the same axes gives ``a`` back."""
    axes = tuple(sorted(int(k) for k in axes))
    if isinstance(a, OpNode) and a.op.name == "flip" and _flip_axes(a) == axes:
        return a.children[0]
    return ir.node("flip", a, sympy.Tuple(*axes))


def _flip_forms(latex: bool) -> Callable[[Any, OpNode], str]:
    def form(p: Any, e: OpNode) -> str:
        axes = ",".join(map(str, _flip_axes(e)))
        x = p.operand(e.children[0], 0)
        return rf"\operatorname{{flip}}_{{{axes}}}\left({x}\right)" if latex else f"flip[{axes}]({x})"

    return form


# ---------------------------------------------------------------------------
# Concatenation, slicing, and a slice embedded in zeros
# ---------------------------------------------------------------------------


def _concat_shape(shapes: list[Shape], e: OpNode) -> Shape:
    (axis,) = axes_of(e)
    first = shapes[0]
    if not 0 <= axis < len(first):
        raise ShapeError(f"axis {axis} is not an axis of a {fmt_shape(first)} value")
    for k, s in enumerate(shapes[1:], 2):
        if len(s) != len(first):
            raise ir.rank_mismatch(first, s, "concat")
        for ax, (a, b) in enumerate(zip(first, s)):
            if ax != axis and a != b:
                raise ShapeError(f"concat along axis {axis}: operand {k} is {fmt_shape(s)} but operand 1 is "
                                 f"{fmt_shape(first)}; every axis but {axis} must agree (axis {ax}: {a} and {b})")
    return tuple(sympy.Add(*(s[axis] for s in shapes)) if ax == axis else d for ax, d in enumerate(first))


def _concat_vjp(g: Basic, out: Basic, e: OpNode, i: int) -> Basic:
    """Operand i receives its own block of ∂L/∂[A; B]: the slice it was copied to."""
    (axis,) = axes_of(e)
    shapes = [shape_of(c) for c in e.children]
    start = sympy.Add(*(s[axis] for s in shapes[:i]))
    index = [sympy.Tuple(0, d) for d in shape_of(e)]
    index[axis] = sympy.Tuple(start, start + shapes[i][axis])
    return take(g, index)


def _concat_numpy(p: Any, e: OpNode) -> str:
    def operand(c: Basic) -> str:
        return f"np.full((1, 1), {p.operand(c, 0)})" if ir.is_scalar(c) else p.operand(c, 0)

    return f"np.concatenate(({', '.join(operand(c) for c in e.children)}), axis={axes_of(e)[0]})"


def _concat_forms(latex: bool) -> Callable[[Any, OpNode], str]:
    def form(p: Any, e: OpNode) -> str:
        (axis,) = axes_of(e)
        parts = [p.operand(c, 0) for c in e.children]
        if len(shape_of(e)) == 2:  # a block matrix: stacked (axis 0) or side by side (axis 1)
            if latex:
                sep = r" \\ " if axis == 0 else " & "
                return r"\begin{bmatrix} " + sep.join(parts) + r" \end{bmatrix}"
            return "[" + ("; " if axis == 0 else ", ").join(parts) + "]"
        return (rf"\operatorname{{concat}}_{{{axis}}}\left({', '.join(parts)}\right)" if latex
                else f"concat_({axis})({', '.join(parts)})")

    return form


def _index_entries(e: OpNode) -> tuple[Basic, ...]:
    """A slice node's index: per axis, (start, stop) for a range, (i,) for one position."""
    return tuple(e.args[-1])


def _check_within(entry: Basic, size: Basic, axis: int) -> None:
    def surely(x: Basic) -> bool:
        return bool(sympy.sympify(x).is_nonnegative)
    if len(entry) == 1:
        (i,) = entry
        if not (surely(i) and surely(size - 1 - i)):
            raise ShapeError(f"index {i} is outside axis {axis} (length {size}), or cannot be shown inside it "
                             "for every size: indices run from 0 to the length − 1")
        return
    start, stop = entry
    if sympy.expand(stop - start).is_zero:
        raise ShapeError(f"slice {start}:{stop} of axis {axis} is empty")
    if not (surely(start) and surely(size - stop) and surely(stop - start)):
        raise ShapeError(f"slice {start}:{stop} is outside axis {axis} (length {size}), or cannot be shown "
                         "inside it for every size: a slice a:b needs 0 ≤ a ≤ b ≤ the length")


def _slice_shape(shapes: list[Shape], e: OpNode) -> Shape:
    s, index = shapes[0], _index_entries(e)
    if len(index) != len(s):
        raise ShapeError(f"{len(index)} indices for a {fmt_shape(s)} value (rank {len(s)})")
    out = []
    for axis, (entry, size) in enumerate(zip(index, s)):
        _check_within(entry, size, axis)
        if len(entry) == 2:
            out.append(sympy.expand(entry[1] - entry[0]))
    return tuple(out) if out else SCALAR


def _embed_shape(shapes: list[Shape], e: OpNode) -> Shape:
    full = tuple(e.args[1])
    inner = _slice_shape([full], e)
    if shapes[0] != inner and not ir.is_scalar_shape(shapes[0]):
        raise ShapeError(f"cannot place a {fmt_shape(shapes[0])} value in a {fmt_shape(inner)} slice")
    return full


def take(a: Basic, index: Sequence[Basic]) -> Basic:
    """``a[index]``; a slice of every entry is ``a`` itself."""
    entries = tuple(sympy.Tuple(*x) for x in index)
    s = shape_of(a)
    if all(len(x) == 2 and x[0] == 0 and x[1] == d for x, d in zip(entries, s)):
        return a
    return ir.node("slice", a, sympy.Tuple(*entries))


def embed(g: Basic, shape: Shape, index: Sequence[Basic]) -> Basic:
    """Zeros of ``shape`` with ``g`` at ``index``: the adjoint of taking that slice."""
    entries = tuple(sympy.Tuple(*x) for x in index)
    if all(len(x) == 2 and x[0] == 0 and x[1] == d for x, d in zip(entries, shape)):
        return ir.broadcast_to(g, shape)
    return ir.node("embed", g, sympy.Tuple(*shape), sympy.Tuple(*entries))


def _written(e: OpNode, shape: Shape) -> list[tuple[Basic | None, ...]]:
    """The index as a subscript writes it: (i,) for a position, (start, stop) for a range with
    None where it is left out (a start of 0, a stop at the axis's end)."""
    out: list[tuple[Basic | None, ...]] = []
    for entry, size in zip(_index_entries(e), shape):
        if len(entry) == 1:
            out.append((entry[0],))
        else:
            out.append((None if entry[0] == 0 else entry[0], None if entry[1] == size else entry[1]))
    return out


def _bounds(p: Any, e: OpNode, shape: Shape) -> str:
    """The index as written in a subscript: 0:3, :, t; a full axis is ':'."""
    return ", ".join(p.doprint(w[0]) if len(w) == 1 else ":".join("" if b is None else p.doprint(b) for b in w)
                     for w in _written(e, shape))


def _written_bounds(e: OpNode, shape: Shape) -> tuple[Basic, ...]:
    return tuple(b for w in _written(e, shape) for b in w if b is not None)


def _slice_forms(target: str) -> Callable[[Any, OpNode], str]:
    def form(p: Any, e: OpNode) -> str:
        x = e.children[0]
        index = _bounds(p, e, shape_of(x))
        if target == "latex":
            return rf"{p.operand(x, ATOM)}_{{[{index}]}}"
        return f"{p.operand(x, ATOM)}[{index}]"

    return form


def _embed_forms(target: str) -> Callable[[Any, OpNode], str]:
    def form(p: Any, e: OpNode) -> str:
        full = tuple(e.args[1])
        index = _bounds(p, e, full)
        g = p.operand(e.children[0], 0)
        if target == "numpy":
            dims = ", ".join(p.doprint(d) for d in full)
            return f"_embed({g}, ({dims},), np.s_[{index}])"
        if target == "latex":
            dims = r" \times ".join(p.doprint(d) for d in full)
            return rf"\operatorname{{embed}}_{{{dims}}}^{{[{index}]}}\left({g}\right)"
        return f"embed[{fmt_shape(full)} at [{index}]]({g})"

    return form


def _concrete_index(e: OpNode, sizes: Mapping[Basic, int]) -> tuple[Any, ...]:
    return tuple(ir.concrete(x[0], sizes) if len(x) == 1 else slice(ir.concrete(x[0], sizes), ir.concrete(x[1], sizes))
                 for x in _index_entries(e))


def _embed_eval(g: Any, e: OpNode, sizes: Mapping[Basic, int], zero: Any = 0.0) -> np.ndarray:
    out = np.full(tuple(ir.concrete(d, sizes) for d in e.args[1]), zero, dtype=type(zero) if zero == 0.0 else object)
    at = _concrete_index(e, sizes)
    value = np.reshape(g, np.shape(out[at])) if np.size(g) == np.size(out[at]) else g
    out[at] = value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value  # one entry: the number
    return out


def _take_eval(x: Any, e: OpNode, sizes: Mapping[Basic, int]) -> Any:
    return np.asarray(x)[_concrete_index(e, sizes)]


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "reshape", 1, _reshape_shape,
        vjps=(lambda g, out, e: reshape(g, shape_of(e.children[0])),),
        rules=("reshape: ∂L/∂𝒰 is the gradient of the reshaped 𝒰, reshaped back to the shape of 𝒰",),
        latex=_reshape_latex,
        text=lambda p, e: f"reshape[{fmt_shape(tuple(e.args[1]))}]({p.operand(e.children[0], 0)})",
        numpy=_reshape_numpy,
        np_eval=lambda x, e, sizes: np.reshape(x, tuple(ir.concrete(d, sizes) for d in e.args[1])),
        sym_eval=lambda x, e, sizes: np.reshape(x, tuple(ir.concrete(d, sizes) for d in e.args[1])),
        sized=True, spec_name="reshape", attrs=("shape",), doc="the same entries in a new shape (row-major, as NumPy)",
        view=True,
    ),
    Op(
        "permute", 1, _permute_shape,
        vjps=(lambda g, out, e: permute(g, _inverse(_perm(e))),),
        rules=("transpose: ∂L/∂𝒰 is the gradient of the permuted 𝒰 with the axes put back",),
        latex=_permute_forms(True), text=_permute_forms(False),
        numpy=lambda p, e: f"{p.operand(e.children[0], ATOM)}.transpose({', '.join(map(str, _perm(e)))})",
        np_eval=lambda x, e: np.transpose(x, _perm(e)), sym_eval=lambda x, e: np.transpose(x, _perm(e)),
        prec=POW, spec_name="transpose", attrs=("perm",), doc="axes reordered: transpose(E, [2, 0, 1])",
        index=lambda e, ij, fresh: IndexForm((), (tuple(ij[_inverse(_perm(e))[k]] for k in range(len(ij))),)),
        view=True,
    ),
    Op(
        "flip", 1, _flip_shape,
        vjps=(lambda g, out, e: flip(g, _flip_axes(e)),),
        rules=("flip: ∂L/∂𝒰 is the gradient of the flipped 𝒰, flipped back along the same axes",),
        latex=_flip_forms(True), text=_flip_forms(False),
        numpy=lambda p, e: f"np.flip({p.operand(e.children[0], 0)}, {tuple(_flip_axes(e))})",
        np_eval=lambda x, e: np.flip(x, _flip_axes(e)), sym_eval=lambda x, e: np.flip(x, _flip_axes(e)),
        spec_name="flip", attrs=("axes",),
        doc="entries reversed along the given axes: flip(W, [2, 3]) turns a conv's filters in space",
        view=True,
    ),
    Op(
        "concat", 1, _concat_shape,
        vjps=(_concat_vjp,),
        rules=("concatenation: each operand receives its own block of ∂L/∂[𝒰; 𝒱]",),
        latex=_concat_forms(True), text=_concat_forms(False), numpy=_concat_numpy,
        np_eval=lambda *a: np.concatenate([np.reshape(x, (1, 1)) if np.ndim(x) == 0 else x for x in a[:-1]],
                                          axis=axes_of(a[-1])[0]),
        sym_eval=lambda *a: np.concatenate(a[:-1], axis=axes_of(a[-1])[0]),
        spec_name="concat", attrs=("axis",), variadic=True, doc="operands joined along an axis: concat(A, B, axis=0)",
    ),
    Op(
        "slice", 1, _slice_shape,
        vjps=(lambda g, out, e: embed(g, shape_of(e.children[0]), _index_entries(e)),),
        rules=("slice: ∂L/∂𝒰 is the gradient of the slice at the sliced entries and 0 elsewhere",),
        latex=_slice_forms("latex"), text=_slice_forms("text"), numpy=_slice_forms("numpy"),
        np_eval=_take_eval, sym_eval=_take_eval, sized=True, attrs=("index",),
        code_attrs=lambda e: _written_bounds(e, shape_of(e.children[0])),
        view=True,
    ),
    Op(
        "embed", 1, _embed_shape,
        vjps=(lambda g, out, e: take(g, _index_entries(e)),),
        rules=("embedding: ∂L/∂𝒰 is the slice of the gradient of the embedded 𝒰 that 𝒰 was placed at",),
        latex=_embed_forms("latex"), text=_embed_forms("text"), numpy=_embed_forms("numpy"),
        np_eval=_embed_eval, sym_eval=lambda g, e, sizes: _embed_eval(g, e, sizes, sympy.Integer(0)),
        sized=True, attrs=("shape", "index"),
        code_attrs=lambda e: (*e.args[1], *_written_bounds(e, tuple(e.args[1]))),
        numpy_helper=(
            "def _embed(g, shape, index):\n"
            '    """Zeros of shape with g at index: the gradient of a slice, for the array it was taken from."""\n'
            "    out = np.zeros(shape, dtype=np.result_type(g, np.float64))\n"
            "    out[index] = np.reshape(g, np.shape(out[index])) if np.size(g) == np.size(out[index]) else g\n"
            "    return out\n"
        ),
        jax_helper=(
            "def _embed(g, shape, index):\n"
            '    """Zeros of shape with g at index: the gradient of a slice, for the array it was taken from."""\n'
            "    out = jnp.zeros(shape, dtype=jnp.result_type(g, float))\n"
            "    part = out[index]\n"
            "    return out.at[index].set(jnp.reshape(g, part.shape) if jnp.size(g) == part.size else g)\n"
        ),
    ),
)
