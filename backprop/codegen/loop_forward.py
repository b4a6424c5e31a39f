"""A loop's forward rewrites: the products a careful author moves out of the step or stacks.

- :meth:`LoopForward._projections`: the products of a step's input with outside weights, computed for
  every step at once before the loop (one product T times as wide; several weights stacked);
- :meth:`LoopForward._stack_names`: a state's products with several weights as one per step
  (:mod:`backprop.codegen.loop_stack` decides which).

A mixin of :class:`~backprop.codegen.loop_code.LoopLowering` (it reads the loop, the names and the
printer from there).
"""

from __future__ import annotations

import os
import re
from typing import Any

import sympy
from sympy import Basic, MatrixSymbol

from backprop.codegen import loop_stack
from backprop.codegen.stmt import Stmt, reads, substitute
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_tensor import take
from backprop.expr.printing import text
from backprop.support.naming import CodeNames


def multiple(n: int, size: str) -> str:
    """``n`` widths of ``size`` as a slice bound prints it: "" for 0, ``size``, ``n * size``."""
    return "" if n == 0 else (size if n == 1 else f"{n} * {size}")


def py_base(name: str) -> str:
    """A spec or step name as an identifier's base: H[0] -> H_0, Z_I[t] -> Z_I_t, X[:, t] -> X_t."""
    return re.sub(r"\W+", "_", name).strip("_") or "v"


class LoopForward:
    """The forward rewrites of one loop (see the module docstring)."""

    r: Any
    t: str
    names: CodeNames

    def code(self, e: Basic) -> str:  # pragma: no cover - LoopLowering's
        raise NotImplementedError

    def _stack_names(self, g: loop_stack.Group) -> tuple[MatrixSymbol, MatrixSymbol]:
        """The stacked weight and the step's product with it, named after the weights' common prefix."""
        names = [w.name for w in g.weights]
        prefix = os.path.commonprefix(names) or "_".join(names)
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
        #: each group of projections: (its step symbols in order, the stacked name, the read of step t
        #: with '{}' where the wide axis's range goes, the side the step's input is on, the width)
        self.projection_groups: list[tuple[list[Basic], str, str, int, str]] = []
        for (step, side, _), members in groups.items():
            sl, t = slices[step], self.t
            weights = [self.code(w) for _, w in members]
            w = weights[0] if len(weights) == 1 else f"np.concatenate(({', '.join(weights)}), axis={1 - side})"
            names = [py_base(x) for x in weights]
            label = names[0] if len(names) == 1 else os.path.commonprefix(names) or "_".join(names)
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
                    index[wide] = f"{multiple(n, size)}:{multiple(n + 1, size)}"
                read = f"{stacked}[{', '.join(index)}]".replace(", :]", "]").replace(", :]", "]")
                what = text(members[0][0]) + (f" … {text(members[-1][0])}" if len(members) > 1 else "")
                line = "" if n else f"{stacked} = {code}  # {what}, every step at once"
                found[sym] = (sl.source, line, read)
            if len(members) > 1:
                index = [":"] * 3
                index[time], index[wide] = t, "{}"
                self.projection_groups.append(([table[e] for e, _ in members], stacked, f"{stacked}[{', '.join(index)}]",
                                               side, size))
        if not table:
            return fwd, {}
        out = [Stmt(st.symbol, substitute(st.expr, table), st.kind, st.section, st.comment) for st in fwd]
        return out, found

    def _fused(self, fwd: list[Stmt], dtype: str) -> tuple[list[Stmt], list[str], dict[Basic, list[str]]]:
        """Gates' pre-activations ``Xₜ W_k + Hₜ₋₁ U_k + b_k`` summed for a run of gates at once: where
        the projections of the step's input and the state's products are both stacked, over the same
        gates in the same order, the sums of the run are one add over the stacked blocks and one of the
        biases side by side (stacked once before the loop), each gate's pre-activation its slice (a
        view), as a hand-written LSTM adds its four gates' blocks. The same additions in the same order
        as gate by gate: the values are equal to the last bit. Returns the statements, the lines before
        the loop, and per stacked product the lines right after it in the step."""
        before: list[str] = []
        after: dict[Basic, list[str]] = {}
        for g, (_, product) in self.stacks.items():
            for syms, _, read, side, size in self.projection_groups:
                if len(syms) != len(g.weights) or (side == 0) != g.left:
                    continue
                fwd = self._fuse_run(fwd, g, product, syms, read, size, dtype, before, after)
        return fwd, before, after

    def _fuse_run(self, fwd: list[Stmt], g: loop_stack.Group, product: MatrixSymbol, syms: list[Basic], read: str,
                  size: str, dtype: str, before: list[str], after: dict[Basic, list[str]]) -> list[Stmt]:
        """One stack's longest run of gates whose statement is ``(projection + product slice) + bias``."""
        width = shape_of(g.weights[0])[g.axis]
        taken = [loop_stack.forward(ir.node("matmul", g.operand, w) if g.left else ir.node("matmul", w, g.operand),
                                    g, product) for w in g.weights]
        in_step = {st.symbol for st in fwd} | {s.prev for s in self.r.states} | {sl.step for sl in self.r.slices}
        step_shape = shape_of(taken[0])

        def a_bias(b: Basic) -> bool:  # a value from outside the loop, a row (column) of one gate's width
            return isinstance(b, MatrixSymbol) and b not in in_step and len(shape_of(b)) == 2 and all(
                d == (width if a == g.axis else 1) or (a != g.axis and d == step_shape[a]) for a, d in enumerate(shape_of(b)))

        where: dict[int, tuple[int, Basic | None]] = {}  # gate -> (its statement, its bias)
        for i, st in enumerate(fwd):
            e, bias = st.expr, None
            if isinstance(e, OpNode) and e.op.name == "add" and a_bias(e.children[1]) \
                    and isinstance(e.children[0], OpNode) and e.children[0].op.name == "add":
                e, bias = e.children[0], e.children[1]
            if not (isinstance(e, OpNode) and e.op.name == "add"):
                continue
            for k, (p, tk) in enumerate(zip(syms, taken)):
                if set(e.children) == {p, tk} and k not in where:
                    where[k] = (i, bias)
        biases = [where[k][1] if k in where else None for k in range(len(syms))]
        run: list[int] = []
        best: list[int] = []
        for k in range(len(syms)):  # contiguous gates whose biases are all given or all absent, of one shape
            alike = bool(run) and (biases[k] is None) == (biases[run[-1]] is None) and (
                biases[k] is None or shape_of(biases[k]) == shape_of(biases[run[-1]]))
            run = (run + [k] if alike else [k]) if k in where else []
            best = list(run) if len(run) > len(best) else best
        run = best
        if len(run) < 2:
            return fwd
        lo, hi = run[0], run[-1] + 1
        span = f"{multiple(lo, size)}:{'' if hi == len(syms) else multiple(hi, size)}"
        block = (f"{self.code(product)}[:, {span}]" if g.left else f"{self.code(product)}[{span}]") \
            if span != ":" else self.code(product)
        fused = ir.symbol(f"{product.name} fused {lo}", tuple(
            (d * (hi - lo) if a == g.axis else d) for a, d in enumerate(shape_of(taken[0]))))
        prefix = os.path.commonprefix([py_base(fwd[where[k][0]].symbol.name) for k in run]).rstrip("_") or "Z"
        name = self.names.named("var", fused.name, f"{prefix}_all_{self.t}")
        lines = after.setdefault(product, [])
        what = f"{text(fwd[where[run[0]][0]].symbol)} … {text(fwd[where[run[-1]][0]].symbol)}"
        lines.append(f"{name} = np.add({block}, {read.format(span).replace(', :]', ']')}, dtype={dtype})  # {what} at once")
        if biases[run[0]] is not None:
            base = os.path.commonprefix([py_base(self.code(biases[k])) for k in run]).rstrip("_") or "b"
            stack = self.names.named("var", f"{product.name} biases {lo}", f"{base}_stack")
            before.append(f"{stack} = np.concatenate(({', '.join(self.code(biases[k]) for k in run)}), "
                          f"axis={g.axis})  # the biases side by side, once")
            lines.append(f"{name} += {stack}")
        out = list(fwd)
        for n, k in enumerate(run):
            i = where[k][0]
            index = [(0, d) for d in shape_of(fused)]
            index[g.axis] = (n * width, (n + 1) * width)
            out[i] = Stmt(fwd[i].symbol, take(fused, index), fwd[i].kind, fwd[i].section, fwd[i].comment)
        return out
