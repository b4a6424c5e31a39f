"""Liveness: which statements are needed, where each value is read for the last time, what
backward needs from forward.

Read backwards over the statements, from the roots the caller asks for (the
loss and the parameter gradients): dead statements are dropped, each
intermediate value is freed (``del``) after its last read, and the cache lists
what backward reads that forward or the caller provides. It is separate from
the statement-building passes because it only reads the statements' data flow,
never their expressions' meaning.
"""

from __future__ import annotations

from sympy import Basic

from backprop.codegen.printer import NumpyPrinter, dims_read
from backprop.codegen.stmt import Stmt, reads
from backprop.language.model import Model


def live(stmts: list[Stmt], roots: set[Basic]) -> list[Stmt]:
    """Drop statements nothing needed reads (backwards over the program)."""
    needed = set(roots)
    keep: list[Stmt] = []
    for s in reversed(stmts):
        if s.symbol in needed:
            keep.append(s)
            needed |= reads(s.expr)
    return keep[::-1]


def backward_reads(stmts: list[Stmt]) -> set[Basic]:
    """Values backward reads but does not make: forward keeps them for it."""
    made = {s.symbol for s in stmts if s.section == "backward"}
    return {x for s in stmts if s.section == "backward" for x in reads(s.expr)} - made


def frees(stmts: list[Stmt], section: str, keep: set[Basic]) -> dict[Basic, list[Basic]]:
    """Where each value ``section`` makes is read for the last time, so it can be dropped there.

    A local name keeps its array alive until the function returns; dropping each
    intermediate after its last use keeps peak memory at what is still needed,
    as hand-written code that rebinds one name does. ``keep`` (the cache, the
    loss, the gradients) lives on, and nothing is dropped after the last
    statement, where the function returns anyway.
    """
    body = [s for s in stmts if s.section == section]
    made = [s.symbol for s in body]
    last: dict[Basic, Basic] = {}
    for s in body:
        for x in reads(s.expr):
            last[x] = s.symbol
    out: dict[Basic, list[Basic]] = {}
    for x in made:
        at = last.get(x)
        if at is not None and x not in keep and at != made[-1]:
            out.setdefault(at, []).append(x)
    return out


def cache(model: Model, stmts: list[Stmt], printer: NumpyPrinter) -> tuple[list[str], list[str]]:
    """What backward reads that forward (or the caller) provides: values first, then dims."""
    backward = [s for s in stmts if s.section == "backward"]
    made_in_backward = {s.symbol for s in backward}
    read: set[Basic] = set()
    dims: set[str] = set()
    for s in backward:
        read |= {x for x in reads(s.expr) if x not in made_in_backward}
        dims |= dims_read(s.expr)
    order = [decl.symbol for decl in model.decls.values()] + [s.symbol for s in stmts if s.section == "forward"]
    values = [printer.doprint(x) for x in order if x in read]
    dim_list = [dim for dim in model.dims if dim in dims]
    return values + [printer.names.dim(dim) for dim in dim_list], dim_list
