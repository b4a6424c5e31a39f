"""Layouts: the axis order a temporary is stored in, chosen for the products that read it.

A contraction's result is a new array whose axes the einsum's output letters order; the spec's
letters are the math's (attention's output ``einsum("mhts,mshk->mhtk", P, V)``, head-major), but
the products reading it may want another memory order: ``np.tensordot`` copies an operand whose
summed axes are not one block next to its free ones (the attention output contracted over (h, k)
with Wo, then over (m, t) with ∂L/∂R, is copied to token-major both times; measured 2.6 ms against
0.7 ms for the first of these products). A temporary that only products read is stored in the
order that spares the most copies, provided the product making it can write that order directly
(``np.matmul`` into a transposed ``out=``); the readers' subscripts follow. The values are the same
numbers, in another order; the comment above the statement shows the order stored.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import permutations

from sympy import Basic
from sympy.core.symbol import Str

from backprop.codegen.stmt import Stmt, TempSymbol, reads, substitute
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_einsum import batched_matmul_plan, einsum_text, parse_subscripts, tensordot_plan
from backprop.expr.printing import text

#: The largest rank whose orders are all tried (5! = 120).
MAX_RANK = 5


def layout(stmts: list[Stmt], roots: set[Basic]) -> list[Stmt]:
    """``stmts`` with each temporary that only two-operand products read stored in the axis order
    that spares its readers a copy (see the module doc)."""
    for i in range(len(stmts)):
        s = stmts[i]
        if not isinstance(s.symbol, TempSymbol) or s.symbol in roots or not _product(s.expr):
            continue
        ins, out = parse_subscripts(str(s.expr.args[-1]))
        if not 3 <= len(out) <= MAX_RANK:
            continue
        readers = _readers(stmts, s.symbol)
        if readers is None:
            continue
        best = min(permutations(range(len(out))),
                   key=lambda perm: (_copies(ins, out, perm, readers), perm != tuple(range(len(out)))))
        if best == tuple(range(len(out))):
            continue
        stmts = _apply(stmts, i, ins, out, best, readers)
    return stmts


def _product(e: Basic) -> bool:
    return isinstance(e, OpNode) and e.op.name == "einsum" and len(e.children) == 2


def _readers(stmts: list[Stmt], value: Basic) -> list[tuple[OpNode, int]] | None:
    """Every einsum reading ``value`` as a direct operand, and which operand; None if anything else does."""
    found: dict[OpNode, int] = {}
    for s in stmts:
        if value not in reads(s.expr):
            continue
        todo, seen = [s.expr], set()
        while todo:
            x = todo.pop()
            if not isinstance(x, OpNode) or x in seen:
                continue
            seen.add(x)
            at = [k for k, c in enumerate(x.children) if c == value]
            if at:
                if not (_product(x) and len(at) == 1) or value in reads(x.children[1 - at[0]]):
                    return None
                found[x] = at[0]
            todo.extend(c for c in x.children if c != value)
        if s.expr == value:
            return None
    return list(found.items()) or None


def _blocked(letters: str, summed: str) -> bool:
    """An operand ``np.tensordot`` reshapes without a copy: its summed axes one block, in the order
    given, before or after its free axes (each block in memory order)."""
    free = "".join(ch for ch in letters if ch not in summed)
    return letters in (free + summed, summed + free)


def _reader_copies(ins: tuple[str, ...], out: str) -> int:
    """Copies the printed form of the einsum ``ins -> out`` makes of its operands."""
    dot = tensordot_plan(ins, out)
    if dot is not None:
        first, second, _, _ = dot
        x, y = ins[first], ins[second]
        summed = "".join(ch for ch in x if ch in y)
        return (not _blocked(x, summed)) + (not _blocked(y, summed))
    return 0 if batched_matmul_plan(ins, out) is not None else 1


def _writes_in_order(ins: tuple[str, ...], out: str) -> bool:
    """The product making the temporary returns a C-ordered array in the order ``out``."""
    dot = tensordot_plan(ins, out)
    if dot is not None:
        return dot[3] == out
    bmm = batched_matmul_plan(ins, out)
    return bmm is not None and (bmm[4] == out or bmm[4][-1] == out[-1])


def _renamed(node: OpNode, at: int, perm: tuple[int, ...]) -> tuple[tuple[str, ...], str]:
    parts, out = parse_subscripts(str(node.args[-1]))
    parts = list(parts)
    parts[at] = "".join(parts[at][k] for k in perm)
    return tuple(parts), out


def _copies(ins: tuple[str, ...], out: str, perm: tuple[int, ...], readers: list[tuple[OpNode, int]]) -> int:
    new_out = "".join(out[k] for k in perm)
    if not _writes_in_order(ins, new_out):
        return 1_000_000
    return sum(_reader_copies(*_renamed(node, at, perm)) for node, at in readers)


def _apply(stmts: list[Stmt], i: int, ins: tuple[str, ...], out: str, perm: tuple[int, ...],
           readers: list[tuple[OpNode, int]]) -> list[Stmt]:
    s = stmts[i]
    shape = shape_of(s.symbol)
    new_symbol = TempSymbol(str(s.symbol.name), *(shape[k] for k in perm))
    new_out = "".join(out[k] for k in perm)
    expr = ir.node("einsum", *s.expr.children, Str(einsum_text(ins, new_out)))
    table: dict[Basic, Basic] = {}
    for node, at in readers:
        parts, rout = _renamed(node, at, perm)
        children = list(node.children)
        children[at] = new_symbol
        table[node] = ir.node("einsum", *children, Str(einsum_text(parts, rout)))
    note = f"stored as {new_out} (not {out}): the order the products reading it take without a copy"
    out_stmts = []
    for k, x in enumerate(stmts):
        if k == i:
            x = replace(x, symbol=new_symbol, expr=expr, comment=(f"{text(new_symbol)} = {text(expr)}", note))
        elif x.symbol != s.symbol:
            new = substitute(x.expr, table)
            if new is not x.expr:
                x = replace(x, expr=new)
        out_stmts.append(x)
    return out_stmts
