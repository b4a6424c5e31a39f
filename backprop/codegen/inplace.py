"""In-place array reuse: which values are computed in the array of one they consume, and
which gradients must be copies.

Hand-written NumPy rebinds one array rather than allocating a new one per step
(``dZ = dA; dZ *= A``, ``Z = W1 @ X; Z += b1``, ``np.tanh(Z, out=Z)``). This pass
decides, statement by statement, where that is safe: it needs to know which
values are surely floating arrays (a float cannot be written into an int array
or a mask) and which names may hold the same array, and nothing else the other
passes know, so it is a pass of its own, run last on the live statements.
"""

from __future__ import annotations

import sympy
from sympy import Basic, MatrixSymbol

from backprop.codegen.printer import SYMPY_FUNCTIONS, NumpyPrinter
from backprop.codegen.stmt import VIEWS, Stmt, reads
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_row import axes_of
from backprop.expr.printing import GradSymbol, grad_symbol
from backprop.language.model import Model

#: Operations whose NumPy result is floating whatever their operands' dtypes.
_FLOAT_RESULT = frozenset({"div", "mean", "sigmoid", "tanh", "softplus", "exp", "log", "sqrt", "softmax", "log_softmax",
                           "erf", "sin", "cos", "log1p", "expm1", "logsumexp", "half_step", "eye", "ones", "zeros"})


def floating(model: Model, stmts: list[Stmt]) -> set[Basic]:
    """Values of a floating dtype whatever dtypes the caller passes: the params, and values
    computed from a floating value or by a function that returns floats. An input may be an
    int array (∂L/∂W = X for L = Σ(W ⊙ X) is one), and a step, [A > 0], is a mask or an integer
    count: a float cannot be written into those in place."""
    out = {p.symbol for p in model.params}
    for s in stmts:
        if is_floating(s.expr, out):
            out.add(s.symbol)
    return out


def is_floating(e: Basic, known: set[Basic]) -> bool:
    """Whether expression ``e`` surely computes a floating array, ``known`` being the names that hold one."""
    if isinstance(e, MatrixSymbol):
        return e in known
    if not isinstance(e, OpNode):
        return _const_floating(sympy.sympify(e))
    if e.op.mask:  # a comparison may be a boolean array
        return False
    if e.op.name in _FLOAT_RESULT:
        return True
    if e.op.name == "leaky_step":  # .astype(x.dtype)
        return is_floating(e.children[0], known)
    return any(is_floating(c, known) for c in e.children)


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


#: Arithmetic NumPy computes as a new array (a ufunc) when an operand is an array.
_ARITH = frozenset({"add", "sub", "mul", "div", "pow", "neg"})
#: Binary arithmetic a chain computes in place, with its augmented-assignment operator.
_STEP = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def _terms(e: Basic, sign: str = "+", full: tuple | None = None) -> list[tuple[str, Basic]]:
    """The terms of a sum/difference chain with their signs: a − b + c -> [(+, a), (−, b), (+, c)].
    A sum smaller than the whole (``b₁ + c W`` broadcast over the examples) stays one term: it is
    added in one pass, not one per term."""
    flip = {"+": "-", "-": "+"}
    full = shape_of(e) if full is None else full
    if isinstance(e, OpNode) and e.op.name in ("add", "sub") and shape_of(e) == full:
        if e.op.name == "add":
            return [t for c in e.children for t in _terms(c, sign, full)]
        return _terms(e.children[0], sign, full) + _terms(e.children[1], flip[sign], full)
    return [(sign, e)]


def _factors(e: Basic) -> list[Basic]:
    """The factors of an elementwise product, left to right: a ⊙ b ⊙ c -> [a, b, c]."""
    if isinstance(e, OpNode) and e.op.name == "mul":
        return [f for c in e.children for f in _factors(c)]
    return [e]


def _constant(e: Basic) -> bool:
    """A number or a function of dims only (√k): the same for every entry, no array read."""
    return ir.is_scalar(e) and not e.atoms(MatrixSymbol)


class ArrayReuse:
    """Which values are computed in the array of one they consume, as hand-written code does:
    a product in its gradient factor (``dZ = dA``, ``dZ *= A``), a sum in its leading matrix
    product or spent value (``Z = W1 @ X``, ``Z += b1``), an activation in its argument
    (``np.tanh(Z, out=Z)``); and which gradients must be copies.

    Statement by statement, it tracks the arrays each name may hold (a bare name or a view
    holds another's; a value computed in place holds its seed's), so that an array is written
    into only when it is safe:

    - it is a new floating array (:func:`floating`) made in this function by a statement of
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
        self.floating = floating(model, stmts)
        self.section = {s.symbol: s.section for s in stmts}
        self.last: dict[Basic, int] = {}
        for i, s in enumerate(stmts):
            for x in reads(s.expr):
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
            s.symbol in self.floating and isinstance(s.expr, OpNode) and s.expr.op.name not in VIEWS
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
            if name in self.roots or self.last.get(name, -1) > i or any(name in reads(o) for o in others):
                return False
        return True

    def _fresh_product(self, e: Basic) -> bool:
        """A matrix product or contraction: NumPy returns it in a new floating array of its own."""
        return (isinstance(e, OpNode) and (e.op.name == "matmul" or (e.op.name == "einsum" and len(e.children) > 1))
                and is_floating(e, self.floating))  # [W > 0] @ X of an int X is an int array

    def _scaled(self, s: Stmt) -> tuple[Basic, list[tuple[str, Basic]]] | None:
        """``P = Q Kᵀ / √k``: the product's new array, then scaled in it (``P /= √k``)."""
        e = s.expr
        if not isinstance(e, OpNode) or e.op.name not in ("mul", "div") or ir.is_scalar(s.symbol):
            return None
        a, b = e.children
        if e.op.name == "mul" and _constant(a):
            a, b = b, a
        if not (self._fresh_product(a) and _constant(b) and shape_of(a) == shape_of(s.symbol)):
            return None
        return a, [("*" if e.op.name == "mul" else "/", b)]

    def _shifted_product(self, i: int, s: Stmt) -> tuple[Basic, list[tuple[str, Basic]]] | None:
        """``dZ = P ⊙ (dP − Σ(dP ⊙ P))``, softmax's backward: the difference in the spent gradient's
        array, then scaled in it (``dZ = dP``, ``dZ -= Σ(dP ⊙ P)``, ``dZ *= P``). The first term after
        the seed may read it (its value is computed before the seed is written); later ones may not."""
        e = s.expr
        if not isinstance(e, OpNode) or e.op.name != "mul":
            return None
        for k in (0, 1):
            other, terms = e.children[1 - k], _terms(e.children[k])
            (sign, seed), rest = terms[0], terms[1:]
            if (rest and sign == "+" and isinstance(seed, GradSymbol)
                    and self.writable(seed, i, [other, *(t for _, t in rest[1:])])):
                return seed, [*rest, ("*", other)]
        return None

    def _seed_first(self, i: int, s: Stmt, terms: list[tuple[str, Basic]]) -> list[tuple[str, Basic]]:
        """A sum's terms with one the sum can be computed in first: ``R = X + P W`` of an input ``X``
        (read-only) is ``R = P W; R += X``, the product's new array, rather than a third array."""
        (sign, first), full = terms[0], shape_of(s.symbol)
        usable = sign == "+" and shape_of(first) == full and (
            self._fresh_product(first) if isinstance(first, OpNode)
            else self.writable(first, i, [t for _, t in terms[1:]]))
        if usable or ir.is_scalar(s.symbol):
            return terms
        for k, (sign, t) in enumerate(terms[1:], 1):
            if sign == "+" and shape_of(t) == full and self._fresh_product(t):
                return [terms[k], *terms[:k], *terms[k + 1:]]
        return terms

    def _fresh(self, e: Basic, shape: tuple) -> bool:
        """``e`` is computed by NumPy as a new floating array of ``shape``: arithmetic (a ufunc with
        an array operand) or a matrix product, never a view, a name or a scalar."""
        return (isinstance(e, OpNode) and shape_of(e) == shape and is_floating(e, self.floating)
                and (e.op.name in _ARITH or self._fresh_product(e)))

    def _chain(self, s: Stmt) -> tuple[Basic, list[tuple[str, Basic]]] | None:
        """``N = g ⊙ U / t + c``: arithmetic whose innermost full-size operand is a new array, computed
        in that array step by step (``N = g * U``, ``N /= t``, ``N += c``): one new array where NumPy
        makes one per operation. A sum or product takes whichever operand is new (``R = X + P``: ``R = P``,
        ``R += X``); a difference or quotient only its left one. The same operations in the same order
        on the same values: the result is the same to the bit (bar a sum's operands swapped). Only for
        two steps or more: ``dz = (p − y) / m`` stays one line."""
        shape = shape_of(s.symbol)
        if ir.is_scalar(s.symbol) or not self._fresh(s.expr, shape):
            return None
        e, steps = s.expr, []
        while isinstance(e, OpNode) and e.op.name in _STEP and len(e.children) == 2:
            a, b = e.children
            if not self._fresh(a, shape) and e.op.name in ("add", "mul") and self._fresh(b, shape):
                a, b = b, a
            if not self._fresh(a, shape):
                break
            steps.append((_STEP[e.op.name], b))
            e = a
        # one step saves one temporary and splits a line that reads as the math ((p − y)/m): two or more
        return (e, steps[::-1]) if len(steps) >= 2 else None

    def _decide(self, i: int, s: Stmt, printer: NumpyPrinter) -> frozenset[Basic]:
        """Decide how statement ``i`` computes its value; return the arrays its name then holds."""
        factors = _factors(s.expr)
        for f in factors if len(factors) > 1 else ():
            others = [g for g in factors if g is not f]
            if isinstance(f, GradSymbol) and len(others) == len(factors) - 1 and self.writable(f, i, others):
                self.inplace[s.symbol] = (f, others)
                return self.held(f)
        shifted = self._shifted_product(i, s)
        if shifted is not None:
            self.sums[s.symbol] = shifted
            return self.held(shifted[0])
        scaled = self._scaled(s)
        if scaled is not None:
            self.sums[s.symbol] = scaled
            return frozenset({s.symbol})
        e = s.expr
        if (isinstance(e, OpNode) and e.op.name == "div" and isinstance(e.children[0], GradSymbol)
                and _constant(e.children[1]) and self.writable(e.children[0], i, [])):
            self.sums[s.symbol] = (e.children[0], [("/", e.children[1])])  # t = dZ; t /= √k
            return self.held(e.children[0])
        terms = self._seed_first(i, s, _terms(s.expr))
        (sign, first), rest = terms[0], terms[1:]
        if rest and sign == "+" and shape_of(first) == shape_of(s.symbol) and not ir.is_scalar(s.symbol):
            if isinstance(first, OpNode):
                if self._fresh_product(first):
                    self.sums[s.symbol] = (first, rest)
                    return frozenset({s.symbol})
            elif self.writable(first, i, [t for _, t in rest]):
                self.sums[s.symbol] = (first, rest)
                return self.held(first)
        chain = self._chain(s)
        if chain is not None:
            self.sums[s.symbol] = chain
            return frozenset({s.symbol})
        e = s.expr
        if isinstance(e, OpNode) and e.op.numpy_inplace and len(e.children) == 1:
            arg = e.children[0]
            if isinstance(arg, MatrixSymbol) and self.writable(arg, i, []):
                along = {"axis": axes_of(e)[0]} if "axis" in e.op.attrs else {}  # softmax along its axis
                self.activations[s.symbol] = e.op.numpy_inplace.format(printer.doprint(arg), **along)
                return self.held(arg)
        while isinstance(e, OpNode) and e.op.name in VIEWS:
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
