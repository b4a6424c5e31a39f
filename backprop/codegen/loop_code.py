"""One loop's code: its forward as a Python loop over t and its backward as one from T down to 1.

The step's statements (its equations in stable forms; its δs, carries and shares from
:mod:`backprop.engine.through_time`, common subexpressions computed once) printed inside the loops:

- forward: the first state set; each value the backward pass reads kept as the step computed it (a
  list), each sequence in one array of T steps (time first) then seen with the time axis where the
  spec puts it (``np.moveaxis``: a view); the products of a step's input with outside weights
  computed for every step before the loop, and a state's products with several weights as one
  (:mod:`backprop.codegen.loop_stack`);
- backward: the step's δs and the carry to the previous step, cut at the end of every window when
  ``truncate=k``; each shared value's share either summed after the loop in one contraction
  (:mod:`backprop.codegen.loop_sums`) or accumulated in place; a value read at every step
  (``X[:, t]``) given its gradient in place.

:mod:`backprop.codegen.through_time` places these blocks among the statements outside the loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy
from sympy import Basic, MatrixSymbol

from backprop.codegen import cse, loop_stack
from backprop.codegen.loop_after import LoopAfter
from backprop.codegen.loop_forward import LoopForward, py_base
from backprop.codegen.loop_sums import Contraction, Linear, summed_after
from backprop.codegen.printer import NumpyPrinter, dims_read
from backprop.codegen.rewrite import available, resolver, reuse, stabilize
from backprop.codegen.stmt import Stmt, reads
from backprop.engine.simplify import simplify
from backprop.engine.through_time import ThroughTime, TimeDerivation, first_state, seed_shown
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.printing import LoopGrad, grad_symbol, loop_grad, step_superscript, text


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
# A loop
# ---------------------------------------------------------------------------


def _at(code: str, axis: int, t: str) -> str:
    """``code`` indexed at step ``t`` along ``axis`` (``X[:, t]``)."""
    return f"{code}[{':, ' * axis}{t}]"


@dataclass
class _Plan:
    """What one loop's forward and backward lines are printed from: the step's statements, what the
    backward pass reads, what is kept for every step and where."""

    fwd: list[Stmt]
    back: list[Stmt]
    hoisted: list[Contraction | Linear]
    back_read: set[Basic]
    step_syms: set[Basic]
    made_back: set[Basic]
    prevs: dict[Basic, Any]
    slices: dict[Basic, Any]
    kept: list[Any]
    buf: dict[Basic, str]
    seq_steps: set[Basic]
    length: str
    firsts: dict[str, Basic]
    first: dict[str, str]


#: Operations whose NumPy form is one ufunc (which computes into ``out=``), and their arity.
_UFUNCS = {"add": "add", "sub": "subtract", "mul": "multiply", "tanh": "tanh", "exp": "exp", "log": "log"}
_ARITY = {"add": 2, "subtract": 2, "multiply": 2, "tanh": 1, "exp": 1, "log": 1}


class LoopLowering(LoopForward, LoopAfter):
    """One loop's forward and backward lines."""

    def __init__(self, td: TimeDerivation, tt: ThroughTime, printer: NumpyPrinter, temp: Any,
                 own_known: set[str]) -> None:
        self.td, self.tt, self.p = td, tt, printer
        self.names = printer.names
        self.r = tt.loop
        self.t = self.names.lookup("loopvar", str(tt.index))
        self.temp = temp
        self.own_known = own_known  # sequences whose stacked gradient the outside computes
        #: δs of the step side by side (a step value) -> (the δs, the axis they are joined along)
        self.joined: dict[MatrixSymbol, tuple[list[Basic], int]] = {}

    def code(self, e: Basic) -> str:
        return self.p.doprint(e)

    def shape(self, shape: tuple[Basic, ...]) -> str:
        inner = ", ".join(self.code(sympy.sympify(d)) for d in shape)
        return f"({inner},)" if len(shape) == 1 else f"({inner})"

    def _into(self, e: Basic, slot: str) -> str | None:
        """``e`` computed into ``slot`` (a step's place in a kept array) when its last operation is a
        ufunc or a concatenation, which take ``out=``: no copy into the array afterwards; else None."""
        if not isinstance(e, OpNode):
            return None
        ufunc = _UFUNCS.get(e.op.name)
        args = [self.code(c) for c in e.children]
        if ufunc is not None and len(args) == _ARITY[ufunc] and not e.attrs:
            return f"np.{ufunc}({', '.join(args)}, out={slot})"
        if e.op.name == "concat":
            return f"np.concatenate(({', '.join(args)}), axis={int(e.attrs[-1][0])}, out={slot})"
        return None

    def first(self, s: Any, init: Basic) -> str:
        """A state's first value as step 1 reads it: broadcast to the step's shape (a first state
        [h, 1] for an [h, m] step), so a sum over it counts every example."""
        code = self.code(init)
        return code if shape_of(init) == shape_of(s.step) else f"np.broadcast_to({code}, {self.shape(shape_of(s.step))})"

    def lower(self) -> LoopCode:
        """The loop's code: what both passes read worked out once (the plan), then each printed."""
        r, tt = self.r, self.tt
        step_syms = {eq.symbol for eq in tt.equations}
        see = resolver({eq.name: eq.expr for eq in tt.equations})
        fwd = []
        for eq in tt.equations:
            expr, _ = stabilize(eq.expr, see)
            fwd.append(Stmt(eq.symbol, expr, "forward", "forward", (f"{text(eq.symbol)} = {text(eq.expr)}",)))
        outside = set().union(*(reads(s.expr) for s in fwd)) - step_syms - {s.prev for s in r.states} \
            - {sl.step for sl in r.slices}
        self.stacks = {g: self._stack_names(g) for g in loop_stack.groups(fwd, {s.prev for s in r.states}, outside)}
        back, hoisted = self._backward_stmts(fwd)
        back_read = set().union(*(reads(s.expr) for s in back)) if back else set()
        all_read = back_read.union(*(reads(h.stmt.expr) for h in hoisted))
        made_back = {s.symbol for s in back}
        prevs = {s.prev: s for s in r.states if s.prev is not None}
        slices = {sl.step: sl for sl in r.slices}
        kept = [eq for eq in tt.equations
                if eq.symbol in all_read or eq.name in {s.step.name for s in r.sequences}
                or any(s.step == eq.symbol and s.prev in all_read for s in r.states)]
        length = self.names.dim(str(r.length))
        buf = {eq.symbol: self.names.lookup("steps", eq.name) for eq in kept}
        seq_steps = {q.step for q in r.sequences}
        self.like = buf[r.sequences[0].step]  # a sequence's buffer: its dtype is the step's
        firsts = {s.name: first_state(s) for s in r.states}
        first = {s.name: self.first(s, firsts[s.name]) for s in r.states}
        plan = _Plan(fwd, back, hoisted, back_read, step_syms, made_back, prevs, slices, kept, buf, seq_steps, length,
                     firsts, first)
        lines, outside_fwd, dims, made = self._forward_lines(plan)
        blines, back_needs, bufs_read, bdims, grads = self._backward_lines(plan)
        return LoopCode(lines, blines, outside_fwd, back_needs, list(dict.fromkeys(bufs_read)), dims, bdims, made, grads)


    def _outside(self, p: _Plan) -> tuple[set[Basic], str, list[str]]:
        """The values the step reads from outside the loop; the name of the step's dtype, and the values
        (as code) that set it: all but a constant first state, which takes the step's dtype."""
        r = self.r
        outside: set[Basic] = set()
        for s in p.fwd:
            outside |= {x for x in reads(s.expr) if x not in p.step_syms and x not in p.prevs and x not in p.slices}
        outside |= {sl.source for sl in r.slices} | set(p.firsts.values())
        dtype = self.names.named("var", f"loop{self.tt.index} dtype", "step_dtype")
        constant = {p.firsts[s.name] for s in r.states if s.init is not None and not reads(s.init)}
        return outside, dtype, sorted({self.code(x) for x in outside - constant})

    def _moved_out(self, p: _Plan, outside: set[Basic]) -> tuple[list[Stmt], list[str], dict[Basic, Any]]:
        """The products moved before the loop (the step's input projected for every step at once, a
        state's weights stacked): the step's statements reading them, the lines before the loop, and
        the projections (``outside`` gains their sources)."""
        fwd, projections = self._projections(p.fwd, p.step_syms | set(p.prevs))
        lines = [line for _, line, _ in projections.values() if line]
        outside |= {src for src, _, _ in projections.values()}
        for g, (stacked, product) in self.stacks.items():
            lines.append(f"{self.code(stacked)} = {self._concat(g)}  # stacked once, read at every step")
            fwd = [Stmt(st.symbol, loop_stack.forward(st.expr, g, product), st.kind, st.section, st.comment) for st in fwd]
        return fwd, lines, projections

    def _step_reads(self, fwd: list[Stmt], projections: dict[Basic, Any]) -> list[str]:
        """The step's first lines: its slice of each sequence it reads, and of each projection."""
        read = set().union(*(reads(s.expr) for s in fwd))
        body = [f"{self.code(sl.step)} = {_at(self.code(sl.source), sl.axis, self.t)}" for sl in self.r.slices
                if sl.step in read]
        return body + [f"{self.code(sym)} = {at}" for sym, (_, _, at) in projections.items() if sym in read]

    def _product_line(self, g: loop_stack.Group, stacked: Basic, product: Basic) -> str:
        """A state's product with its stacked weights, once per step."""
        return f"{self.code(product)} = " + (f"{self.code(g.operand)} @ {self.code(stacked)}" if g.left
                                             else f"{self.code(stacked)} @ {self.code(g.operand)}")

    def _forward_lines(self, p: _Plan) -> tuple[list[str], set[Basic], set[str], set[Basic]]:
        """The forward loop's lines, the outside values they read, the dims they read, the sequences
        they make."""
        r, t = self.r, self.t
        kept = p.kept
        buf, seq_steps, length, firsts, first = p.buf, p.seq_steps, p.length, p.firsts, p.first
        dims = {str(r.length)}
        outside_fwd, dtype, typed = self._outside(p)
        lines = [f"# {r.header()} the step below, T times; what backward reads kept for every step",
                 f"{dtype} = np.result_type({', '.join([*typed, '1.0'])})"]
        for eq in kept:
            dims |= {str(d) for d in eq.shape if isinstance(d, sympy.Symbol)}
            if eq.symbol not in seq_steps:  # kept as the step computed it: a list, no copy
                lines.append(f"{buf[eq.symbol]} = []")
            else:  # a sequence: every step in one array, read after the loop
                lines.append(f"{buf[eq.symbol]} = np.empty(({length}, {self.shape(eq.shape)[1:-1]}), {dtype})"
                             if len(eq.shape) else f"{buf[eq.symbol]} = np.empty(({length},), {dtype})")
        for s in r.states:  # a constant first state (zeros) takes the step's dtype: float32 stays float32
            if s.init is not None and not reads(s.init):
                lines.append(f"{self.code(firsts[s.name])} = np.asarray({self.code(firsts[s.name])}, {dtype})")
        for s in r.states:
            assert s.prev is not None
            lines.append(f"{self.code(s.prev)} = {first[s.name]}")
            if shape_of(firsts[s.name]) != shape_of(s.step):
                dims |= {str(d) for d in shape_of(s.step) if isinstance(d, sympy.Symbol)}
        fwd, moved, projections = self._moved_out(p, outside_fwd)
        lines += moved
        fwd, before, after = self._fused(fwd, dtype)
        lines += before
        body = self._step_reads(fwd, projections)
        for g, (stacked, product) in self.stacks.items():
            body.append(self._product_line(g, stacked, product))
            body += after.get(product, [])
        written: set[Basic] = set()  # sequence steps computed straight into their slot of the array
        for s in fwd:
            body += [f"# {c}" for c in s.comment]
            into = self._into(s.expr, f"{buf[s.symbol]}[{t}]") if s.symbol in seq_steps else None
            body.append(f"{self.code(s.symbol)} = {into or self.code(s.expr)}")
            written |= {s.symbol} if into else set()
            dims |= dims_read(s.expr)
        body += [f"{buf[eq.symbol]}[{t}] = {self.code(eq.symbol)}" if eq.symbol in seq_steps
                 else f"{buf[eq.symbol]}.append({self.code(eq.symbol)})" for eq in kept if eq.symbol not in written]
        body += [f"{self.code(s.prev)} = {self.code(s.step)}" for s in r.states if s.prev is not None]
        lines.append(f"for {t} in range({length}):")
        lines += ["    " + b for b in body]
        views, made = self._sequence_views(p)
        return lines + views, outside_fwd, dims, made

    def _sequence_views(self, p: _Plan) -> tuple[list[str], set[Basic]]:
        """Each sequence after the loop: its steps' array seen with the time axis where the spec puts it
        (a view), and the sequences so made."""
        lines, made = [], set()
        for s in self.r.sequences:
            stacked = p.buf[s.step]
            view = stacked if s.time_axis == 0 else f"np.moveaxis({stacked}, 0, {s.time_axis})"
            lines.append(f"{self.code(s.stacked)} = {view}")
            made.add(s.stacked)
        return lines, made

    def _backward_lines(self, p: _Plan) -> tuple[list[str], set[Basic], list[str], set[str], set[Basic]]:
        """The backward loop's lines (and the sums after it), the forward values they read, the kept
        arrays they read, the dims they read, the LoopGrad leaves they define."""
        r, tt, t = self.r, self.tt, self.t
        back, hoisted, back_read = p.back, p.hoisted, p.back_read
        step_syms, made_back, prevs, slices, kept = p.step_syms, p.made_back, p.prevs, p.slices, p.kept
        buf, length, firsts, first = p.buf, p.length, p.firsts, p.first
        bdims = {str(r.length)}
        bufs_read: list[str] = []
        blines: list[str] = [f"# backward through {r.header()} t = {r.length} down to 1"]
        grads: set[Basic] = set()
        back_needs: set[Basic] = set()
        after_sums = {h.stmt.symbol for h in hoisted}
        for n in tt.terms:
            g = loop_grad(tt.index, "sum", r.var, n, ())
            if g not in after_sums:
                blines.append(f"{self.code(g)} = 0.0")
            grads.add(g)
        for n in tt.slice_terms:
            g = loop_grad(tt.index, "steps", r.var, n, ())
            src = next(sl.source for sl in r.slices if sl.source.name == n)
            blines.append(f"{self.code(g)} = np.zeros(np.shape({self.code(src)}), {self.like}.dtype)")
            bufs_read.append(self.like)
            back_needs.add(src)
            grads.add(g)
        for s in r.states:
            blines.append(f"{self.code(tt.after[s.name])} = 0.0")
        for g, (stacked, _) in self.stacks.items():
            if stacked in back_read:
                blines.append(f"{self.code(stacked)} = {self._concat(g)}")
                back_needs.update(g.weights)
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
        stores, after = self._sums_after(hoisted, buf, first, blines, bufs_read, back_needs, bdims)
        for s in back:
            bbody += [f"# {c}" for c in s.comment]
            target, value = self.code(s.symbol), self.code(s.expr)
            into = self._into(s.expr, stores[s.symbol]) if s.symbol in stores else None
            if into:  # kept for every step: computed straight into its slot
                value = into
                del stores[s.symbol]
            bdims |= dims_read(s.expr)
            if s.symbol.name in accumulate:
                bbody.append(f"{target} += {value}")
            elif s.symbol.name in placed:
                axis = next(sl.axis for sl in r.slices if sl.source.name == placed[s.symbol.name])
                bbody.append(f"{_at(target, axis, t)} = {value}")
            else:
                bbody.append(f"{target} = {value}")
        blines.append(f"for {t} in range({length} - 1, -1, -1):")
        blines += ["    " + b for b in bbody + [f"{slot} = {self.code(x)}" for x, slot in stores.items()]]
        blines += after
        for s in r.states:
            g = loop_grad(tt.index, "first", r.var, f"{s.name}[0]", ())
            blines.append(f"{self.code(g)} = {self.code(tt.after[s.name])}")
            grads.add(g)
        internal = step_syms | set(prevs) | set(slices) | set(tt.own.values()) | set(tt.after.values()) | made_back
        internal |= {stacked for stacked, _ in self.stacks.values()}
        back_needs |= {x for x in back_read if x not in internal}
        return blines, back_needs, bufs_read, bdims, grads

    def _backward_stmts(self, fwd: list[Stmt]) -> tuple[list[Stmt], list[Contraction | Linear]]:
        """The step's δs, then its carries, terms and per-step gradients, as statements (common
        subexpressions computed once), and the shares summed after the loop instead."""
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
                carry = ready(tt.carries[s.name])
                for g, (stacked, _) in self.stacks.items():
                    carry = loop_stack.backward(carry, g, stacked)
                carry = self._join(carry, {d.grad for d in tt.deltas}, out)
                out.append(Stmt(after, carry, "backward", "backward",
                                (f"the share step {r.var} sends back to step {r.var} − 1: {text(tt.carries[s.name])}",)))
        per_step = ({eq.symbol for eq in tt.equations} | {s.prev for s in r.states} | {sl.step for sl in r.slices}
                    | {d.grad for d in tt.deltas} | set(self.joined))
        hoisted: list[Contraction | Linear] = []
        for kind, table in (("sum", tt.terms), ("steps", tt.slice_terms)):
            for n, term in table.items():
                g = loop_grad(tt.index, kind, r.var, n, ())
                what = f"∂L/∂{n}{step_superscript(r.var)}" if kind == "sum" else f"∂L/∂{n} at step {r.var}"
                share = Stmt(g, ready(term), "backward", "backward", (f"{what} = {text(term)}",))
                after = summed_after(share, per_step) if kind == "sum" else None
                if after is None:
                    out.append(share)
                else:
                    hoisted.append(after)
        # a share's name holds a running sum, not the share: a repeat of it is a temporary
        return cse.eliminate(out, self.temp, lambda sym, e: (f"{text(sym)} = {text(e)}",),
                             holds=lambda s: not isinstance(s.symbol, LoopGrad)), hoisted





__all__ = ["LoopCode", "LoopLowering", "py_base"]
