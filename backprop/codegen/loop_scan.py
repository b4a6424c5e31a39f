"""One loop's JAX code: its forward as one ``jax.lax.scan`` over t and its backward as one in reverse.

The same plan as the NumPy loop (:mod:`backprop.codegen.loop_code`: the step's statements in stable
forms, its δs, carries and shares from :mod:`backprop.engine.through_time`, the products moved out of
the step or stacked, the shares summed after the loop), printed for a traced program instead of a
Python loop:

- forward: the step's equations are the scan's body, the carry the states (their previous step), and
  what the backward pass reads is the body's per-step output, which the scan stacks (time first);
- backward: the step's δs are the reversed scan's body, the carry what step t sends back to step
  t − 1 and the running sums of the shares summed in the loop; the δs the shares summed after the
  loop read are the body's per-step output, summed after it in one contraction each, as in NumPy.
  ``truncate=k`` (a Python int, static under ``jax.jit``) zeroes the carry at the end of every window,
  by the step index.

Nothing is unrolled: the scans run over ``jnp.arange(T)``, T read from the arrays' shapes, and a
step reads a value with a time axis at its index t (``X[:, t]``). Every line is printed by the JAX
printer, or is the NumPy loop's line in ``jnp.`` (:func:`~backprop.codegen.jax_printer.to_jnp`).
"""

from __future__ import annotations

import sympy
from sympy import Basic

from backprop.codegen.jax_printer import to_jnp
from backprop.codegen.loop_code import LoopLowering, _at, _Plan
from backprop.codegen.loop_forward import py_base
from backprop.codegen.printer import dims_read
from backprop.expr.ir import shape_of
from backprop.expr.printing import grad_symbol, loop_grad


def _pack(items: list[str]) -> str:
    """A scan's carry or per-step output as Python source: one value as it is, several as a tuple."""
    return items[0] if len(items) == 1 else "(" + ", ".join(items) + ")"


class ScanLowering(LoopLowering):
    """One loop's forward and backward lines as ``lax.scan`` calls (see the module docstring)."""

    kept_as_arrays = True

    def _into(self, e: Basic, slot: str) -> str | None:
        return None  # a JAX array is not written into: the scan stacks the steps' values

    def _copy(self, code: str) -> str:
        return code  # a JAX array is immutable: two gradients may be one array

    def _scan(self, fn: str, carry: list[str], ys: list[str], stacked: list[str], body: list[str], first: str,
              reverse: bool = False) -> list[str]:
        """``def fn(carry, t): body; return carry, ys`` then the scan over t: the carry's last value back
        into the carry's names, each of the steps' ``ys`` stacked (time first) into its name in ``stacked``."""
        arg = self.names.named("var", "scan carry", "carry")
        out = [f"def {fn}({arg if carry else '_'}, {self.t}):"]
        if carry:
            out.append(f"    {', '.join(carry)} = {arg}")
        out += ["    " + b for b in body]
        out.append(f"    return {_pack(carry) if carry else '()'}, {_pack(ys) if ys else '()'}")
        steps = f"jnp.arange({self.names.dim(str(self.r.length))})" + (", reverse=True" if reverse else "")
        scan = f"jax.lax.scan({fn}, {first}, {steps})"
        return [*out, f"{_pack(carry) if carry else '_'}, {_pack(stacked) if stacked else '_'} = {scan}"]

    def _forward_lines(self, p: _Plan) -> tuple[list[str], set[Basic], set[str], set[Basic]]:
        """The forward scan's lines, the outside values they read, the dims they read, the sequences
        they make."""
        r, tt = self.r, self.tt
        kept, buf, firsts, first = p.kept, p.buf, p.firsts, p.first
        dims = {str(r.length)}
        outside_fwd, dtype, typed = self._outside(p)
        lines = [f"# {r.header()} the step below as the body of one lax.scan over t; what backward reads "
                 "stacked for every step",
                 f"{dtype} = np.result_type({', '.join([*typed, '1.0'])})"]
        for s in r.states:  # the carry's first value in the step's dtype: float32 stays float32
            code = self.code(firsts[s.name])
            lines.append(f"{code} = np.asarray({code}, {dtype})")
            assert s.prev is not None
            lines.append(f"{self.code(s.prev)} = {first[s.name]}")
            if shape_of(firsts[s.name]) != shape_of(s.step):
                dims |= {str(d) for d in shape_of(s.step) if isinstance(d, sympy.Symbol)}
        for eq in kept:
            dims |= {str(d) for d in eq.shape if isinstance(d, sympy.Symbol)}
        fwd, moved, projections = self._moved_out(p, outside_fwd)
        lines += moved
        body = self._step_reads(fwd, projections)
        body += [self._product_line(g, stacked, product) for g, (stacked, product) in self.stacks.items()]
        for s in fwd:
            body += [f"# {c}" for c in s.comment]
            body.append(f"{self.code(s.symbol)} = {self.code(s.expr)}")
            dims |= dims_read(s.expr)
        carry = [self.code(s.prev) for s in r.states if s.prev is not None]
        body += [f"{self.code(s.prev)} = {self.code(s.step)}" for s in r.states if s.prev is not None]
        fn = self.names.named("var", f"loop{tt.index} step", "forward_step")
        lines += self._scan(fn, carry, [self.code(eq.symbol) for eq in kept], [buf[eq.symbol] for eq in kept], body,
                            _pack(carry) if carry else "()")
        views, made = self._sequence_views(p)
        return [to_jnp(x) for x in lines + views], outside_fwd, dims, made

    def _backward_lines(self, p: _Plan) -> tuple[list[str], set[Basic], list[str], set[str], set[Basic]]:
        """The backward scan's lines (and the sums after it), the forward values they read, the kept
        arrays they read, the dims they read, the LoopGrad leaves they define."""
        r, tt, t = self.r, self.tt, self.t
        back, hoisted, back_read = p.back, p.hoisted, p.back_read
        step_syms, made_back, prevs, slices, kept = p.step_syms, p.made_back, p.prevs, p.slices, p.kept
        buf, firsts, first = p.buf, p.firsts, p.first
        bdims = {str(r.length)}
        bufs_read: list[str] = []
        lines: list[str] = [f"# backward through {r.header()} t = {r.length} down to 1, one lax.scan in reverse"]
        grads: set[Basic] = set()
        back_needs: set[Basic] = set()
        typed: set[str] = set()  # what the step reads from outside it: the carry's dtype
        defined = {s.symbol.name for s in back}
        after_sums = {h.stmt.symbol for h in hoisted}
        for n in tt.terms:
            g = loop_grad(tt.index, "sum", r.var, n, ())
            if g not in after_sums and g.name not in defined:  # no share at any step
                lines.append(f"{self.code(g)} = 0.0")
            grads.add(g)
        for n in tt.slice_terms:  # its shape is the scan's stacked output's: the source itself not read
            grads.add(loop_grad(tt.index, "steps", r.var, n, ()))
        carried = [s for s in r.states if s.name in tt.carries]
        for s in r.states:
            if s not in carried:  # nothing sent back to the step before
                lines.append(f"{self.code(tt.after[s.name])} = 0.0")
        for g, (stacked, _) in self.stacks.items():
            if stacked in back_read:
                lines.append(f"{self.code(stacked)} = {self._concat(g)}")
                back_needs.update(g.weights)
                typed.add(self.code(stacked))
        body = []
        for eq in kept:
            if eq.symbol in back_read:
                body.append(f"{self.code(eq.symbol)} = {buf[eq.symbol]}[{t}]")
                bufs_read.append(buf[eq.symbol])
                typed.add(buf[eq.symbol])
        for prev, s in prevs.items():
            if prev in back_read:  # the state before every step: the first state, then every step but the last
                steps = self.names.named("steps", f"{prev.name} before", f"{py_base(s.name)}_prev_steps")
                lines.append(f"{steps} = np.concatenate(({first[s.name]}[None], {buf[s.step]}[:-1]))")
                body.append(f"{self.code(prev)} = {steps}[{t}]")
                if shape_of(firsts[s.name]) != shape_of(s.step):
                    bdims |= {str(d) for d in shape_of(s.step) if isinstance(d, sympy.Symbol)}
                back_needs.add(firsts[s.name])
                bufs_read.append(buf[s.step])
                typed.add(steps)
        for sl in r.slices:
            if sl.step in back_read:
                body.append(f"{self.code(sl.step)} = {_at(self.code(sl.source), sl.axis, t)}")
                back_needs.add(sl.source)
                typed.add(self.code(sl.source))
        for s in r.sequences:
            own = tt.own[s.name]
            if own in back_read:
                gs = grad_symbol(s.name, shape_of(s.stacked))
                body.append(f"{self.code(own)} = {_at(self.code(gs), s.time_axis, t)}")
                back_needs.add(gs)
                typed.add(self.code(gs))
        carry = [self.code(tt.after[s.name]) for s in carried]
        if carried:
            cut = self.names.named("var", f"loop{tt.index} cut", "cut")
            body += ["if truncate is not None:  # a window ends at step t: the state detached (its gradient not carried)",
                     f"    {cut} = ({t} + 1) % truncate == 0"]
            body += [f"    {c} = jnp.where({cut}, 0.0, {c})" for c in carry]
        accumulate = {loop_grad(tt.index, "sum", r.var, n, ()).name for n in tt.terms}
        placed = {loop_grad(tt.index, "steps", r.var, n, ()).name: n for n in tt.slice_terms}
        scratch: list[str] = []  # NumPy's arrays for the kept δs: here the scan stacks them
        stores, after = self._sums_after(hoisted, buf, first, scratch, bufs_read, back_needs, bdims)
        ys, stacked_as, sums = [], [], []
        for s in back:
            body += [f"# {c}" for c in s.comment]
            target, value = self.code(s.symbol), self.code(s.expr)
            bdims |= dims_read(s.expr)
            if s.symbol.name in accumulate:  # a running sum in the carry
                body.append(f"{target} = {target} + {value}")
                sums.append((target, shape_of(s.expr)))
            elif s.symbol.name in placed:  # the gradient of X[:, t]: stacked by the scan, time then moved
                sl = next(q for q in r.slices if q.source.name == placed[s.symbol.name])
                share = self.names.named("var", f"{s.symbol.name} at step", f"{target}_t")
                steps = self.names.named("steps", f"{s.symbol.name} stacked", f"{target}_by_step")
                body.append(f"{share} = {value}" if shape_of(s.expr) == shape_of(sl.step)
                            else f"{share} = np.broadcast_to({value}, {self.shape(shape_of(sl.step))})")
                ys.append(share)
                stacked_as.append(steps)
                after.insert(0, f"{target} = np.moveaxis({steps}, 0, {sl.axis})" if sl.axis else f"{target} = {steps}")
            else:
                body.append(f"{target} = {value}")
        for x in stores:
            ys.append(self.code(x))
            stacked_as.append(self.kept_steps[x])
        for _, shape in sums:
            bdims |= {str(d) for d in shape if isinstance(d, sympy.Symbol)}
        for s in carried:
            bdims |= {str(d) for d in shape_of(s.step) if isinstance(d, sympy.Symbol)}
        internal = step_syms | set(prevs) | set(slices) | set(tt.own.values()) | set(tt.after.values()) | made_back
        internal |= {stacked for stacked, _ in self.stacks.values()}
        back_needs |= {x for x in back_read if x not in internal}
        typed |= {self.code(x) for x in back_read if x not in internal}
        if carry or sums:  # the carry starts at zeros in the dtype of what the step reads
            dtype = self.names.named("var", f"loop{tt.index} back dtype", "back_dtype")
            lines.append(f"{dtype} = np.result_type({', '.join([*sorted(typed), '1.0'])})")
            lines += [f"{c} = np.zeros({self.shape(shape_of(s.step))}, {dtype})" for c, s in zip(carry, carried)]
            lines += [f"{name} = np.zeros({self.shape(shape)}, {dtype})" for name, shape in sums]
        carry += [name for name, _ in sums]
        fn = self.names.named("var", f"loop{tt.index} step back", "backward_step")
        lines += self._scan(fn, carry, ys, stacked_as, body, _pack(carry) if carry else "()", reverse=True)
        lines += [x for x in after if x not in lines]  # a state's steps before each: made once, before the scan
        for s in r.states:
            g = loop_grad(tt.index, "first", r.var, f"{s.name}[0]", ())
            lines.append(f"{self.code(g)} = {self.code(tt.after[s.name])}")
            grads.add(g)
        return [to_jnp(x) for x in lines], back_needs, bufs_read, bdims, grads


__all__ = ["ScanLowering"]
