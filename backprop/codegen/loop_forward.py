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
from backprop.expr.printing import text
from backprop.support.naming import CodeNames


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
