"""Derivation -> program: the passes that turn a derivation into the statements a generated
module runs, called in order from :func:`lower`, the one place that knows the order.

1. :mod:`backprop.codegen.equations`: the forward equations and the backward steps
   the gradients need, as statements in stable forms, reusing forward values;
   :mod:`backprop.codegen.stack`: products of one operand with several weights as slices of
   one stacked product; :mod:`backprop.codegen.windows`: a convolution's windows gathered once for
   its forward pass and its filter gradient (NumPy only); :mod:`backprop.codegen.fold`: a gain and shift shared by the examples
   folded into the contractions that read them, and sums over the examples contracted first;
2. :mod:`backprop.codegen.liveness`: dead statements dropped;
3. :mod:`backprop.codegen.cse`: each repeated subexpression computed once (then
   liveness again, as a repeat may have been all a statement was read for);
   :mod:`backprop.codegen.layout`: each temporary only products read stored in the axis
   order they read it in without a copy;
4. :mod:`backprop.codegen.liveness`: what the cache carries from forward to backward,
   where each value is freed;
5. :mod:`backprop.codegen.inplace`: which values are computed in the array of one
   they consume, which gradients are copies (NumPy only: a JAX array is immutable, and
   ``jax.jit`` reuses buffers itself).

The ``backend`` picks the printer (:class:`~backprop.codegen.printer.NumpyPrinter` or
:class:`~backprop.codegen.jax_printer.JaxPrinter`) and the registry helpers; the passes are the same.

No pass imports another; each reads the statements (:mod:`backprop.codegen.stmt`)
and gives back statements or a decision about them, gathered here in a :class:`Program`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sympy import Basic, MatrixSymbol

from backprop.codegen import cse, equations, fold, layout, liveness, stack, windows
from backprop.codegen.inplace import ArrayReuse
from backprop.codegen.jax_printer import JaxPrinter, to_jnp
from backprop.codegen.printer import ARITH, NumpyPrinter, dims_read
from backprop.codegen.rewrite import Rule
from backprop.codegen.stmt import Stmt, TempSymbol, reads
from backprop.engine.derivation import Derivation, Shown
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops import REGISTRY
from backprop.expr.printing import grad_symbol, text
from backprop.language.domains import parse as parse_domain
from backprop.language.model import Decl, Model
from backprop.support.naming import JAX_MODULE_NAMES, CodeNames, helper_name

#: The targets a module is generated for.
BACKENDS = ("numpy", "jax")


@dataclass
class Program:
    """Everything the module template needs, already in order."""

    model: Model
    derivation: Shown  # a Derivation, or a TimeDerivation for a model with loops
    backend: str
    names: CodeNames
    printer: NumpyPrinter
    stmts: list[Stmt]
    cache: list[str]  # backward's parameters (python names), in order
    cache_dims: list[str]  # dims among them (spec names)
    forward_dims: list[str]  # dims forward needs (spec names)
    helpers: list[str]  # registry helper sources, dependencies first
    stable_rules: list[Rule] = field(default_factory=list)
    #: statement symbol -> values read there for the last time, dropped (``del``) right after
    frees: dict[Basic, list[Basic]] = field(default_factory=dict)
    #: statement symbol -> (a factor it is computed in place of, the other factors)
    inplace: dict[Basic, tuple[Basic, list[Basic]]] = field(default_factory=dict)
    #: statement symbol -> (its first term, a new array, then ("+", term) / ("-", term) added in place)
    sums: dict[Basic, tuple[Basic, list[tuple[str, Basic]]]] = field(default_factory=dict)
    #: statement symbol -> the activation's in-place NumPy form, writing into its argument
    activations: dict[Basic, str] = field(default_factory=dict)
    #: gradients computed as a copy (``np.copy``): their value is an array the caller passed,
    #: or one another gradient is
    copies: set[Basic] = field(default_factory=set)
    #: a model with loops (:mod:`backprop.codegen.through_time`): the template's forward and backward
    #: views, outside statements and loop blocks in order
    loop_views: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None

    @property
    def forward(self) -> list[Stmt]:
        return [s for s in self.stmts if s.section == "forward"]

    @property
    def backward(self) -> list[Stmt]:
        return [s for s in self.stmts if s.section == "backward"]

    @property
    def decls(self) -> list[Decl]:
        return list(self.model.decls.values())

    @property
    def loss_symbol(self) -> MatrixSymbol:
        return self.derivation.loss.symbol

    @property
    def loss_is_0d(self) -> bool:
        """Whether the loss statement yields a 0-d scalar (else forward reshapes it)."""
        loss = next(s for s in self.stmts if s.symbol == self.loss_symbol)
        return zero_d(loss.expr)

    def code(self, e: Basic) -> str:
        return self.printer.doprint(e)

    def factor(self, e: Basic) -> str:
        """A factor multiplied into an array in place (a boolean mask may stay one)."""
        return self.printer.factor(e)

    def value(self, s: Stmt) -> str:
        """The right-hand side of statement ``s`` computed in one go (not step by step in place)."""
        code = self.activations.get(s.symbol) or self.code(s.expr)
        return f"np.copy({code})" if s.symbol in self.copies else code

    def name(self, symbol: Basic) -> str:
        return self.printer.doprint(symbol)


def zero_d(e: Basic) -> bool:
    """NumPy computes ``e`` as a 0-d scalar whatever the caller passes: a full reduction,
    a constant, or arithmetic of those (a scalar input may arrive as a 1×1 array)."""
    if isinstance(e, OpNode):
        if e.op.name in ("sum", "mean"):
            return len(e.attrs[-1]) == 2
        return e.op.name in ARITH and all(zero_d(c) for c in e.children)
    return not isinstance(e, MatrixSymbol)


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------


def lower(d: Derivation, backend: str = "numpy") -> Program:
    """The module's statements for derivation ``d``: each pass in turn (see the module doc)."""
    model = d.model
    jax = backend == "jax"
    names = CodeNames(reserved=set(registry_helpers(backend)) | (JAX_MODULE_NAMES if jax else set()))
    _claim_names(model, d, names)
    printer = (JaxPrinter if jax else NumpyPrinter)(names, set(model.dims))
    grads = {grad_symbol(p.name, p.shape) for p in model.params}
    roots = {d.loss.symbol} | grads
    stmts, rules = equations.statements(d)
    stmts = stack.stack(stmts, {decl.symbol for decl in model.decls.values()})
    stmts = fold.fold(stmts, model.dims.get(model.examples_dim or ""), roots)
    if not jax:  # XLA fuses a JAX module's convolutions itself
        stmts = windows.share(stmts)
    stmts = liveness.live(stmts, roots)
    stmts = cse.eliminate(stmts, names.temp, lambda sym, e: (f"{text(sym)} = {text(e)}",), _duplicated(printer))
    stmts = liveness.live(stmts, roots)
    stmts = layout.layout(stmts, roots)
    printer.python_scalars = _python_scalars(model, stmts)
    cache, cache_dims = liveness.cache(model, stmts, printer)
    in_forward = set(cache_dims).union(*(dims_read(s.expr) for s in stmts if s.section == "forward"))
    in_forward |= {a for x in model.inputs if x.domain and (a := parse_domain(x.domain)[1]) in model.dims}  # labels' range
    forward_dims = [dim for dim in model.dims if dim in in_forward]
    frees = liveness.frees(stmts, "forward", liveness.backward_reads(stmts) | {d.loss.symbol})
    frees.update(liveness.frees(stmts, "backward", grads))
    if jax:  # every value a new array: the program as the statements say
        code = "\n".join(printer.doprint(s.expr) for s in stmts)
        return Program(model, d, backend, names, printer, stmts, cache, cache_dims, forward_dims,
                       _helpers_used(code, backend), rules, frees)
    reuse = ArrayReuse(model, stmts, roots, printer)
    code = "\n".join(reuse.activations.get(s.symbol) or printer.doprint(s.expr) for s in stmts)
    return Program(
        model, d, backend, names, printer, stmts, cache, cache_dims, forward_dims, _helpers_used(code), rules, frees,
        reuse.inplace, reuse.sums, reuse.activations, reuse.copies,
    )


# ---------------------------------------------------------------------------
# What the passes need from the printer and the registry: names, helpers, scalars
# ---------------------------------------------------------------------------


def registry_helpers(backend: str = "numpy") -> dict[str, str]:
    """Helper function name -> source, for every registry row that needs one: a JAX module's are
    the rows' ``jax_helper`` where they have one, else their NumPy helper in ``jnp.`` (and no
    in-place helpers, which only the NumPy array reuse calls)."""
    if backend == "jax":
        sources = [op.jax_helper or to_jnp(op.numpy_helper) for op in REGISTRY.values() if op.numpy_helper]
        sources += [src for op in REGISTRY.values() for src in op.jax_shared_helpers]
    else:
        sources = [src for op in REGISTRY.values()
                   for src in (op.numpy_helper, op.numpy_inplace_helper, *op.shared_helpers) if src]
    return {helper_name(src): src for src in sources}


def _helpers_used(code: str, backend: str = "numpy") -> list[str]:
    """The registry helpers ``code`` calls, with the helpers they call, dependencies first."""
    table = registry_helpers(backend)
    order: list[str] = []

    def need(name: str) -> None:
        if name in order:
            return
        for other in sorted(table):
            if other != name and re.search(rf"\b{other}\(", table[name]):
                need(other)
        order.append(name)

    for name in sorted(table):
        if re.search(rf"\b{name}\(", code):
            need(name)
    return [table[n] for n in order]


def _duplicated(printer: NumpyPrinter) -> Callable[[OpNode], set[int]]:
    """Operand positions an operation's NumPy form spells more than once."""
    memo: dict[tuple, set[int]] = {}

    def dup(e: OpNode) -> set[int]:
        key = (type(e), e.attrs, tuple(shape_of(c) for c in e.children))
        if key not in memo:
            probes = [TempSymbol(f"_operand{i}", *shape_of(c)) for i, c in enumerate(e.children)]
            code = printer.doprint(e.func(*probes, *e.attrs))
            memo[key] = {i for i in range(len(probes)) if len(re.findall(rf"\b_operand{i}\b", code)) > 1}
        return memo[key]

    return dup


def _claim_names(model: Model, d: Derivation, names: CodeNames) -> None:
    """Hand out Python names in a fixed order, so collisions resolve the same way every run."""
    for decl in model.decls.values():
        names.var(decl.name)
    for eq in d.equations:
        names.var(eq.name)
    for dim in model.dims:
        names.dim(dim)
    for s in d.steps:
        names.grad(s.target)


def _python_scalars(model: Model, stmts: list[Stmt]) -> set[Basic]:
    """Scalars a caller may pass as Python numbers, and the scalar values computed from them alone."""
    out: set[Basic] = {d.symbol for d in model.decls.values() if ir.is_scalar(d.symbol)}
    for s in stmts:
        if ir.is_scalar(s.symbol) and reads(s.expr) <= out:
            out.add(s.symbol)
    return out
