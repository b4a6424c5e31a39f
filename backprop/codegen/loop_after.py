"""A loop's backward work after the loop: each shared weight's gradient summed in one product.

:mod:`backprop.codegen.loop_sums` decides which shares move out of the loop; here the δs they read
are kept for every step (the gates' δs side by side in one array, :meth:`LoopAfter._join`), and the
lines after the loop sum them: one ``np.tensordot`` over the steps and examples per operand (per
stack of weights, then its blocks), a bias as its function of the summed δ.

A mixin of :class:`~backprop.codegen.loop_code.LoopLowering`.
"""

from __future__ import annotations

import os
from typing import Any

import sympy
from sympy import Basic, MatrixSymbol

from backprop.codegen.loop_forward import py_base
from backprop.codegen.loop_sums import Contraction, Linear
from backprop.codegen.printer import dims_read
from backprop.codegen.stmt import Stmt
from backprop.engine.through_time import first_state
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.support.naming import CodeNames
from backprop.support.notation import text_subscript


class LoopAfter:
    """The backward lines after one loop (see the module docstring)."""

    r: Any
    t: str
    names: CodeNames
    like: str
    joined: dict[MatrixSymbol, tuple[list[Basic], int]]
    #: every kept value an array of the steps, time first (JAX's lax.scan stacks them so), not a list
    kept_as_arrays = False
    #: a δ kept for every step -> the array that holds it (set by :meth:`_sums_after`)
    kept_steps: dict[Basic, str]

    def code(self, e: Basic) -> str:  # pragma: no cover - LoopLowering's
        raise NotImplementedError

    def shape(self, shape: tuple[Basic, ...]) -> str:  # pragma: no cover - LoopLowering's
        raise NotImplementedError

    def _join(self, e: Basic, deltas: set[Basic], out: list[Stmt]) -> Basic:
        """``e`` with the gates' δs side by side (``concat(dZ_I, …, dZ_O)``, sent back through a stacked
        weight) computed as one value of the step, so that every step keeps them in one array: the
        weights' gradients are then one product over it (:meth:`_sums_after`)."""
        if not isinstance(e, OpNode):
            return e
        if e.op.name == "concat" and all(c in deltas for c in e.children):
            axis = int(e.attrs[-1][0])
            names = [self.code(c) for c in e.children]
            prefix = os.path.commonprefix(names) or "d"
            joined = ir.symbol(f"{e} joined", shape_of(e))
            self.names.named("var", joined.name, f"{prefix.rstrip('_')}_all_{self.t}")
            self.joined[joined] = (list(e.children), axis)
            out.append(Stmt(joined, e, "backward", "backward", ("the gates' δs side by side",)))
            return joined
        kids = [self._join(c, deltas, out) for c in e.children]
        return e if all(k is c for k, c in zip(kids, e.children)) else e.func(*kids, *e.attrs)

    def _copy(self, code: str) -> str:
        """A second gradient with the value of another: its own array (NumPy's can be written into)."""
        return f"np.copy({code})"

    def _sums_after(self, hoisted: list[Contraction | Linear], buf: dict[Basic, str], first: dict[str, str],
                    blines: list[str], bufs_read: list[str], back_needs: set[Basic], bdims: set[str]
                    ) -> tuple[dict[Basic, str], list[str]]:
        """The shares summed after the loop (:mod:`backprop.codegen.loop_sums`): the δs they read kept
        for every step (allocated in ``blines``, stored by the returned lines at the end of each step),
        and the lines after the loop that sum them."""
        r, t, length = self.r, self.t, self.names.dim(str(self.r.length))
        stores: dict[Basic, str] = {}  # a δ kept for every step -> its slot in the array (at step t)
        after: list[str] = []
        stacked: dict[Basic, str] = {}
        like = self.like
        self.kept_steps = {}

        def stem(code: str) -> str:
            """A step value's name without its step: dZ_t -> dZ."""
            return code[:-len(t) - 1] if code.endswith("_" + t) else code

        member_of = {m: (joined, k, axis) for joined, (ms, axis) in self.joined.items() for k, m in enumerate(ms)}

        def part(code: str, k: int, size: str, axis: int, rank: int) -> str:
            """Block k (of size ``size``) along ``axis`` of an array of ``rank`` axes."""
            index = [":"] * rank
            index[axis] = f"{'' if k == 0 else (size if k == 1 else f'{k} * {size}')}:{size if k == 0 else f'{k + 1} * {size}'}"
            return f"{code}[{', '.join(index)}]"

        def steps_of(x: MatrixSymbol) -> str:
            if x in stacked:
                return stacked[x]
            if x in member_of:  # a δ kept side by side with the others: its block of their array
                joined, k, axis = member_of[x]
                size = self.code(sympy.sympify(shape_of(x)[axis]))
                stacked[x] = part(steps_of(joined), k, size, 1 + axis, 1 + len(shape_of(x)))
                return stacked[x]
            state = next((q for q in r.states if q.prev == x), None)
            sl = next((q for q in r.slices if q.step == x), None)
            if x in buf and (self.kept_as_arrays or x in {q.step for q in r.sequences}):
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
                code = self.names.named("steps", f"{x.name} kept", f"{stem(self.code(x))}_steps")
                allocs.setdefault(self.shape(shape_of(x))[1:-1], []).append(code)
                stores[x] = f"{code}[{t}]"
                self.kept_steps[x] = code
                bufs_read.append(like)
                bdims.update(str(d) for d in shape_of(x) if isinstance(d, sympy.Symbol))
            stacked[x] = code
            return code

        allocs: dict[str, list[str]] = {}
        done: dict[str, str] = {}
        # the contractions of one operand with several δs kept side by side: one product, then its blocks
        together: dict[tuple, list[tuple[Contraction, int]]] = {}
        for h in hoisted:
            if isinstance(h, Contraction):
                for side, (mine, my_axis, other, other_axis) in enumerate(((h.left, h.left_axis, h.right, h.right_axis),
                                                                          (h.right, h.right_axis, h.left, h.left_axis))):
                    if other in member_of and member_of[other][2] != other_axis:
                        joined, k, _ = member_of[other]
                        together.setdefault((mine, my_axis, joined, other_axis, side), []).append((h, k))
                        break
        products: dict[Contraction, str] = {}
        for (mine, my_axis, joined, other_axis, side), members in together.items():
            if len(members) < 2:
                continue
            a, b = steps_of(mine), steps_of(joined)
            base = f"{stem(self.code(joined))}_by_{stem(self.code(mine))}"
            name = self.names.named("var", f"{mine.name} by {joined.name}", base)
            if side == 0:  # the δs on the right: the product's last axis runs over them
                code = f"np.tensordot({a}, {b}, axes=([0, {1 + my_axis}], [0, {1 + other_axis}]))"
            else:
                code = f"np.tensordot({b}, {a}, axes=([0, {1 + other_axis}], [0, {1 + my_axis}]))"
            after.append("# every weight of the stack at once: one product over the δs side by side")
            after.append(f"{name} = {code}")
            join_axis = self.joined[joined][1]
            size = self.code(sympy.sympify(shape_of(self.joined[joined][0][0])[join_axis]))
            for h, k in members:  # the δs' remaining axis is the product's last (side 0) or first (side 1)
                products[h] = part(name, k, size, 1 if side == 0 else 0, 2)
        for h in hoisted:
            target = self.code(h.stmt.symbol)
            after += [f"# {c}" for c in h.stmt.comment]
            if isinstance(h, Contraction) and h in products:
                after.append(f"{target} = {products[h]}")
            elif isinstance(h, Contraction):
                a, b = steps_of(h.left), steps_of(h.right)
                after.append(f"# summed over the steps in one product: Σ{text_subscript(r.var)} of the share above")
                after.append(f"{target} = np.tensordot({a}, {b}, axes=([0, {1 + h.left_axis}], [0, {1 + h.right_axis}]))")
            else:
                total = ir.symbol(f"{h.value.name} summed", shape_of(h.value))
                name = self.names.named("var", total.name, f"{py_base(h.value.name.split('[')[0])}_total")
                if f"{name} = " not in "\n".join(after):
                    after.append(f"{name} = {steps_of(h.value)}.sum(axis=0)")
                value = self.code(h.stmt.expr.xreplace({h.value: total}))
                # two shares alike (two biases of one sum): computed once, the other its copy
                after.append(f"{target} = {self._copy(done[value]) if value in done else value}")
                done.setdefault(value, target)
            bdims |= dims_read(h.stmt.expr)
        for shape, codes in allocs.items():  # the δs of one shape in one array: one allocation
            many = f"{len(codes)}, " if len(codes) > 1 else ""
            blines.append(f"{', '.join(codes)} = np.empty(({many}{length}, {shape}), {like}.dtype)")
        return stores, after
