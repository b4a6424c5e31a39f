"""Derivation -> program: the statements a generated module runs, in order.

Lowering reads the derivation as the module will: the forward equations
(lifted pre-activations included), rewritten into stable and efficient forms
(:mod:`backprop.codegen.rewrite`); then the backward steps' final results, keeping only
the steps some parameter gradient needs, rewritten the same way and made to
reuse forward values (ReLU′ from the activation, softmax from the forward
log-softmax); then one common-subexpression pass over both (:mod:`backprop.codegen.cse`);
then liveness, which drops dead statements and decides what the cache must
carry from forward to backward.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import sympy
from sympy import Basic, MatrixSymbol

from backprop.codegen import cse
from backprop.codegen.cse import Stmt, TempSymbol
from backprop.codegen.printer import ARITH, SYMPY_FUNCTIONS, NumpyPrinter, dims_read
from backprop.codegen.rewrite import Rule, available, resolver, reuse, stabilize
from backprop.engine.derivation import Derivation, Step
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops import REGISTRY
from backprop.expr.printing import GradSymbol, grad_symbol, text
from backprop.language.model import Decl, Model
from backprop.support.naming import CodeNames, helper_name


@dataclass
class Program:
    """Everything the module template needs, already in order."""

    model: Model
    derivation: Derivation
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


# ---------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------


def _forward_stmts(d: Derivation) -> tuple[list[Stmt], list[Rule]]:
    see = resolver({eq.name: eq.expr for eq in d.equations})
    out: list[Stmt] = []
    rules: list[Rule] = []
    for eq in d.equations:
        expr, fired = stabilize(eq.expr, see)
        comment = [f"{text(eq.symbol)} = {text(eq.expr)}"]
        stable = [r for r in fired if r.why == "stable"]
        if stable:
            comment.append("stable form: " + "; ".join(r.name for r in stable))
            rules.extend(r for r in stable if r not in rules)
        out.append(Stmt(eq.symbol, expr, "forward", "forward", tuple(comment)))
    return out, rules


def needed_steps(d: Derivation) -> list[Step]:
    """Steps some param gradient depends on; e.g. ∂L/∂p is dead once ∂L/∂z = (p − y)/m."""
    needed = set(d.params)
    for s in reversed(d.steps):  # a step reads only the δ of steps listed before it
        if s.target in needed:
            needed |= {g.of for g in s.result.atoms(GradSymbol)}
    return [s for s in d.steps if s.target in needed]


def _backward_stmts(d: Derivation, forward: list[Stmt]) -> list[Stmt]:
    see = resolver({eq.name: eq.expr for eq in d.equations})
    have = available([(s.symbol, s.expr) for s in forward])
    out: list[Stmt] = []
    for s in needed_steps(d):
        expr, _ = stabilize(s.result, see)
        expr, reused = reuse(expr, have)
        comment = [f"{text(s.grad)} = {text(s.recursive)}" + (f" = {text(s.result)}" if s.inlined else "")]
        if reused:
            comment.append("reusing forward values: " + "; ".join(r.name for r in reused))
        out.append(Stmt(grad_symbol(s.target, s.shape), expr, "backward", "backward", tuple(comment)))
    return out


def zero_d(e: Basic) -> bool:
    """NumPy computes ``e`` as a 0-d scalar whatever the caller passes: a full reduction,
    a constant, or arithmetic of those (a scalar input may arrive as a 1×1 array)."""
    if isinstance(e, OpNode):
        if e.op.name in ("sum", "mean"):
            return len(e.attrs[-1]) == 2
        return e.op.name in ARITH and all(zero_d(c) for c in e.children)
    return not isinstance(e, MatrixSymbol)


@lru_cache(maxsize=1 << 14)
def _reads(e: Basic) -> frozenset[Basic]:
    """The values ``e`` reads. Memoized: liveness, frees and the cache each ask of every statement."""
    return frozenset(e.atoms(MatrixSymbol))


def _live(stmts: list[Stmt], roots: set[Basic]) -> list[Stmt]:
    """Drop statements nothing needed reads (backwards over the program)."""
    needed = set(roots)
    keep: list[Stmt] = []
    for s in reversed(stmts):
        if s.symbol in needed:
            keep.append(s)
            needed |= _reads(s.expr)
    return keep[::-1]


# ---------------------------------------------------------------------------
# Names, helpers and the cache
# ---------------------------------------------------------------------------


def registry_helpers() -> dict[str, str]:
    """Helper function name -> source, for every registry row that needs one."""
    sources = [src for op in REGISTRY.values() for src in (op.numpy_helper, op.numpy_inplace_helper) if src]
    return {helper_name(src): src for src in sources}


def _helpers_used(code: str) -> list[str]:
    """The registry helpers ``code`` calls, with the helpers they call, dependencies first."""
    table = registry_helpers()
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


def _duplicated(printer: NumpyPrinter):
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


def lower(d: Derivation) -> Program:
    """The module's statements for derivation ``d``."""
    model = d.model
    names = CodeNames(reserved=set(registry_helpers()))
    _claim_names(model, d, names)
    printer = NumpyPrinter(names, set(model.dims))
    fwd, rules = _forward_stmts(d)
    stmts = fwd + _backward_stmts(d, fwd)
    roots = {d.loss.symbol} | {grad_symbol(p.name, p.shape) for p in model.params}
    stmts = _live(stmts, roots)
    stmts = cse.eliminate(stmts, names.temp, lambda sym, e: (f"{text(sym)} = {text(e)}",), _duplicated(printer))
    stmts = _live(stmts, roots)
    printer.python_scalars = _python_scalars(model, stmts)
    cache, cache_dims = _cache(model, stmts, printer)
    in_forward = set(cache_dims).union(*(dims_read(s.expr) for s in stmts if s.section == "forward"))
    forward_dims = [dim for dim in model.dims if dim in in_forward]
    frees = _frees(stmts, "forward", _backward_reads(stmts) | {d.loss.symbol})
    frees.update(_frees(stmts, "backward", {grad_symbol(p.name, p.shape) for p in model.params}))
    reuse = _ArrayReuse(model, stmts, roots, printer)
    inplace, sums, activations = reuse.inplace, reuse.sums, reuse.activations
    code = "\n".join(activations.get(s.symbol) or printer.doprint(s.expr) for s in stmts)
    return Program(
        model, d, names, printer, stmts, cache, cache_dims, forward_dims, _helpers_used(code), rules, frees, inplace,
        sums, activations, reuse.copies,
    )


#: Operations whose NumPy result is floating whatever their operands' dtypes.
_FLOAT_RESULT = frozenset({"div", "mean", "sigmoid", "tanh", "softplus", "exp", "log", "sqrt", "softmax", "log_softmax"})


def _floating(model: Model, stmts: list[Stmt]) -> set[Basic]:
    """Values of a floating dtype whatever dtypes the caller passes: the params, and values
    computed from a floating value or by a function that returns floats. An input may be an
    int array (∂L/∂W = X for L = Σ(W ⊙ X) is one), and a step, [A > 0], is a mask or an integer
    count: a float cannot be written into those in place."""
    out = {p.symbol for p in model.params}

    def floating(e: Basic) -> bool:
        if isinstance(e, MatrixSymbol):
            return e in out
        if not isinstance(e, OpNode):
            return _const_floating(sympy.sympify(e))
        if e.op.name == "step":
            return False
        if e.op.name in _FLOAT_RESULT:
            return True
        if e.op.name == "leaky_step":  # .astype(x.dtype)
            return floating(e.children[0])
        return any(floating(c) for c in e.children)

    for s in stmts:
        if floating(s.expr):
            out.add(s.symbol)
    return out


def _const_floating(c: sympy.Expr) -> bool:
    """Whether the NumPy code of constant ``c`` surely computes a float (unknown: no). Dims and
    integers are Python ints; a fraction, a quotient (printed with ``/``), a root or a
    transcendental function is a float; ``relu(k)`` or ``abs(1 - k)`` is an int of ints."""
    if c.is_Integer or c.is_Symbol:
        return False
    if c.is_Rational or c.is_Float or c.is_NumberSymbol:
        return True
    if c.is_Pow:
        return bool(c.exp.is_Integer is False or c.exp.is_negative) or _const_floating(c.base)
    if c.is_Mul and sympy.fraction(c)[1] != 1:
        return True
    name = SYMPY_FUNCTIONS.get(type(c).__name__, type(c).__name__)
    if name in _FLOAT_RESULT:
        return True
    return any(_const_floating(a) for a in c.args)


def _terms(e: Basic, sign: str = "+") -> list[tuple[str, Basic]]:
    """The terms of a sum/difference chain with their signs: a − b + c -> [(+, a), (−, b), (+, c)]."""
    flip = {"+": "-", "-": "+"}
    if isinstance(e, OpNode) and e.op.name == "add":
        return [t for c in e.children for t in _terms(c, sign)]
    if isinstance(e, OpNode) and e.op.name == "sub":
        return _terms(e.children[0], sign) + _terms(e.children[1], flip[sign])
    return [(sign, e)]


def _factors(e: Basic) -> list[Basic]:
    """The factors of an elementwise product, left to right: a ⊙ b ⊙ c -> [a, b, c]."""
    if isinstance(e, OpNode) and e.op.name == "mul":
        return [f for c in e.children for f in _factors(c)]
    return [e]


class _ArrayReuse:
    """Which values are computed in the array of one they consume, as hand-written code does:
    a product in its gradient factor (``dZ = dA``, ``dZ *= A``), a sum in its leading matrix
    product or spent value (``Z = W1 @ X``, ``Z += b1``), an activation in its argument
    (``np.tanh(Z, out=Z)``); and which gradients must be copies.

    Statement by statement, it tracks the arrays each name may hold (a bare name or a view
    holds another's; a value computed in place holds its seed's), so that an array is written
    into only when it is safe:

    - it is a new floating array (:func:`_floating`) made in this function by a statement of
      the same shape -- never the caller's, a view, a scalar (a Python number or a NumPy
      scalar has no array to write into) or an int or boolean array;
    - no name holding it is read again: not later, not by the statement's other operands,
      not as the loss, a gradient or the cache (``dP = dH`` keeps ``dH``'s array alive).

    A gradient is a copy when its array is one the caller passed (∂L/∂W = X) or one an
    earlier gradient is (two params with one gradient): no two gradients share memory, and
    none shares memory with a param or input.
    """

    def __init__(self, model: Model, stmts: list[Stmt], roots: set[Basic], printer: NumpyPrinter) -> None:
        self.stmts = stmts
        self.roots = roots
        self.floating = _floating(model, stmts)
        self.section = {s.symbol: s.section for s in stmts}
        self.last: dict[Basic, int] = {}
        for i, s in enumerate(stmts):
            for x in _reads(s.expr):
                self.last[x] = i
        self.maker = {s.symbol: s for s in stmts}
        #: name -> the arrays it may hold, each named by the statement (or declaration) that made it
        self.holds: dict[Basic, frozenset[Basic]] = {}
        #: array -> the names that may hold it (the inverse of ``holds``)
        self.holders: dict[Basic, set[Basic]] = {}
        self.inplace: dict[Basic, tuple[Basic, list[Basic]]] = {}
        self.sums: dict[Basic, tuple[Basic, list[tuple[str, Basic]]]] = {}
        self.activations: dict[Basic, str] = {}
        for i, s in enumerate(stmts):
            self.holds[s.symbol] = self._decide(i, s, printer)
            for array in self.holds[s.symbol]:
                self.holders.setdefault(array, set()).add(s.symbol)
        self.copies = self._copies(model)

    def held(self, x: Basic) -> frozenset[Basic]:
        return self.holds.get(x, frozenset({x}))

    def new(self, s: Stmt) -> bool:
        """``s`` makes a new floating array, not a view, a bare name or a scalar."""
        return (
            s.symbol in self.floating and isinstance(s.expr, OpNode) and s.expr.op.name not in cse.VIEWS
            and not ir.is_scalar(s.symbol)
        )

    def writable(self, x: Basic, i: int, others: list[Basic]) -> bool:
        """Statement ``i`` may compute its value in the array ``x`` holds (see the class doc)."""
        s = self.stmts[i]
        arrays = self.held(x)
        if len(arrays) != 1 or shape_of(x) != shape_of(s.symbol) or ir.is_scalar(s.symbol):
            return False
        (array,) = arrays
        maker = self.maker.get(array)
        if maker is None or maker.section != s.section or not self.new(maker):
            return False
        if shape_of(array) != shape_of(s.symbol):  # x is a broadcast (read-only) view of it
            return False
        for name in self.holders.get(array, set()) | {x}:
            if name in self.roots or self.last.get(name, -1) > i or any(name in _reads(o) for o in others):
                return False
        return True

    def _decide(self, i: int, s: Stmt, printer: NumpyPrinter) -> frozenset[Basic]:
        """Decide how statement ``i`` computes its value; return the arrays its name then holds."""
        factors = _factors(s.expr)
        for f in factors if len(factors) > 1 else ():
            others = [g for g in factors if g is not f]
            if isinstance(f, GradSymbol) and len(others) == len(factors) - 1 and self.writable(f, i, others):
                self.inplace[s.symbol] = (f, others)
                return self.held(f)
        terms = _terms(s.expr)
        (sign, first), rest = terms[0], terms[1:]
        if rest and sign == "+" and shape_of(first) == shape_of(s.symbol) and not ir.is_scalar(s.symbol):
            if isinstance(first, OpNode):
                if first.op.name == "matmul" and _reads(first) & self.floating:
                    self.sums[s.symbol] = (first, rest)
                    return frozenset({s.symbol})
            elif self.writable(first, i, [t for _, t in rest]):
                self.sums[s.symbol] = (first, rest)
                return self.held(first)
        e = s.expr
        if isinstance(e, OpNode) and e.op.numpy_inplace and len(e.children) == 1:
            arg = e.children[0]
            if isinstance(arg, MatrixSymbol) and self.writable(arg, i, []):
                self.activations[s.symbol] = e.op.numpy_inplace.format(printer.doprint(arg))
                return self.held(arg)
        while isinstance(e, OpNode) and e.op.name in cse.VIEWS:
            e = e.children[0]
        return self.held(e) if isinstance(e, MatrixSymbol) else frozenset({s.symbol})

    def _copies(self, model: Model) -> set[Basic]:
        """Gradients holding a caller's array or one an earlier gradient (in statement order,
        so the copy is the alias, not the array it aliases) holds."""
        given = {d.symbol for d in model.decls.values()}
        grads = {grad_symbol(p.name, p.shape) for p in model.params}
        seen: set[Basic] = set()
        out: set[Basic] = set()
        for s in self.stmts:
            if s.symbol not in grads:
                continue
            arrays = self.held(s.symbol)
            if arrays & (given | seen):
                out.add(s.symbol)
            seen |= arrays
        return out


def _backward_reads(stmts: list[Stmt]) -> set[Basic]:
    """Values backward reads but does not make: forward keeps them for it."""
    made = {s.symbol for s in stmts if s.section == "backward"}
    return {x for s in stmts if s.section == "backward" for x in _reads(s.expr)} - made


def _frees(stmts: list[Stmt], section: str, keep: set[Basic]) -> dict[Basic, list[Basic]]:
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
        for x in _reads(s.expr):
            last[x] = s.symbol
    out: dict[Basic, list[Basic]] = {}
    for x in made:
        at = last.get(x)
        if at is not None and x not in keep and at != made[-1]:
            out.setdefault(at, []).append(x)
    return out


def _python_scalars(model: Model, stmts: list[Stmt]) -> set[Basic]:
    """Scalars a caller may pass as Python numbers, and the scalar values computed from them alone."""
    out: set[Basic] = {d.symbol for d in model.decls.values() if ir.is_scalar(d.symbol)}
    for s in stmts:
        if ir.is_scalar(s.symbol) and _reads(s.expr) <= out:
            out.add(s.symbol)
    return out


def _cache(model: Model, stmts: list[Stmt], printer: NumpyPrinter) -> tuple[list[str], list[str]]:
    """What backward reads that forward (or the caller) provides: values first, then dims."""
    backward = [s for s in stmts if s.section == "backward"]
    made_in_backward = {s.symbol for s in backward}
    reads: set[Basic] = set()
    dims: set[str] = set()
    for s in backward:
        reads |= {x for x in _reads(s.expr) if x not in made_in_backward}
        dims |= dims_read(s.expr)
    order = [decl.symbol for decl in model.decls.values()] + [s.symbol for s in stmts if s.section == "forward"]
    values = [printer.doprint(x) for x in order if x in reads]
    dim_list = [dim for dim in model.dims if dim in dims]
    return values + [printer.names.dim(dim) for dim in dim_list], dim_list


def shape_data(decl: Decl) -> tuple:
    """A declared shape as module data: dims by name, fixed sizes as ints; () for a scalar."""
    if decl.scalar:
        return ()
    return tuple(int(d) if d.is_Integer else str(d) for d in decl.shape)

