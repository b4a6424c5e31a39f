"""Rows of the registry: einsum, the sum of products over repeated subscripts, for any rank.

Its adjoint is an einsum too: for operand i, of the gradient with the other operands, onto operand
i's subscripts. :func:`einsum` keeps derived adjoints readable -- an einsum that is a matrix product
is written as one (∂L/∂W = ∂L/∂Z Xᵀ, not einsum[fm,cm→fc]), one that only reorders axes as a
transpose -- and the generated code follows a contraction order chosen once, at generation time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy
from sympy import Basic
from sympy.core.symbol import Str

from backprop.expr import ir
from backprop.expr.ir import SCALAR, OpNode, Shape, fmt_shape, shape_of
from backprop.expr.ops_row import ATOM, IndexForm, Op
from backprop.expr.ops_tensor import permute, reshape
from backprop.support.errors import ShapeError
from backprop.support.escape import py_str

# ---------------------------------------------------------------------------
# einsum: subscripts
# ---------------------------------------------------------------------------

_SUBSCRIPT = re.compile(r"[A-Za-z]*")
#: The size a symbolic dim stands at when the contraction order is chosen at generation time.
PATH_SIZE = 16


def parse_subscripts(spec: str, ranks: Sequence[int] | None = None) -> tuple[tuple[str, ...], str]:
    """``"fc,cm->fm"`` -> (("fc", "cm"), "fm"); an implicit output is NumPy's: the letters used once,
    in alphabetical order. ShapeError for anything else NumPy would refuse or this toolkit does not
    take (an ellipsis, a letter repeated within one operand)."""
    text = spec.replace(" ", "")
    if text.count("->") > 1:
        raise ShapeError(f"einsum subscripts {spec!r} have more than one '->'")
    left, arrow, right = text.partition("->")
    ins = tuple(left.split(","))
    for part in (*ins, right):
        if not _SUBSCRIPT.fullmatch(part):
            bad = next(ch for ch in part if not ch.isascii() or not ch.isalpha())
            what = "an ellipsis" if bad == "." else f"{bad!r}"
            raise ShapeError(f"einsum subscripts {spec!r} contain {what}: each axis is one letter a-z or A-Z")
    for part in ins:
        twice = next((ch for ch in part if part.count(ch) > 1), None)
        if twice:
            raise ShapeError(f"einsum subscripts {spec!r} repeat {twice!r} within one operand ({part!r}): "
                             "a diagonal is not supported; each operand's letters must differ")
    letters = "".join(ins)
    if not arrow:
        right = "".join(sorted(ch for ch in set(letters) if letters.count(ch) == 1))
    twice = next((ch for ch in right if right.count(ch) > 1), None)
    if twice:
        raise ShapeError(f"einsum output {right!r} repeats {twice!r}")
    stray = next((ch for ch in right if ch not in letters), None)
    if stray:
        raise ShapeError(f"einsum output letter {stray!r} in {spec!r} is not an axis of any operand")
    if ranks is not None and len(ranks) != len(ins):
        raise ShapeError(f"einsum subscripts {spec!r} name {len(ins)} operand{'s' * (len(ins) != 1)}, "
                         f"but {len(ranks)} {'are' if len(ranks) != 1 else 'is'} given")
    return ins, right


def einsum_text(ins: Sequence[str], out: str) -> str:
    return ",".join(ins) + "->" + out


def _subscripts(e: OpNode) -> tuple[tuple[str, ...], str]:
    return parse_subscripts(str(e.args[-1]))


def _letter_sizes(ins: Sequence[str], shapes: Sequence[Shape], spec: str) -> dict[str, Basic]:
    sizes: dict[str, Basic] = {}
    for k, (part, s) in enumerate(zip(ins, shapes)):
        if ir.is_scalar_shape(s):
            raise ShapeError(f"einsum operand {k + 1} is a scalar: multiply by a scalar with '*'")
        if len(part) != len(s):
            raise ShapeError(f"einsum operand {k + 1} is {fmt_shape(s)} (rank {len(s)}), "
                             f"but its subscripts {part!r} name {len(part)} ax{'es' if len(part) != 1 else 'is'}")
        for ch, d in zip(part, s):
            if ch in sizes and sizes[ch] != d:
                raise ShapeError(f"einsum {spec!r}: axis {ch!r} has length {sizes[ch]} in one operand "
                                 f"and {d} in operand {k + 1}")
            sizes.setdefault(ch, d)
    return sizes


def _einsum_shape(shapes: list[Shape], e: OpNode) -> Shape:
    spec = str(e.args[-1])
    ins, out = parse_subscripts(spec, [len(s) for s in shapes])
    sizes = _letter_sizes(ins, shapes, spec)
    return tuple(sizes[ch] for ch in out) if out else SCALAR


def _as_matmul(ins: Sequence[str], out: str, operands: Sequence[Basic]) -> Basic | None:
    """A two-operand einsum of matrices that is a matrix product (up to transposes): as one."""
    if len(operands) != 2 or len(out) != 2 or any(len(p) != 2 for p in ins):
        return None
    shared = set(ins[0]) & set(ins[1])
    if len(shared) != 1 or (shared & set(out)):
        return None
    (c,) = shared
    rows, cols = out
    by_letter = {ch: k for k, part in enumerate(ins) for ch in part if ch != c}
    if set(by_letter) != {rows, cols} or by_letter[rows] == by_letter[cols]:
        return None
    left, right = operands[by_letter[rows]], operands[by_letter[cols]]
    left = left if ins[by_letter[rows]] == rows + c else ir.transpose(left)
    right = right if ins[by_letter[cols]] == c + cols else ir.transpose(right)
    return ir.matmul(left, right)


def einsum(spec: str, *operands: Basic) -> Basic:
    """An einsum node, or what it simply is: a matrix product, a permutation, its one operand."""
    ins, out = parse_subscripts(spec, [len(shape_of(x)) for x in operands])
    if len(operands) == 1 and sorted(ins[0]) == sorted(out):
        return permute(operands[0], [ins[0].index(ch) for ch in out])
    product = _as_matmul(ins, out, operands)
    if product is not None:
        return product
    return ir.node("einsum", *operands, Str(einsum_text(ins, out)))


def _einsum_vjp(g: Basic, out: Basic, e: OpNode, i: int) -> Basic:
    """∂L/∂Aᵢ: the einsum of ∂L/∂Z with the other operands, onto Aᵢ's subscripts. A letter of Aᵢ
    that appears nowhere else was summed within Aᵢ alone: its entries all receive the same
    gradient, so the result is broadcast along it."""
    ins, res = _subscripts(e)
    others = [(ins[k], c) for k, c in enumerate(e.children) if k != i]
    target = ins[i]
    seen = set(res).union(*(set(p) for p, _ in others))
    kept = "".join(ch for ch in target if ch in seen)
    parts = [p for p, _ in others]
    operands = [c for _, c in others]
    if res:
        parts, operands = [res, *parts], [g, *operands]
    if operands and kept:
        grad = einsum(einsum_text(parts, kept), *operands)
    elif operands:  # a scalar: a full contraction of the others
        grad = einsum(einsum_text(parts, ""), *operands)
    else:
        grad = sympy.Integer(1)
    if not res:
        grad = ir.mul(g, grad)
    shape = shape_of(e.children[i])
    if kept != target:
        unit = tuple(d if ch in seen else sympy.Integer(1) for ch, d in zip(target, shape))
        grad = ir.broadcast_to(reshape(grad, unit) if not ir.is_scalar(grad) else grad, shape)
    return grad


def _einsum_path(e: OpNode) -> list[Any]:
    """The contraction order NumPy should follow, chosen once at generation time with every symbolic
    dim at :data:`PATH_SIZE` (each number in the path names operands, not sizes)."""
    def size(d: Basic) -> int:
        return int(d) if d.is_Integer else PATH_SIZE
    ins, out = _subscripts(e)
    arrays = [np.empty(tuple(size(d) for d in shape_of(c)), dtype=np.float64) for c in e.children]
    return np.einsum_path(einsum_text(ins, out), *arrays, optimize="optimal")[0]


def tensordot_plan(ins: Sequence[str], out: str) -> tuple[int, int, tuple[tuple[int, ...], tuple[int, ...]], str] | None:
    """A two-operand einsum that one ``np.tensordot`` computes: (first operand, second operand, axes,
    result letters), the operands in the order that gives the output's axis order when one does (a
    C-ordered result), else a view away from it. None when it needs a batch index (a letter in both
    operands and the output), a diagonal, or a sum within one operand.

    np.einsum hands such a pair to tensordot too, but may swap the operands and return a strided
    view even when the other order is C-ordered: every elementwise step after it then mixes memory
    layouts (measured 6x slower on a transformer block's ReLU mask)."""
    if len(ins) != 2 or any(len(set(part)) != len(part) for part in ins):
        return None
    a, b = ins
    if set(a) & set(b) & set(out) or not set(a + b) <= set(out) | (set(a) & set(b)):
        return None
    free_a, free_b = "".join(c for c in a if c in out), "".join(c for c in b if c in out)
    first, second = (1, 0) if out == free_b + free_a or (free_a and free_b and out[0] in free_b) else (0, 1)
    x, y = ins[first], ins[second]
    summed = [c for c in x if c in y]
    res = "".join(c for c in x if c in out) + "".join(c for c in y if c in out)
    return first, second, (tuple(x.index(c) for c in summed), tuple(y.index(c) for c in summed)), res


def batched_matmul_plan(ins: Sequence[str], out: str) -> tuple[int, int, tuple[int, ...], tuple[int, ...], str] | None:
    """A two-operand einsum that is a batch of matrix products: (left operand, right operand, left
    axes, right axes, result letters), each operand's axes reordered to (batch..., rows, inner) and
    (batch..., inner, cols); the result letters are (batch..., rows, cols), a view away from ``out``.
    ``np.matmul`` runs it through BLAS only when every matrix has a unit stride, so each operand's
    last axis (contiguous in a C-ordered array) must be one of its two matrix axes: with the examples
    axis last in attention it is not, and einsum's own loop stays."""
    if len(ins) != 2 or any(len(set(part)) != len(part) for part in ins):
        return None
    a, b = ins
    batch = "".join(ch for ch in out if ch in a and ch in b)
    inner = (set(a) & set(b)) - set(out)
    if not batch or len(inner) != 1 or len(a) != len(batch) + 2 or len(b) != len(batch) + 2:
        return None
    (c,) = inner
    (fa,) = set(a) - set(batch) - {c}
    (fb,) = set(b) - set(batch) - {c}
    if not set(out) == set(batch) | {fa, fb} or a[-1] not in (fa, c) or b[-1] not in (fb, c):
        return None
    left, right = (1, 0) if out.index(fb) < out.index(fa) else (0, 1)
    x, y = ins[left], ins[right]
    rows, cols = (fa, fb) if left == 0 else (fb, fa)
    return (left, right, tuple(x.index(ch) for ch in batch + rows + c), tuple(y.index(ch) for ch in batch + c + cols),
            batch + rows + cols)


def _axes_view(p: Any, x: Basic, perm: tuple[int, ...]) -> str:
    """``x`` with its axes reordered (a view, no copy)."""
    code = p.operand(x, ATOM)
    return code if perm == tuple(range(len(perm))) else f"{code}.transpose({', '.join(str(k) for k in perm)})"


def _einsum_numpy(p: Any, e: OpNode, jax: bool = False) -> str:
    """The einsum as NumPy computes it fastest: a tensordot, a (batched) matmul, or np.einsum along
    the optimal contraction path (for ``jax``, ``jnp.einsum`` takes the path as a bare list of pairs)."""
    ins, out = _subscripts(e)
    operands = ", ".join(p.operand(c, 0) for c in e.children)
    spec = py_str(einsum_text(ins, out))
    if len(e.children) == 1:
        return f"np.einsum({spec}, {operands})"
    dot = tensordot_plan(ins, out)
    if dot is not None:
        first, second, axes, res = dot
        x, y = (p.operand(e.children[k], 0) for k in (first, second))
        return _in_order(f"np.tensordot({x}, {y}, axes=({_ints(axes[0])}, {_ints(axes[1])}))", res, out)
    bmm = batched_matmul_plan(ins, out)
    if bmm is not None:
        left, right, pa, pb, res = bmm
        x, y = _axes_view(p, e.children[left], pa), _axes_view(p, e.children[right], pb)
        if res != out and out[-1] == res[-1]:  # batch axes moved, each matrix's rows still contiguous
            return f"_matmul_to({x}, {y}, {_ints(tuple(res.index(ch) for ch in out))})"
        return _in_order(f"np.matmul({x}, {y})", res, out)
    path = ", ".join(repr(tuple(int(k) for k in step)) for step in _einsum_path(e)[1:])
    if jax:
        return f"np.einsum({spec}, {operands}, optimize=[{path}])"
    return f'np.einsum({spec}, {operands}, optimize=["einsum_path", {path}])'


def _in_order(code: str, res: str, out: str) -> str:
    """``code``, whose axes are the letters ``res``, viewed in the output's order ``out``."""
    return code if res == out else f"{code}.transpose({', '.join(str(res.index(ch)) for ch in out)})"


def _ints(xs: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(x) for x in xs) + ("," if len(xs) == 1 else "") + ")"


def _einsum_forms(latex: bool) -> Callable[[Any, OpNode], str]:
    def form(p: Any, e: OpNode) -> str:
        ins, out = _subscripts(e)
        operands = ", ".join(p.operand(c, 0) for c in e.children)
        if latex:
            return rf"\operatorname{{einsum}}_{{{','.join(ins)} \to {out or '{}'}}}\left({operands}\right)"
        return f"einsum[{','.join(ins)}→{out}]({operands})"

    return form


def _einsum_index(e: OpNode, ij: tuple[str | None, ...], fresh: Callable[[], str]) -> IndexForm:
    ins, out = _subscripts(e)
    sizes = _letter_sizes(ins, [shape_of(c) for c in e.children], str(e.args[-1]))
    named: dict[str, str | None] = dict(zip(out, ij)) if out else {}
    summed = []
    for ch in dict.fromkeys("".join(ins)):
        if ch not in named:
            named[ch] = fresh()
            summed.append((named[ch], sizes[ch]))
    return IndexForm(tuple(summed), tuple(tuple(named[ch] for ch in part) for part in ins))


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "einsum", 1, _einsum_shape,
        vjps=(_einsum_vjp,),
        rules=("einsum: ∂L/∂𝒰 is the gradient of the einsum contracted with the other operands",),
        latex=_einsum_forms(True), text=_einsum_forms(False), numpy=_einsum_numpy,
        jax=lambda p, e: _einsum_numpy(p, e, jax=True),
        np_eval=lambda *a: np.einsum(str(a[-1].args[-1]), *a[:-1], optimize=len(a) > 2),
        sym_eval=lambda *a: np.einsum(str(a[-1].args[-1]), *a[:-1]),
        spec_name="einsum", attrs=("subscripts",), variadic=True, index=_einsum_index,
        contracts=lambda e, i: tuple(ax for ax, ch in enumerate(_subscripts(e)[0][i]) if ch not in _subscripts(e)[1]),
        doc='sum of products over the repeated letters: einsum("fc,cm->fm", W, X)',
        numpy_helper=(
            "def _matmul_to(a, b, axes):\n"
            '    """np.matmul(a, b).transpose(axes) as a C-ordered array: the products are written through\n'
            "    out= into an array already in that order, so no later reshape copies a strided view.\"\"\"\n"
            "    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])\n"
            "    out = np.empty(tuple(shape[i] for i in axes), dtype=np.result_type(a, b))\n"
            "    np.matmul(a, b, out=out.transpose(np.argsort(axes)))\n"
            "    return out\n"
        ),
        jax_helper=(
            "def _matmul_to(a, b, axes):\n"
            '    """jnp.matmul(a, b).transpose(axes) (XLA picks the layout)."""\n'
            "    return jnp.transpose(jnp.matmul(a, b), axes)\n"
        ),
    ),
)
