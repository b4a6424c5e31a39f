"""TimeDerivation -> program: a model with loops as a NumPy module, each loop a Python loop over t
(or as a JAX module, each loop a ``jax.lax.scan`` each way: :mod:`backprop.codegen.loop_scan`).

The equations outside the loops become statements as in :func:`backprop.codegen.lower.lower`
(stable forms, backward reusing forward values, common subexpressions), one straight-line segment
between two loops at a time; each loop is one block (:mod:`backprop.codegen.loop_code`) placed where
the chain rule meets it: in the forward pass where the spec has it, in the backward pass before the
first statement that reads what the loop sends back. Dead statements are dropped, and the cache is
what the backward statements and blocks read from the forward ones.

Nothing is unrolled: T is read from the arrays at run time. In-place array reuse is not applied
to these modules (only to modules without loops): each step's values are new arrays.
"""

from __future__ import annotations

from typing import Any

from sympy import Basic

from backprop.codegen import cse
from backprop.codegen.jax_printer import JaxPrinter
from backprop.codegen.loop_code import LoopCode, LoopLowering, py_base
from backprop.codegen.loop_scan import ScanLowering
from backprop.codegen.lower import Program, _helpers_used, _python_scalars, registry_helpers
from backprop.codegen.printer import NumpyPrinter, dims_read
from backprop.codegen.rewrite import available, resolver, reuse, stabilize
from backprop.codegen.stmt import Stmt, reads
from backprop.engine.through_time import TimeDerivation
from backprop.expr.ir import OpNode
from backprop.expr.ops_reduce import rowsum_by_word
from backprop.expr.printing import GradSymbol, LoopGrad, grad_symbol, loop_grad, text
from backprop.language.domains import parse as parse_domain
from backprop.support.naming import JAX_MODULE_NAMES, CodeNames

# ---------------------------------------------------------------------------
# Names: every step symbol a Python identifier, handed out in a fixed order
# ---------------------------------------------------------------------------


def _claim_names(td: TimeDerivation, names: CodeNames) -> None:
    model = td.model
    for decl in model.decls.values():
        names.var(decl.name)
    for eq in td.equations:
        names.named("var", eq.name, py_base(eq.name))
    for s in model.sequences.values():
        names.named("var", s.stacked.name, py_base(s.stacked.name))
    for dim in model.dims:
        names.dim(dim)
    for tt in td.loops:
        r = tt.loop
        names.named("loopvar", str(tt.index), r.var)
        for eq in tt.equations:
            names.named("var", eq.name, py_base(eq.name))
            names.named("steps", eq.name, py_base(eq.name.split("[")[0]) + "_steps")
        for s in r.states:
            assert s.prev is not None
            names.named("var", s.prev.name, py_base(s.name) + "_prev")
        for sl in r.slices:
            names.named("var", sl.step.name, py_base(sl.step.name))
        for d in tt.deltas:
            names.named("grad", d.target, "d" + py_base(d.target))
        for s in r.sequences:
            names.named("var", tt.own[s.name].name, f"d{py_base(s.name)}_out")
        for s in r.states:
            names.named("var", tt.after[s.name].name, f"d{py_base(s.name)}_next")
        for kind, targets in (("sum", tt.terms), ("steps", tt.slice_terms)):
            for n in targets:
                names.named("var", loop_grad(tt.index, kind, r.var, n, ()).name, f"d{py_base(n)}_{kind}")
        for s in r.states:
            names.named("var", loop_grad(tt.index, "first", r.var, f"{s.name}[0]", ()).name, f"d{py_base(s.name)}_0_carry")
    for s in td.steps:
        names.named("grad", s.target, "d" + py_base(s.target))


# ---------------------------------------------------------------------------
# The outside statements
# ---------------------------------------------------------------------------


def _needed(td: TimeDerivation) -> list[Any]:
    """The outside steps some param gradient needs; a LoopGrad leaf needs its loop's sequences' δs."""
    needed = set(td.params)
    for s in reversed(td.steps):
        if s.target in needed:
            needed |= {g.of for g in s.result.atoms(GradSymbol)}
            for g in s.result.atoms(LoopGrad):
                needed |= {q.name for q in td.loops[g.loop].loop.sequences}
    return [s for s in td.steps if s.target in needed]


def _outside(td: TimeDerivation) -> tuple[list[Stmt], list[Stmt]]:
    see = resolver({eq.name: eq.expr for eq in td.equations})
    forward = []
    for eq in td.equations:
        expr, fired = stabilize(eq.expr, see)
        comment = [f"{text(eq.symbol)} = {text(eq.expr)}"]
        if any(r.why == "stable" for r in fired):
            comment.append("stable form: " + "; ".join(r.name for r in fired if r.why == "stable"))
        forward.append(Stmt(eq.symbol, expr, "forward", "forward", tuple(comment)))
    have = available([(s.symbol, s.expr) for s in forward])
    backward = []
    for s in _needed(td):
        expr, _ = stabilize(s.result, see)
        expr, _ = reuse(expr, have)
        backward.append(Stmt(grad_symbol(s.target, s.shape), expr, "backward", "backward",
                             (f"{text(s.grad)} = {text(s.result)}",)))
    return forward, backward


# ---------------------------------------------------------------------------
# The program: outside segments and loops, in order
# ---------------------------------------------------------------------------


def _stmt_view(p: NumpyPrinter, s: Stmt) -> dict[str, Any]:
    return {"target": p.doprint(s.symbol), "code": p.doprint(s.expr), "comment": s.comment, "frees": "",
            "seed": "", "note": "", "steps": []}


def _loop_view(lines: list[str]) -> dict[str, Any]:
    return {"lines": lines}


def lower_time(td: TimeDerivation, backend: str = "numpy") -> Program:
    """The module's program for a model with loops: outside statements and loop blocks, in order
    (the template's views in :attr:`Program.loop_views`). For ``backend`` "jax" each loop is a
    ``lax.scan`` (:mod:`backprop.codegen.loop_scan`), every expression printed by the JAX printer."""
    model = td.model
    jax = backend == "jax"
    names = CodeNames(reserved=set(registry_helpers(backend)) | (JAX_MODULE_NAMES if jax else set()))
    _claim_names(td, names)
    printer = (JaxPrinter if jax else NumpyPrinter)(names, set(model.dims))
    forward, backward = _outside(td)
    comment = lambda sym, e: (f"{text(sym)} = {text(e)}",)  # noqa: E731
    printer.python_scalars = _python_scalars(model, forward)
    # a sequence whose gradient from after the loop is 0 (read there by nothing that needs one) adds nothing
    own_known = {s.symbol.of for s in backward if isinstance(s.symbol, GradSymbol) and not _zero(s.expr)}
    with rowsum_by_word():  # in a loop's comments Σₜ is the sum over the steps
        loops = [(ScanLowering if jax else LoopLowering)(td, tt, printer, names.temp, own_known).lower() for tt in td.loops]

    # forward: segments between the loops
    f_items: list[Stmt | LoopCode] = []
    cuts = [0, *td.at, len(forward)]
    for i in range(len(cuts) - 1):
        f_items += cse.eliminate(forward[cuts[i]:cuts[i + 1]], names.temp, comment)
        if i < len(loops):
            f_items.append(loops[i])
    # backward: each loop's block before the first statement that reads what it sends back
    b_items: list[Stmt | LoopCode] = []
    segment: list[Stmt] = []
    placed: set[int] = set()
    for s in backward:
        wants = sorted({g.loop for g in s.expr.atoms(LoopGrad)} - placed)
        if wants:
            b_items += cse.eliminate(segment, names.temp, comment)
            segment = []
            for i in wants:
                b_items.append(loops[i])
                placed.add(i)
        segment.append(s)
    b_items += cse.eliminate(segment, names.temp, comment)
    b_items = _live(b_items, {grad_symbol(p.name, p.shape) for p in model.params})

    # what backward reads from forward: the cache
    b_read: set[Basic] = set()
    b_made: set[Basic] = set()
    b_dims: set[str] = set()
    kept: set[str] = set()
    for it in b_items:
        if isinstance(it, LoopCode):
            b_read |= it.backward_reads - b_made
            b_made |= it.grads
            b_dims |= it.back_dims
            kept |= set(it.kept)
        else:
            b_read |= reads(it.expr) - b_made
            b_made.add(it.symbol)
            b_dims |= dims_read(it.expr)
    cache: list[str] = [names.var(d.name) for d in model.decls.values() if d.symbol in b_read]
    f_dims: set[str] = set()
    for it in f_items:
        if isinstance(it, LoopCode):
            cache += [p for p in it.kept if p in kept]
            cache += [printer.doprint(x) for x in sorted(it.made, key=str) if x in b_read]
            f_dims |= it.dims
        else:
            if it.symbol in b_read:
                cache.append(printer.doprint(it.symbol))
            f_dims |= dims_read(it.expr)
    cache_dims = [d for d in model.dims if d in b_dims]
    cache += [names.dim(d) for d in cache_dims]
    f_dims |= set(cache_dims) | {a for x in model.inputs if x.domain and (a := parse_domain(x.domain)[1]) in model.dims}
    forward_dims = [d for d in model.dims if d in f_dims]

    def views(items: list[Stmt | LoopCode], section: str) -> list[dict[str, Any]]:
        return [_loop_view(it.forward if section == "forward" else it.backward) if isinstance(it, LoopCode)
                else _stmt_view(printer, it) for it in items]

    code = "\n".join("\n".join(it.forward + it.backward) if isinstance(it, LoopCode) else printer.doprint(it.expr)
                     for it in f_items + b_items)
    program = Program(model, td, backend, names, printer, forward + backward, cache, cache_dims,
                      forward_dims, _helpers_used(code, backend), [])
    program.loop_views = (views(f_items, "forward"), views(b_items, "backward"))
    return program


def _zero(e: Basic) -> bool:
    """0, or 0 broadcast to a shape."""
    while isinstance(e, OpNode) and e.op.name == "broadcast":
        e = e.children[0]
    return e == 0


def _live(items: list[Stmt | LoopCode], roots: set[Basic]) -> list[Stmt | LoopCode]:
    """The backward statements and loop blocks something needed reads (backwards from the params' gradients)."""
    needed = set(roots)
    keep: list[Stmt | LoopCode] = []
    for it in reversed(items):
        if isinstance(it, LoopCode):
            if {g.name for g in it.grads} & {x.name for x in needed}:  # a LoopGrad's shape is its reader's
                keep.append(it)
                needed |= it.backward_reads
        elif it.symbol in needed:
            keep.append(it)
            needed |= reads(it.expr)
    return keep[::-1]
