"""Contractions and products as the code-generation passes rewrite them.

A two-operand contraction (an einsum, or a matrix product read as ``ij,jk->ik``) is a
:class:`Site`: its operands seen through any transpose, and the letters naming their axes. A
product is a sign, numerators and denominators. :func:`contract` and :func:`product` build nodes
back in one canonical form, so that the same contraction or product reached from two statements
is one node and common subexpressions find it.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sympy import Basic, Integer, srepr

from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_einsum import einsum, einsum_text, parse_subscripts
from backprop.expr.ops_tensor import permute, reshape

# ---------------------------------------------------------------------------
# Contractions as letters: einsum and matrix products alike
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """A two-operand contraction ``node``: its operands (through any transpose) and their letters."""

    node: OpNode
    ins: tuple[str, str]
    out: str
    operands: tuple[Basic, Basic]


def unview(x: Basic, letters: str) -> tuple[Basic, str]:
    """An operand read through a transpose or permutation, as the value itself with its own letters."""
    if isinstance(x, OpNode) and x.op.name == "transpose" and len(letters) == 2:
        return x.children[0], letters[::-1]
    if isinstance(x, OpNode) and x.op.name == "permute":
        perm = [int(k) for k in x.attrs[-1]]
        own = [""] * len(perm)
        for k, axis in enumerate(perm):
            own[axis] = letters[k]
        return x.children[0], "".join(own)
    return x, letters


def site_of(node: Basic) -> Site | None:
    if not isinstance(node, OpNode) or len(node.children) != 2:
        return None
    if node.op.name == "matmul" and all(len(shape_of(c)) == 2 for c in node.children):
        ins, out = ("ij", "jk"), "ik"
    elif node.op.name == "einsum":
        parts, out = parse_subscripts(str(node.args[-1]))
        ins = (parts[0], parts[1])
    else:
        return None
    (a, la), (b, lb) = (unview(c, p) for c, p in zip(node.children, ins))
    return Site(node, (la, lb), out, (a, b))


def fresh(used: str) -> Iterator[str]:
    return (ch for ch in string.ascii_letters if ch not in used)


def arrange(x: Basic, letters: str, target: str) -> Basic:
    """``x`` (axes named ``letters``; each axis of length > 1 named in ``target``) with its axes in
    ``target``'s order, length 1 along the letters it lacks: ready to broadcast against it."""
    shape = shape_of(x)
    if not shape:
        return x
    keep = sorted((ax for ax in range(len(shape)) if shape[ax] != 1), key=lambda ax: target.index(letters[ax]))
    if keep != sorted(keep):
        x = permute(x, keep + [ax for ax in range(len(shape)) if ax not in keep])
    sizes = {letters[ax]: shape[ax] for ax in keep}
    return reshape(x, [sizes.get(ch, Integer(1)) for ch in target])


def canonical(ins: Sequence[str], out: str) -> tuple[list[str], str]:
    """Letters renamed in order of first appearance: the same contraction is the same node, whatever
    letters the statement it came from used (so common subexpressions find it)."""
    names: dict[str, str] = {}
    for ch in "".join(ins) + out:
        names.setdefault(ch, string.ascii_letters[len(names)])
    return ["".join(names[ch] for ch in p) for p in ins], "".join(names[ch] for ch in out)


def contract(ins: Sequence[str], out: str, operands: Sequence[Basic]) -> Basic:
    """The einsum ``ins -> out`` of ``operands`` in its simplest node: axes of length 1 that only one
    operand has are dropped; operands sharing no letter multiply (broadcasting) instead."""
    parts, ops = [], []
    for letters, x in zip(ins, operands):
        shape, others = shape_of(x), "".join(p for p in ins if p is not letters) + out
        alone = [ax for ax, ch in enumerate(letters) if ch not in others]
        summed = tuple(ax for ax in alone if shape[ax] != 1)
        if summed:
            x = ir.total(x, summed)
        if len(alone) == len(letters):
            x, letters = as_scalar(x), ""
        elif alone:
            x = reshape(x, [d for ax, d in enumerate(shape) if ax not in alone])
            letters = "".join(ch for ax, ch in enumerate(letters) if ax not in alone)
        parts.append(letters)
        ops.append(x)
    if len(ops) == 1 or not set(parts[0]) & set(parts[1]):
        product: Basic = Integer(1)
        for letters, x in zip(parts, ops):
            product = ir.mul(product, arrange(x, letters, out) if letters else x)
        return product
    return einsum_of(parts, out, ops)


def einsum_of(ins: Sequence[str], out: str, operands: Sequence[Basic]) -> Basic:
    """The einsum node (or the matrix product it is), letters canonical."""
    ins, out = canonical(ins, out)
    return einsum(einsum_text(ins, out), *operands)


def as_scalar(x: Basic) -> Basic:
    """A value of length 1 along every axis, as a scalar (1×1)."""
    return reshape(x, ir.SCALAR)


# ---------------------------------------------------------------------------
# Products as factors
# ---------------------------------------------------------------------------


def factors(e: Basic) -> tuple[int, list[Basic], list[Basic]]:
    """``e`` as sign · Π numerators / Π denominators, through products, quotients and negations."""
    sign, nums, dens = 1, [], []
    todo = [(e, True)]
    while todo:
        x, up = todo.pop()
        name = x.op.name if isinstance(x, OpNode) else None
        if name == "mul":
            todo += [(c, up) for c in reversed(x.children)]
        elif name == "div":
            todo += [(x.children[1], not up), (x.children[0], up)]
        elif name == "neg":
            sign = -sign
            todo.append((x.children[0], up))
        else:
            (nums if up else dens).append(x)
    return sign, nums, dens


def product(nums: Sequence[Basic], dens: Sequence[Basic]) -> Basic:
    """Π nums / Π dens, factors in a fixed order: equal products are equal nodes."""
    top: Basic = Integer(1)
    for x in sorted(nums, key=srepr):
        top = ir.mul(top, x)
    bottom: Basic = Integer(1)
    for x in sorted(dens, key=srepr):
        bottom = ir.mul(bottom, x)
    return ir.div(top, bottom)


def signed(sign: int, x: Basic) -> Basic:
    return x if sign > 0 else ir.neg(x)


def signed_sum(terms: Sequence[tuple[int, Basic]]) -> Basic:
    total: Basic = Integer(0)
    for sign, t in terms:
        total = ir.add(total, t) if sign > 0 else ir.sub(total, t)
    return total
