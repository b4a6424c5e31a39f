"""TimeDerivation -> program: a model with loops as a NumPy module, each loop a Python loop over t.

The equations outside the loops become statements as in :func:`backprop.codegen.lower.lower`
(stable forms, backward reusing forward values, common subexpressions), one straight-line segment
between two loops at a time. Each loop is lowered from its step, derived once for a general t
(:mod:`backprop.engine.through_time`):

- forward: the step's statements inside ``for t in range(T):``, the first state set before it, every
  step of each sequence, and of each value the backward pass reads, kept in a buffer of T steps
  (time first: one contiguous block per step); each sequence is then its buffer seen with the time
  axis where the spec puts it (``np.moveaxis``: a view, no copy);
- backward: the step's δs, the carry to the previous step and each shared value's term, inside
  ``for t in range(T - 1, -1, -1):``, each shared value's gradient accumulated in place, each
  per-step gradient (``X[:, t]``) written in its place; ``truncate=k`` cuts the carry at the end of
  every window of k steps (truncated BPTT as PyTorch users run it, equal to
  :meth:`~backprop.verification.through_time.TimeRun.gradients` with ``truncate=k``).

Nothing is unrolled: T is read from the arrays at run time. In-place array reuse is not applied
to these modules (only to modules without loops): each step's values are new arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import sympy
from sympy import Basic

from backprop.codegen import cse
from backprop.codegen.lower import Program, _helpers_used, _python_scalars, registry_helpers
from backprop.codegen.printer import NumpyPrinter, dims_read
from backprop.codegen.rewrite import available, resolver, reuse, stabilize
from backprop.codegen.stmt import Stmt, reads
from backprop.engine.simplify import simplify
from backprop.engine.through_time import ThroughTime, TimeDerivation, first_state, seed_shown
from backprop.expr.ir import shape_of
from backprop.expr.ops_reduce import rowsum_by_word
from backprop.expr.printing import GradSymbol, LoopGrad, grad_symbol, loop_grad, step_superscript, text
from backprop.language.domains import parse as parse_domain
from backprop.support.naming import CodeNames


@dataclass
class LoopCode:
    """One loop's lines in ``_forward`` and in ``backward`` (indented for the function body), and
    what they read from outside the loop."""

    forward: list[str]
    backward: list[str]
    forward_reads: set[Basic]  # outside values the forward loop reads
    backward_reads: set[Basic]  # forward values (and kept buffers) the backward loop reads
    kept: list[str]  # the kept buffers the backward loop reads (Python names)
    dims: set[str]  # dims the forward loop reads (spec names)
    back_dims: set[str]  # dims the backward loop reads
    made: set[Basic] = field(default_factory=set)  # outside symbols the forward loop defines (its sequences)
    grads: set[Basic] = field(default_factory=set)  # LoopGrad leaves the backward loop defines


# ---------------------------------------------------------------------------
# Names: every step symbol a Python identifier, handed out in a fixed order
# ---------------------------------------------------------------------------


def _base(name: str) -> str:
    """A spec or step name as an identifier's base: H[0] -> H_0, Z_I[t] -> Z_I_t, X[:, t] -> X_t."""
    return re.sub(r"\W+", "_", name).strip("_") or "v"


def _claim_names(td: TimeDerivation, names: CodeNames) -> None:
    model = td.model
    for decl in model.decls.values():
        names.var(decl.name)
    for eq in td.equations:
        names.named("var", eq.name, _base(eq.name))
    for s in model.sequences.values():
        names.named("var", s.stacked.name, _base(s.stacked.name))
    for dim in model.dims:
        names.dim(dim)
    for tt in td.loops:
        r = tt.loop
        names.named("loopvar", str(tt.index), r.var)
        for eq in tt.equations:
            names.named("var", eq.name, _base(eq.name))
            names.named("steps", eq.name, _base(eq.name.split("[")[0]) + "_steps")
        for s in r.states:
            assert s.prev is not None
            names.named("var", s.prev.name, _base(s.name) + "_prev")
        for sl in r.slices:
            names.named("var", sl.step.name, _base(sl.step.name))
        for d in tt.deltas:
            names.named("grad", d.target, "d" + _base(d.target))
        for s in r.sequences:
            names.named("var", tt.own[s.name].name, f"d{_base(s.name)}_out")
        for s in r.states:
            names.named("var", tt.after[s.name].name, f"d{_base(s.name)}_next")
        for kind, targets in (("sum", tt.terms), ("steps", tt.slice_terms)):
            for n in targets:
                names.named("var", loop_grad(tt.index, kind, r.var, n, ()).name, f"d{_base(n)}_{kind}")
        for s in r.states:
            names.named("var", loop_grad(tt.index, "first", r.var, f"{s.name}[0]", ()).name, f"d{_base(s.name)}_0_carry")
    for s in td.steps:
        names.named("grad", s.target, "d" + _base(s.target))


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
# A loop
# ---------------------------------------------------------------------------


def _at(code: str, axis: int, t: str) -> str:
    """``code`` indexed at step ``t`` along ``axis`` (``X[:, t]``)."""
    return f"{code}[{':, ' * axis}{t}]"


class _LoopLowering:
    """One loop's forward and backward lines."""

    def __init__(self, td: TimeDerivation, tt: ThroughTime, printer: NumpyPrinter, temp: Any,
                 own_known: set[str]) -> None:
        self.td, self.tt, self.p = td, tt, printer
        self.names = printer.names
        self.r = tt.loop
        self.t = self.names.lookup("loopvar", str(tt.index))
        self.temp = temp
        self.own_known = own_known  # sequences whose stacked gradient the outside computes

    def code(self, e: Basic) -> str:
        return self.p.doprint(e)

    def shape(self, shape: tuple[Basic, ...]) -> str:
        inner = ", ".join(self.code(sympy.sympify(d)) for d in shape)
        return f"({inner},)" if len(shape) == 1 else f"({inner})"

    def first(self, s: Any, init: Basic) -> str:
        """A state's first value as step 1 reads it: broadcast to the step's shape (a first state
        [h, 1] for an [h, m] step), so a sum over it counts every example."""
        code = self.code(init)
        return code if shape_of(init) == shape_of(s.step) else f"np.broadcast_to({code}, {self.shape(shape_of(s.step))})"

    def lower(self) -> LoopCode:
        r, tt, t = self.r, self.tt, self.t
        step_syms = {eq.symbol for eq in tt.equations}
        see = resolver({eq.name: eq.expr for eq in tt.equations})
        fwd = []
        for eq in tt.equations:
            expr, _ = stabilize(eq.expr, see)
            fwd.append(Stmt(eq.symbol, expr, "forward", "forward", (f"{text(eq.symbol)} = {text(eq.expr)}",)))
        back = self._backward_stmts(fwd)
        back_read = set().union(*(reads(s.expr) for s in back)) if back else set()
        made_back = {s.symbol for s in back}
        prevs = {s.prev: s for s in r.states if s.prev is not None}
        slices = {sl.step: sl for sl in r.slices}
        kept = [eq for eq in tt.equations
                if eq.symbol in back_read or eq.name in {s.step.name for s in r.sequences}
                or any(s.step == eq.symbol and s.prev in back_read for s in r.states)]
        length = self.names.dim(str(r.length))
        dims = {str(r.length)}
        bdims = {str(r.length)}
        buf = {eq.symbol: self.names.lookup("steps", eq.name) for eq in kept}

        # ---- forward
        outside_fwd: set[Basic] = set()
        for s in fwd:
            outside_fwd |= {x for x in reads(s.expr) if x not in step_syms and x not in prevs and x not in slices}
        outside_fwd |= {sl.source for sl in r.slices}
        firsts = {s.name: first_state(s) for s in r.states}
        outside_fwd |= set(firsts.values())
        dtype = self.names.named("var", f"loop{tt.index} dtype", "step_dtype")
        constant = {firsts[s.name] for s in r.states if s.init is not None and not reads(s.init)}
        typed = sorted({self.code(x) for x in outside_fwd - constant})
        lines = [f"# {r.header()} the step below, T times; what backward reads kept for every step",
                 f"{dtype} = np.result_type({', '.join([*typed, '1.0'])})"]
        for eq in kept:
            dims |= {str(d) for d in eq.shape if isinstance(d, sympy.Symbol)}
            lines.append(f"{buf[eq.symbol]} = np.empty(({length}, {self.shape(eq.shape)[1:-1]}), {dtype})"
                         if len(eq.shape) else f"{buf[eq.symbol]} = np.empty(({length},), {dtype})")
        for s in r.states:  # a constant first state (zeros) takes the step's dtype: float32 stays float32
            if s.init is not None and not reads(s.init):
                lines.append(f"{self.code(firsts[s.name])} = np.asarray({self.code(firsts[s.name])}, {dtype})")
        first = {s.name: self.first(s, firsts[s.name]) for s in r.states}
        for s in r.states:
            assert s.prev is not None
            lines.append(f"{self.code(s.prev)} = {first[s.name]}")
            if shape_of(firsts[s.name]) != shape_of(s.step):
                dims |= {str(d) for d in shape_of(s.step) if isinstance(d, sympy.Symbol)}
        body = [f"{self.code(sl.step)} = {_at(self.code(sl.source), sl.axis, t)}" for sl in r.slices]
        for s in fwd:
            body += [f"# {c}" for c in s.comment]
            body.append(f"{self.code(s.symbol)} = {self.code(s.expr)}")
            dims |= dims_read(s.expr)
        body += [f"{buf[eq.symbol]}[{t}] = {self.code(eq.symbol)}" for eq in kept]
        body += [f"{self.code(s.prev)} = {self.code(s.step)}" for s in r.states if s.prev is not None]
        lines.append(f"for {t} in range({length}):")
        lines += ["    " + b for b in body]
        made = set()
        for s in r.sequences:
            stacked = buf[s.step]
            view = stacked if s.time_axis == 0 else f"np.moveaxis({stacked}, 0, {s.time_axis})"
            lines.append(f"{self.code(s.stacked)} = {view}")
            made.add(s.stacked)

        # ---- backward
        bufs_read: list[str] = []
        blines: list[str] = [f"# backward through {r.header()} t = {r.length} down to 1"]
        grads: set[Basic] = set()
        back_needs: set[Basic] = set()
        for n in tt.terms:
            g = loop_grad(tt.index, "sum", r.var, n, ())
            blines.append(f"{self.code(g)} = 0.0")
            grads.add(g)
        for n in tt.slice_terms:
            g = loop_grad(tt.index, "steps", r.var, n, ())
            src = next(sl.source for sl in r.slices if sl.source.name == n)
            blines.append(f"{self.code(g)} = np.zeros(np.shape({self.code(src)}), {buf[kept[0].symbol]}.dtype)")
            bufs_read.append(buf[kept[0].symbol])
            back_needs.add(src)
            grads.add(g)
        for s in r.states:
            blines.append(f"{self.code(tt.after[s.name])} = 0.0")
        bbody = []
        for eq in kept:
            if eq.symbol in back_read:
                bbody.append(f"{self.code(eq.symbol)} = {buf[eq.symbol]}[{t}]")
                bufs_read.append(buf[eq.symbol])
        before = self.names.named("loopvar", f"{tt.index} before", f"{t}_before")
        if sum(prev in back_read for prev in prevs) > 1:  # the step before, once
            bbody.append(f"{before} = {t} - 1")
        else:
            before = f"{t} - 1"
        for prev, s in prevs.items():
            if prev in back_read:
                bbody.append(f"{self.code(prev)} = {buf[s.step]}[{before}] if {t} else {first[s.name]}")
                if shape_of(firsts[s.name]) != shape_of(s.step):
                    bdims |= {str(d) for d in shape_of(s.step) if isinstance(d, sympy.Symbol)}
                back_needs.add(firsts[s.name])
                bufs_read.append(buf[s.step])
        for sl in r.slices:
            if sl.step in back_read:
                bbody.append(f"{self.code(sl.step)} = {_at(self.code(sl.source), sl.axis, t)}")
                back_needs.add(sl.source)
        for s in r.sequences:
            own = tt.own[s.name]
            if own in back_read:
                gs = grad_symbol(s.name, shape_of(s.stacked))
                bbody.append(f"{self.code(own)} = {_at(self.code(gs), s.time_axis, t)}")
                back_needs.add(gs)
        if r.states:
            cut = ", ".join(self.code(tt.after[s.name]) for s in r.states)
            zeros = ", ".join("0.0" for _ in r.states)
            bbody += ["if truncate is not None and (" + t + " + 1) % truncate == 0:  # a window ends: detach the state",
                      f"    {cut} = {zeros}"]
        accumulate = {loop_grad(tt.index, "sum", r.var, n, ()).name: n for n in tt.terms}
        placed = {loop_grad(tt.index, "steps", r.var, n, ()).name: n for n in tt.slice_terms}
        for s in back:
            bbody += [f"# {c}" for c in s.comment]
            target, value = self.code(s.symbol), self.code(s.expr)
            bdims |= dims_read(s.expr)
            if s.symbol.name in accumulate:
                bbody.append(f"{target} += {value}")
            elif s.symbol.name in placed:
                axis = next(sl.axis for sl in r.slices if sl.source.name == placed[s.symbol.name])
                bbody.append(f"{_at(target, axis, t)} = {value}")
            else:
                bbody.append(f"{target} = {value}")
        blines.append(f"for {t} in range({length} - 1, -1, -1):")
        blines += ["    " + b for b in bbody]
        for s in r.states:
            g = loop_grad(tt.index, "first", r.var, f"{s.name}[0]", ())
            blines.append(f"{self.code(g)} = {self.code(tt.after[s.name])}")
            grads.add(g)
        internal = step_syms | set(prevs) | set(slices) | set(tt.own.values()) | set(tt.after.values()) | made_back
        back_needs |= {x for x in back_read if x not in internal}
        return LoopCode(lines, blines, outside_fwd, back_needs, list(dict.fromkeys(bufs_read)), dims, bdims, made, grads)

    def _backward_stmts(self, fwd: list[Stmt]) -> list[Stmt]:
        """The step's δs, then its carries, terms and per-step gradients, as statements (common
        subexpressions computed once)."""
        tt, r = self.tt, self.r
        have = available([(s.symbol, s.expr) for s in fwd])
        see = resolver({eq.name: eq.expr for eq in tt.equations})
        zero = {tt.own[s.name]: sympy.Integer(0) for s in r.sequences if s.name not in self.own_known}
        domains = self.td.model.domains()

        def ready(e: Basic) -> Basic:
            if zero:
                e = simplify(e.xreplace(zero), domains)
            e, _ = stabilize(e, see)
            e, _ = reuse(e, have)
            return e

        out = [Stmt(d.grad, ready(d.result), "backward", "backward", (f"{text(d.grad)} = {text(seed_shown(tt, d))}",))
               for d in tt.deltas]
        for s in r.states:
            if s.name in tt.carries:
                after = tt.after[s.name]
                out.append(Stmt(after, ready(tt.carries[s.name]), "backward", "backward",
                                (f"the share step {r.var} sends back to step {r.var} − 1: {text(tt.carries[s.name])}",)))
        for kind, table in (("sum", tt.terms), ("steps", tt.slice_terms)):
            for n, term in table.items():
                g = loop_grad(tt.index, kind, r.var, n, ())
                what = f"∂L/∂{n}{step_superscript(r.var)}" if kind == "sum" else f"∂L/∂{n} at step {r.var}"
                out.append(Stmt(g, ready(term), "backward", "backward", (f"{what} = {text(term)}",)))
        # a share's name holds a running sum, not the share: a repeat of it is a temporary
        return cse.eliminate(out, self.temp, lambda sym, e: (f"{text(sym)} = {text(e)}",),
                             holds=lambda s: not isinstance(s.symbol, LoopGrad))


# ---------------------------------------------------------------------------
# The program: outside segments and loops, in order
# ---------------------------------------------------------------------------


def _stmt_view(p: NumpyPrinter, s: Stmt) -> dict[str, Any]:
    return {"target": p.doprint(s.symbol), "code": p.doprint(s.expr), "comment": s.comment, "frees": "",
            "seed": "", "note": "", "steps": []}


def _loop_view(lines: list[str]) -> dict[str, Any]:
    return {"lines": lines}


def lower_time(td: TimeDerivation) -> Program:
    """The module's program for a model with loops: outside statements and loop blocks, in order
    (the template's views in :attr:`Program.loop_views`)."""
    model = td.model
    names = CodeNames(reserved=set(registry_helpers()))
    _claim_names(td, names)
    printer = NumpyPrinter(names, set(model.dims))
    forward, backward = _outside(td)
    comment = lambda sym, e: (f"{text(sym)} = {text(e)}",)  # noqa: E731
    printer.python_scalars = _python_scalars(model, forward)
    own_known = {s.symbol.of for s in backward if isinstance(s.symbol, GradSymbol)}
    with rowsum_by_word():  # in a loop's comments Σₜ is the sum over the steps
        loops = [_LoopLowering(td, tt, printer, names.temp, own_known).lower() for tt in td.loops]

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
    shim = SimpleNamespace(model=model, loss=td.loss,
                           equations=list(td.equations) + [eq for tt in td.loops for eq in tt.equations])
    program = Program(model, shim, "numpy", names, printer, forward + backward, cache, cache_dims,  # type: ignore[arg-type]
                      forward_dims, _helpers_used(code), [])
    program.loop_views = (views(f_items, "forward"), views(b_items, "backward"))
    return program
