"""Model expressions as NumPy source, from the operation registry.

:class:`NumpyPrinter` subclasses SymPy's ``StrPrinter`` the way the LaTeX and
text printers of :mod:`backprop.expr.printing` do: ``_print_OpNode`` hands each
operation to the ``numpy`` form of its registry row, variables print as the
Python names :class:`backprop.support.naming.CodeNames` gave them, gradients (∂L/∂W1) as
their gradient variables (``dW1``), and constants -- numbers and dimensions --
as Python arithmetic on the dimension variables. Anything else raises
:class:`~backprop.support.errors.UnsupportedError`.
"""

from __future__ import annotations

import sys

import sympy
from sympy import Basic, MatrixSymbol
from sympy.printing.str import StrPrinter

from backprop.codegen.stmt import TempSymbol
from backprop.expr import ir
from backprop.expr.ir import OpNode, is_const
from backprop.expr.ops import REGISTRY
from backprop.expr.ops_row import ATOM, MUL, Form, Op
from backprop.expr.printing import GradSymbol, _Operands
from backprop.support.errors import UnsupportedError
from backprop.support.naming import CodeNames


class NumpyPrinter(_Operands, StrPrinter):
    """NumPy code for model expressions; one printer per generated module."""

    def __init__(self, names: CodeNames, dims: set[str]) -> None:
        super().__init__({"order": "none"})
        self.names = names
        self.dims = dims
        #: Values that may be Python numbers (scalars the caller passes, and what is
        #: computed from them alone); see :meth:`_weak`.
        self.python_scalars: set[Basic] = set()
        self._in_weak = False
        #: Whether the node being printed may be a boolean mask (``(A > 0)``; see :func:`_masks_ok_in`).
        self.mask_ok = False
        self._node: OpNode | None = None  # the operation whose operands are being printed

    # --- operations and variables -------------------------------------------
    def _print_OpNode(self, e: OpNode) -> str:  # noqa: N802 - SymPy dispatch name
        if self._needs_weak(e):
            self._in_weak = True
            try:
                return self.weak(self._print_OpNode(e))
            finally:
                self._in_weak = False
        e = _grouped_sum(e)  # a long sum as groups Python's compiler can nest
        ieee = self._ieee_form(e)
        if ieee is not None:
            return ieee
        peephole = self._peephole(e)
        if peephole is not None:
            return peephole
        outer, self._node = self._node, e
        try:
            return self.form(e.op)(self, _float_constants(e))
        finally:
            self._node = outer

    def form(self, op: Op) -> Form:
        """The registry form this printer prints ``op`` with."""
        return op.numpy

    def weak(self, code: str) -> str:
        """``code``, a NumPy function of Python numbers only, made a Python float again (see :meth:`_needs_weak`)."""
        return f"_weak({code})"

    def operand(self, e: Basic, prec: int) -> str:
        """An operand of the node being printed, which decides whether it may be a mask; a
        scalar operand of a vector is made one number."""
        outer = self.mask_ok
        self.mask_ok = self._node is not None and _masks_ok_in(self._node)
        try:
            return self._one_number(e) or super().operand(e, prec)
        finally:
            self.mask_ok = outer

    def _one_number(self, e: Basic) -> str | None:
        """A scalar operand of a vector as the one number it is: a scalar may be a 1×1 array, which
        NumPy would broadcast against a vector to a matrix (or refuse to broadcast to it)."""
        if self._node is not None and len(self._node.shape) == 1 and ir.is_scalar(e) and not ir.is_const(e):
            return f"np.reshape({self.doprint(e)}, ())"
        return None

    def _peephole(self, e: OpNode) -> str | None:
        """The code-only spelling of ``e``, if one applies (decided on ``e`` as derived, so that
        :meth:`prec_of` and the printed text agree)."""
        peephole = PEEPHOLES.get(e.op.name)
        return peephole(self, e) if peephole else None

    def factor(self, e: Basic) -> str:
        """``e`` as a factor multiplied into a floating array in place (``dZ *= (A > 0)``):
        a boolean mask is fine there."""
        self.mask_ok = True
        try:
            return self._one_number(e) or self.doprint(e)  # where's condition of a vector too
        finally:
            self.mask_ok = False

    def _ieee_form(self, e: OpNode) -> str | None:
        """Division and power of Python numbers only, through NumPy (see :data:`IEEE_FORMS`).

        Python's ``/`` and ``**`` raise on numbers where NumPy's give inf or nan (``1.0 / 0.0``,
        ``2.0 ** 5000``) and ``**`` turns complex (``(-2.0) ** 0.5``); a generated module follows
        NumPy's float semantics throughout, so these are printed as NumPy calls, made Python floats
        again (``_weak``). A divisor the model proves nonzero (a dimension, a nonzero constant)
        keeps the plain operator.
        """
        form = IEEE_FORMS.get(e.op.name)
        if form is None or not ir.is_scalar(e) or not e.atoms(MatrixSymbol) <= self.python_scalars:
            return None
        left, right = e.children
        if e.op.name == "div" and ir.is_const(right) and _surely_nonzero(right):
            return None
        call = f"{form}({self.doprint(left)}, {self.doprint(right)})"
        return call if self._in_weak else self.weak(call)

    def _needs_weak(self, e: OpNode) -> bool:
        """A NumPy function of Python numbers only (``np.exp(s)``) returns a float64 NumPy
        scalar, which would turn float32 arrays float64: such a value is made a Python
        float again (``_weak``). Arithmetic on Python numbers stays Python numbers."""
        if self._in_weak or e.op.name in ARITH or not ir.is_scalar(e):
            return False
        leaves = e.atoms(MatrixSymbol)
        return leaves <= self.python_scalars  # no leaves at all: a function of dims and numbers (np.sqrt(k))

    def prec_of(self, e: Basic) -> int:
        """A peephole spelling is parenthesized already: it binds like an atom."""
        if isinstance(e, OpNode) and self._peephole(e) is not None:
            return ATOM
        return super().prec_of(e)

    def _print_MatrixSymbol(self, e: MatrixSymbol) -> str:  # noqa: N802
        return self.names.var(e.name)

    def _print_GradSymbol(self, e: GradSymbol) -> str:  # noqa: N802
        return self.names.grad(e.of)

    def _print_TempSymbol(self, e: TempSymbol) -> str:  # noqa: N802
        return e.name

    # --- constants: numbers and dimensions ----------------------------------
    def _print_Symbol(self, e: sympy.Symbol) -> str:  # noqa: N802
        if e.name not in self.dims:
            raise UnsupportedError(f"NumpyPrinter: '{e.name}' is not a dimension of this model")
        return self.names.dim(e.name)

    def _print_Float(self, e: sympy.Float) -> str:  # noqa: N802
        return repr(float(e))

    def _print_Pow(self, e: sympy.Pow, rational: bool = False) -> str:  # noqa: N802
        """A dim to an integer power in Python (``m ** 2``, ``1 / m``: a dim's exponent is at most 25,
        so it stays in float range); any other power of constants through NumPy: Python's ``**``
        raises where NumPy gives inf or nan (``0.0 ** -1``, ``1e200 ** 2``) or turns complex
        (``(m − 2) ** 0.5`` at m = 1)."""
        base, ex = e.args
        if isinstance(base, sympy.Symbol) and ex.is_Integer:
            return f"1 / {self.doprint(base)}" if ex == -1 else f"{self.doprint(base)} ** {self.parenthesize(ex, 60)}"
        if ex == sympy.Rational(1, 2) and base.is_positive:  # a Python float: NumPy's float64 would upcast float32
            return f"{self.parenthesize(base, 60, strict=True)} ** 0.5"
        return self.weak(f"np.float_power({self.doprint(base)}, {self.doprint(ex)})")

    def _print_Rational(self, e: sympy.Rational) -> str:  # noqa: N802
        """A spec's 0.01 as 0.01 (exact in decimal); other fractions as p / q.

        A constant the model folded past float64's range (``1e308 * 1e308``) is what float arithmetic
        makes of it, inf; an integer too long to be exact in a float, a float literal (Python's int
        would be exact, and then fail to convert)."""
        if abs(e) > _FLOAT_MAX:
            return "np.inf" if e > 0 else "-np.inf"
        if e != 0 and abs(e) < _FLOAT_TINY:  # folded below the smallest float: what float arithmetic makes of it
            return "0.0"
        if e.q == 1:
            return str(e.p) if abs(e.p) < 2**53 else repr(float(e.p))
        if _short_decimal(e) or max(abs(e.p), e.q) >= 2**53:  # p / q of long ints: a float is what it computes
            return repr(float(e))
        return f"{e.p} / {e.q}"

    def _print_Integer(self, e: sympy.Integer) -> str:  # noqa: N802
        return self._print_Rational(e)

    def _print_Mul(self, e: sympy.Mul) -> str:  # noqa: N802
        """Constant products as Python reads them, spaced like the rest: 2 / m, 3 * m / 2."""
        if e.could_extract_minus_sign():
            return "-" + self.parenthesize(-e, 50, strict=True)
        num, den = sympy.fraction(e)
        top = " * ".join(self.parenthesize(f, 50, strict=True) for f in sympy.Mul.make_args(num))
        if den == 1:
            return top
        if not _surely_nonzero(den):  # 2/(m − 1) at m = 1: inf, as NumPy divides
            return self.weak(f"np.divide({top}, {self.doprint(den)})")
        return f"{top} / {self.parenthesize(den, 51)}"

    def _print_Exp1(self, e: Basic) -> str:  # noqa: N802
        return "np.e"

    # What the engine folds 0 / 0 and c / 0 to (``30 / (0 * w)``: SymPy's 0 · w is 0) is what float
    # arithmetic gives there; SymPy's unsigned infinity becomes +inf.
    def _print_NaN(self, e: Basic) -> str:  # noqa: N802
        return "np.nan"

    def _print_Infinity(self, e: Basic) -> str:  # noqa: N802
        return "np.inf"

    def _print_NegativeInfinity(self, e: Basic) -> str:  # noqa: N802
        return "-np.inf"

    _print_ComplexInfinity = _print_Infinity  # noqa: N815

    def _print_ImaginaryUnit(self, e: Basic) -> str:  # noqa: N802
        """SymPy's log(−1) = iπ (from a negative base under a variable exponent, (−1) ** w): the
        float log of a negative number is nan, and so is what is computed from it, as in PyTorch."""
        return "np.nan"

    # --- functions of constants: exp(1/k), sqrt(k), sigmoid(k) ------------------
    def _print_Function(self, e: sympy.Function) -> str:  # noqa: N802
        """A function of numbers and dims, in the NumPy form of its registry row: SymPy's own
        functions (exp, log, tanh, Abs, sign) and those the simplifier keeps by their registry
        name (``sqrt(k)``, ``sigmoid(k)``). Printed bare, ``sqrt(k)`` would be a NameError."""
        name = SYMPY_FUNCTIONS.get(type(e).__name__, type(e).__name__)
        if name not in REGISTRY or not REGISTRY[name].elementwise or len(e.args) != REGISTRY[name].arity:
            raise UnsupportedError(f"NumpyPrinter: no NumPy form for the function {e}")
        if self._in_weak:
            return self._print_OpNode(ir.node(name, *e.args))
        self._in_weak = True  # a NumPy function of numbers is a float64 scalar: a Python float instead
        try:
            return self.weak(self._print_OpNode(ir.node(name, *e.args)))
        finally:
            self._in_weak = False

    _print_exp = _print_log = _print_tanh = _print_Abs = _print_sign = _print_AppliedUndef = _print_Function  # noqa: N815

    def _print_Pi(self, e: Basic) -> str:  # noqa: N802
        return "np.pi"


def _one_minus_step(p: NumpyPrinter, e: OpNode) -> str | None:
    """1 − [x > 0] as the boolean mask [x ≤ 0] where a mask may stand (:func:`_masks_ok_in`):
    the integer 1 − bool would make float32 code float64."""
    if not (p.mask_ok and _is_one_minus_step(e)):
        return None
    return f"({p.operand(e.children[1].children[0], MUL + 1)} <= 0)"


def _is_one_minus_step(e: Basic) -> bool:
    if not (isinstance(e, OpNode) and e.op.name == "sub"):
        return False
    one, x = e.children
    return is_const(one) and one == 1 and isinstance(x, OpNode) and x.op.name == "step"


def _is_mask(e: Basic) -> bool:
    """A value NumPy may print as a boolean mask: a comparison ([x > 0], [A ≥ B]) or [x ≤ 0]."""
    return (isinstance(e, OpNode) and e.op.mask) or _is_one_minus_step(e)


def _masks_ok_in(e: OpNode) -> bool:
    """Whether ``e``'s operands may be boolean masks: in a product with a number (the result is
    that number's type) and under a sum or mean. Anywhere else a mask is a number (the step
    prints as ``np.heaviside(x, 0)``): NumPy refuses −mask and mask − mask, mask + mask is a
    logical or, and a product of two masks would be a mask again."""
    if e.op.name == "mul":
        return not all(_is_mask(c) for c in e.children)
    return e.op.name in ("sum", "mean")


def _float_constants(e: OpNode) -> OpNode:
    """An integer added to or subtracted from an array as a float (``1.0 - A``): NumPy adds a
    Python float to a float array about 150 ns sooner than an int (no integer promotion
    lookup), and either keeps the array's dtype. A negative integer exponent as a float too
    (``x ** -2.0``): NumPy refuses integers to negative integer powers, and inputs may be ints."""
    if e.op.name == "pow":
        ex = e.children[1]
        if isinstance(ex, sympy.Integer) and ex < 0:
            return e.func(e.children[0], sympy.Float(ex), *e.attrs)
        return e
    if e.op.name not in ("add", "sub") or ir.is_scalar(e):
        return e
    if not any(isinstance(c, sympy.Integer) for c in e.children):
        return e
    return e.func(*(sympy.Float(c) if isinstance(c, sympy.Integer) else c for c in e.children), *e.attrs)


#: Terms per parenthesized group when a long sum is printed (see :func:`_grouped_sum`).
SUM_GROUP = 100


def _grouped_sum(e: OpNode) -> OpNode:
    """A sum of more than :data:`SUM_GROUP` terms as a sum of parenthesized groups of
    that many: ``(t1 + ... + t100) + (t101 - t102 ...) - (...)``.

    ``a + b + c + ...`` is a left-deep tree of n levels, and Python's compiler gives up
    near 3,000 levels at import; grouped, a module line is at most about 2·√n levels
    deep once the groups are grouped again as they print. A group after a ``-`` has its
    inner signs flipped: ``x - b + c`` is ``x - (b - c)``. Shorter sums print as before.
    """
    if e.op.name not in ("add", "sub"):
        return e
    spine: list[OpNode] = []
    x: Basic = e
    while isinstance(x, OpNode) and x.op.name in ("add", "sub") and len(spine) <= SUM_GROUP:
        spine.append(x)
        x = x.children[0]
    if len(spine) <= SUM_GROUP:
        return e
    while isinstance(x, OpNode) and x.op.name in ("add", "sub"):
        spine.append(x)
        x = x.children[0]
    terms: list[tuple[bool, Basic]] = [(True, x)] + [(n.op.name == "add", n.children[1]) for n in reversed(spine)]
    groups = [terms[i : i + SUM_GROUP] for i in range(0, len(terms), SUM_GROUP)]

    def chain(group: list[tuple[bool, Basic]], flip: bool) -> Basic:
        out = group[0][1]
        for plus, t in group[1:]:
            out = ir.node("add" if plus != flip else "sub", out, t)
        return out

    out = chain(groups[0], False)
    for g in groups[1:]:
        plus = g[0][0]
        out = ir.node("add" if plus else "sub", out, chain(g, not plus))
    assert isinstance(out, OpNode)
    return out


ARITH = frozenset({"add", "sub", "mul", "div", "pow", "neg"})
#: The arithmetic whose Python operator raises (or turns complex) on Python numbers, and the NumPy
#: function with float semantics printed instead when every operand is a Python number.
IEEE_FORMS = {"div": "np.divide", "pow": "np.float_power"}
#: SymPy's names of the registry's elementwise functions, where they differ.
SYMPY_FUNCTIONS = {"Abs": "abs"}

#: Code-only spellings of particular shapes of an operation (else the registry's form).
PEEPHOLES = {"sub": _one_minus_step}


_FLOAT_MAX = sympy.Integer(int(sys.float_info.max))
_FLOAT_TINY = sympy.Float(5e-324) / 2


def _surely_nonzero(c: Basic) -> bool:
    """A constant divisor that is not 0 for any dims as the generated code computes it: a number
    that does not round to 0 as a float, a dim, a positive power of one, or a sum of dims and
    integers (exact in Python's ints) that the model proves nonzero; or a product of these. A sum
    with other numbers is not (``m − 1 − 1e−320`` is ``m - 1.0`` in floats)."""
    return all(_nonzero_factor(f) for f in sympy.Mul.make_args(c))


def _nonzero_factor(f: Basic) -> bool:
    if f.is_number:
        return bool(f.is_zero is False and abs(f) >= _FLOAT_TINY)
    if isinstance(f, sympy.Symbol):
        return True
    if isinstance(f, sympy.Pow):
        return bool(f.args[1].is_positive) and _nonzero_factor(f.args[0])
    if isinstance(f, sympy.Add):
        exact = all(n.is_Integer and abs(n) < 2**53 for n in f.atoms(sympy.Number))
        return exact and f.is_zero is False
    return False


def _short_decimal(e: sympy.Rational) -> bool:
    """p/q is a finite decimal of a few digits (q = 2^a 5^b) and prints back exactly."""
    q = e.q
    for f in (2, 5):
        while q % f == 0:
            q //= f
    return q == 1 and len(repr(float(e))) <= 12 and sympy.Rational(repr(float(e))) == e


def expr_reads(e: Basic) -> set[str]:
    """Spec names an expression reads (variables), gradients excluded."""
    return {s.name for s in e.atoms(MatrixSymbol) if not isinstance(s, GradSymbol)}


def grads_read(e: Basic) -> set[str]:
    """Variables whose gradient (∂L/∂NAME) an expression reads."""
    return {g.of for g in e.atoms(GradSymbol)}


def dims_read(e: Basic) -> set[str]:
    """Dimension names an expression needs at run time (``/ m``, broadcast shapes).

    A variable's own shape is not read: its dims come with the array.
    """
    if isinstance(e, MatrixSymbol):
        return set()
    if isinstance(e, OpNode):
        out: set[str] = set()
        attrs = e.attrs if e.op.code_attrs is None else e.op.code_attrs(e)
        for a in (*e.children, *attrs):
            out |= dims_read(a)
        return out
    return {s.name for s in e.free_symbols if isinstance(s, sympy.Symbol)}
