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

import re
from dataclasses import dataclass, field
from typing import Any

import sympy
from sympy import Basic, MatrixSymbol

from backprop.codegen import cse, loop_stack
from backprop.codegen.loop_sums import Contraction, Linear, summed_after
from backprop.codegen.printer import NumpyPrinter, dims_read
from backprop.codegen.rewrite import available, resolver, reuse, stabilize
from backprop.codegen.stmt import Stmt, reads, substitute
from backprop.engine.simplify import simplify
from backprop.engine.through_time import ThroughTime, TimeDerivation, first_state, seed_shown
from backprop.expr import ir
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


def py_base(name: str) -> str:
    """A spec or step name as an identifier's base: H[0] -> H_0, Z_I[t] -> Z_I_t, X[:, t] -> X_t."""
    return re.sub(r"\W+", "_", name).strip("_") or "v"


# ---------------------------------------------------------------------------
# A loop
# ---------------------------------------------------------------------------


def _at(code: str, axis: int, t: str) -> str:
    """``code`` indexed at step ``t`` along ``axis`` (``X[:, t]``)."""
    return f"{code}[{':, ' * axis}{t}]"


class LoopLowering:
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
        dims = {str(r.length)}
        bdims = {str(r.length)}
        buf = {eq.symbol: self.names.lookup("steps", eq.name) for eq in kept}
        seq_steps = {q.step for q in r.sequences}
        self.like = buf[r.sequences[0].step]  # a sequence's buffer: its dtype is the step's

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
            if eq.symbol not in seq_steps:  # kept as the step computed it: a list, no copy
                lines.append(f"{buf[eq.symbol]} = []")
            else:  # a sequence: every step in one array, read after the loop
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
        fwd, projections = self._projections(fwd, step_syms | set(prevs))
        for src, line, _ in projections.values():
            lines += [line] if line else []
            outside_fwd.add(src)
        for g, (stacked, product) in self.stacks.items():  # a state's products with several weights: one
            lines.append(f"{self.code(stacked)} = {self._concat(g)}  # stacked once, read at every step")
            fwd = [Stmt(st.symbol, loop_stack.forward(st.expr, g, product), st.kind, st.section, st.comment) for st in fwd]
        read_fwd = set().union(*(reads(s.expr) for s in fwd))
        body = [f"{self.code(sl.step)} = {_at(self.code(sl.source), sl.axis, t)}" for sl in r.slices if sl.step in read_fwd]
        body += [f"{self.code(sym)} = {read}" for sym, (_, _, read) in projections.items()]
        body += [f"{self.code(product)} = " + (f"{self.code(g.operand)} @ {self.code(stacked)}" if g.left
                                               else f"{self.code(stacked)} @ {self.code(g.operand)}")
                 for g, (stacked, product) in self.stacks.items()]
        for s in fwd:
            body += [f"# {c}" for c in s.comment]
            body.append(f"{self.code(s.symbol)} = {self.code(s.expr)}")
            dims |= dims_read(s.expr)
        body += [f"{buf[eq.symbol]}[{t}] = {self.code(eq.symbol)}" if eq.symbol in seq_steps
                 else f"{buf[eq.symbol]}.append({self.code(eq.symbol)})" for eq in kept]
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
        stores, after = self._sums_after(hoisted, buf, first, blines, bufs_read, back_needs, bdims)
        blines.append(f"for {t} in range({length} - 1, -1, -1):")
        blines += ["    " + b for b in bbody + stores]
        blines += after
        for s in r.states:
            g = loop_grad(tt.index, "first", r.var, f"{s.name}[0]", ())
            blines.append(f"{self.code(g)} = {self.code(tt.after[s.name])}")
            grads.add(g)
        internal = step_syms | set(prevs) | set(slices) | set(tt.own.values()) | set(tt.after.values()) | made_back
        internal |= {stacked for stacked, _ in self.stacks.values()}
        back_needs |= {x for x in back_read if x not in internal}
        return LoopCode(lines, blines, outside_fwd, back_needs, list(dict.fromkeys(bufs_read)), dims, bdims, made, grads)

    def _stack_names(self, g: loop_stack.Group) -> tuple[MatrixSymbol, MatrixSymbol]:
        """The stacked weight and the step's product with it, named after the weights' common prefix."""
        names = [w.name for w in g.weights]
        prefix = next((names[0][:k] for k in range(len(names[0]), 0, -1) if all(n.startswith(names[0][:k]) for n in names)),
                      "_".join(names))
        shape = list(shape_of(g.weights[0]))
        shape[g.axis] = shape[g.axis] * len(g.weights)
        stacked = ir.symbol(f"{'|'.join(names)} stacked", tuple(shape))
        self.names.named("var", stacked.name, f"{py_base(prefix)}_stack")
        op_shape = list(shape_of(g.operand))
        op_shape[g.axis] = op_shape[g.axis] * len(g.weights)
        product = ir.symbol(f"{g.operand.name} times {stacked.name}", tuple(op_shape))
        self.names.named("var", product.name, f"{self.code(g.operand)}_{py_base(prefix)}")
        return stacked, product

    def _concat(self, g: loop_stack.Group) -> str:
        return f"np.concatenate(({', '.join(self.code(w) for w in g.weights)}), axis={g.axis})"

    def _projections(self, fwd: list[Stmt], carried: set[Basic]
                     ) -> tuple[list[Stmt], dict[Basic, tuple[Basic, str, str]]]:
        """Products of a step's input with a value from outside the loop (``Wx @ X[:, t]``), computed for
        every step at once before the loop (``np.tensordot(Wx, X, axes=([1], [0]))``: one product T times
        as wide, as a hand-written RNN projects its inputs), each step then reading its slice; products
        of one input with several weights of one shape (an LSTM's four gates) as one product with the
        weights stacked. Returns the statements with each such product a step symbol, and symbol ->
        (the source, the line before the loop ('' after a group's first), what each step reads)."""
        slices = {sl.step: sl for sl in self.r.slices}
        table: dict[Basic, Basic] = {}
        groups: dict[tuple, list[tuple[Basic, Basic]]] = {}  # (input, side, weight shape) -> [(product, weight)]

        def visit(e: Basic) -> None:
            if not isinstance(e, OpNode):
                return
            if e.op.name == "matmul" and len(e.children) == 2 and e not in table:
                kids = e.children
                at = [k for k, c in enumerate(kids) if c in slices]
                other = kids[1 - at[0]] if len(at) == 1 else None
                if other is not None and not (reads(other) & (carried | set(slices))) and len(shape_of(kids[at[0]])) == 2:
                    key = (kids[at[0]], at[0], shape_of(other) if isinstance(other, MatrixSymbol) else other)
                    if (e, other) not in groups.setdefault(key, []):
                        groups[key].append((e, other))
                    table[e] = ir.symbol(f"{e} at {self.r.var}", shape_of(e))
                    return
            for c in e.children:
                visit(c)

        for st in fwd:
            visit(st.expr)
        found: dict[Basic, tuple[Basic, str, str]] = {}
        for (step, side, _), members in groups.items():
            sl, t = slices[step], self.t
            weights = [self.code(w) for _, w in members]
            w = weights[0] if len(weights) == 1 else f"np.concatenate(({', '.join(weights)}), axis={1 - side})"
            names = [py_base(x) for x in weights]
            label = names[0] if len(names) == 1 else next(
                (names[0][:k] for k in range(len(names[0]), 0, -1) if all(n.startswith(names[0][:k]) for n in names)),
                "_".join(names))
            src = py_base(sl.source.name)
            base = f"{src}_{label}" if side == 0 else f"{label}_{src}"
            a, x = sl.axis, self.code(sl.source)
            step_axis = 1 if side == 0 else 0  # the axis of the step's input the product contracts
            k = step_axis + (1 if step_axis >= a else 0)  # ... as an axis of the source
            if side == 0:  # Xₜ W: the source's other axes, then W's
                code, time, wide = f"np.tensordot({x}, {w}, axes=([{k}], [0]))", a - (1 if k < a else 0), 2
            else:  # W Xₜ: W's other axis, then the source's
                code, time, wide = f"np.tensordot({w}, {x}, axes=([1], [{k}]))", 1 + a - (1 if k < a else 0), 0
            stacked = self.names.named("steps", base, base + "_steps")
            size = self.code(sympy.sympify(shape_of(members[0][0])[1 - side]))
            for n, (e, _) in enumerate(members):
                sym = table[e]
                self.names.named("var", sym.name, f"{src}_{names[n]}_t" if side == 0 else f"{names[n]}_{src}_t")
                index = [":"] * 3
                index[time] = t
                if len(members) > 1:
                    lo = "" if n == 0 else (size if n == 1 else f"{n} * {size}")
                    index[wide] = f"{lo}:{size if n == 0 else f'{n + 1} * {size}'}"
                read = f"{stacked}[{', '.join(index)}]".replace(", :]", "]").replace(", :]", "]")
                what = text(members[0][0]) + (f" … {text(members[-1][0])}" if len(members) > 1 else "")
                line = "" if n else f"{stacked} = {code}  # {what}, every step at once"
                found[sym] = (sl.source, line, read)
        if not table:
            return fwd, {}
        out = [Stmt(st.symbol, substitute(st.expr, table), st.kind, st.section, st.comment) for st in fwd]
        return out, found

    def _sums_after(self, hoisted: list[Contraction | Linear], buf: dict[Basic, str], first: dict[str, str],
                    blines: list[str], bufs_read: list[str], back_needs: set[Basic], bdims: set[str]
                    ) -> tuple[list[str], list[str]]:
        """The shares summed after the loop (:mod:`backprop.codegen.loop_sums`): the δs they read kept
        for every step (allocated in ``blines``, stored by the returned lines at the end of each step),
        and the lines after the loop that sum them."""
        r, t, length = self.r, self.t, self.names.dim(str(self.r.length))
        stores: list[str] = []
        after: list[str] = []
        stacked: dict[Basic, str] = {}
        like = self.like

        def steps_of(x: MatrixSymbol) -> str:
            if x in stacked:
                return stacked[x]
            state = next((q for q in r.states if q.prev == x), None)
            sl = next((q for q in r.slices if q.step == x), None)
            if x in buf and x in {q.step for q in r.sequences}:
                code = buf[x]
                bufs_read.append(code)
            elif x in buf:  # a list of the steps' values: stacked once
                code = self.names.named("steps", f"{x.name} stacked", f"{py_base(x.name.split('[')[0])}_stacked")
                after.append(f"{code} = np.stack({buf[x]})")
                bufs_read.append(buf[x])
            elif state is not None:  # H[t-1] at every step: the first state, then every step but the last
                code = self.names.named("steps", f"{x.name} before", f"{py_base(state.name)}_prev_steps")
                after.append(f"{code} = np.concatenate(({first[state.name]}[None], {buf[state.step]}[:-1]))")
                bufs_read.append(buf[state.step])
                back_needs.add(first_state(state))
                bdims.update(str(d) for d in shape_of(x) if isinstance(d, sympy.Symbol))
            elif sl is not None:  # X[:, t] at every step: X with its time axis first (a view)
                code = self.names.named("steps", f"{sl.source.name} by step", f"{py_base(sl.source.name)}_by_step")
                after.append(f"{code} = np.moveaxis({self.code(sl.source)}, {sl.axis}, 0)")
                back_needs.add(sl.source)
            else:  # a δ of the step: kept as the loop computes it
                code = self.names.named("steps", f"{x.name} kept", f"{py_base(x.name.split('[')[0])}_steps")
                allocs.setdefault(self.shape(shape_of(x))[1:-1], []).append(code)
                stores.append(f"{code}[{t}] = {self.code(x)}")
                bufs_read.append(like)
                bdims.update(str(d) for d in shape_of(x) if isinstance(d, sympy.Symbol))
            stacked[x] = code
            return code

        allocs: dict[str, list[str]] = {}
        done: dict[str, str] = {}
        for h in hoisted:
            target = self.code(h.stmt.symbol)
            after += [f"# {c}" for c in h.stmt.comment]
            if isinstance(h, Contraction):
                a, b = steps_of(h.left), steps_of(h.right)
                after.append(f"# summed over the steps in one product: Σ{_sub(r.var)} of the share above")
                after.append(f"{target} = np.tensordot({a}, {b}, axes=([0, {1 + h.left_axis}], [0, {1 + h.right_axis}]))")
            else:
                total = ir.symbol(f"{h.value.name} summed", shape_of(h.value))
                name = self.names.named("var", total.name, f"{py_base(h.value.name.split('[')[0])}_total")
                if f"{name} = " not in "\n".join(after):
                    after.append(f"{name} = {steps_of(h.value)}.sum(axis=0)")
                value = self.code(h.stmt.expr.xreplace({h.value: total}))
                # two shares alike (two biases of one sum): computed once, the other its copy
                after.append(f"{target} = {f'np.copy({done[value]})' if value in done else value}")
                done.setdefault(value, target)
            bdims |= dims_read(h.stmt.expr)
        for shape, codes in allocs.items():  # the δs of one shape in one array: one allocation
            many = f"{len(codes)}, " if len(codes) > 1 else ""
            blines.append(f"{', '.join(codes)} = np.empty(({many}{length}, {shape}), {like}.dtype)")
        return stores, after

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
                out.append(Stmt(after, carry, "backward", "backward",
                                (f"the share step {r.var} sends back to step {r.var} − 1: {text(tt.carries[s.name])}",)))
        per_step = ({eq.symbol for eq in tt.equations} | {s.prev for s in r.states} | {sl.step for sl in r.slices}
                    | {d.grad for d in tt.deltas})
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



def _sub(var: str) -> str:
    """The step letter as a subscript (ₜ), for comments."""
    return {"t": "ₜ", "k": "ₖ", "s": "ₛ", "i": "ᵢ", "j": "ⱼ", "n": "ₙ"}.get(var, f"[{var}]")


__all__ = ["LoopCode", "LoopLowering", "py_base"]
