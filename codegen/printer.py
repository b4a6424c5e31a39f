"""Model expressions as NumPy source, from the operation registry.

:class:`NumpyPrinter` subclasses SymPy's ``StrPrinter`` the way the LaTeX and
text printers of :mod:`derive.printing` do: ``_print_OpNode`` hands each
operation to the ``numpy`` form of its registry row, variables print as the
Python names :class:`derive.naming.CodeNames` gave them, gradients (∂L/∂W1) as
their gradient variables (``dW1``), and constants -- numbers and dimensions --
as Python arithmetic on the dimension variables. Anything else raises
:class:`~derive.errors.UnsupportedError`.
"""

from __future__ import annotations

import sympy
from sympy import Basic, MatrixSymbol
from sympy.printing.str import StrPrinter

from derive.errors import UnsupportedError
from derive.ir import OpNode
from derive.naming import CodeNames
from derive.printing import GradSymbol, _Operands

from .cse import TempSymbol


class NumpyPrinter(_Operands, StrPrinter):
    """NumPy code for model expressions; one printer per generated module."""

    def __init__(self, names: CodeNames, dims: set[str]) -> None:
        super().__init__({"order": "none"})
        self.names = names
        self.dims = dims

    # --- operations and variables -------------------------------------------
    def _print_OpNode(self, e: OpNode) -> str:  # noqa: N802 - SymPy dispatch name
        return e.op.numpy(self, e)

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
        base, ex = e.args
        if ex == sympy.Rational(1, 2):
            return f"np.sqrt({self.doprint(base)})"
        if ex == -1:
            return f"1 / {self.parenthesize(base, 50)}"
        return f"{self.parenthesize(base, 60)} ** {self.parenthesize(ex, 60)}"

    def _print_Rational(self, e: sympy.Rational) -> str:  # noqa: N802
        return f"{e.p} / {e.q}" if e.q != 1 else str(e.p)

    def _print_Mul(self, e: sympy.Mul) -> str:  # noqa: N802
        """Constant products as Python reads them, spaced like the rest: 2 / m, 3 * m / 2."""
        if e.could_extract_minus_sign():
            return "-" + self.parenthesize(-e, 50, strict=True)
        num, den = sympy.fraction(e)
        top = " * ".join(self.parenthesize(f, 50, strict=True) for f in sympy.Mul.make_args(num))
        if den == 1:
            return top
        return f"{top} / {self.parenthesize(den, 51)}"

    def _print_Exp1(self, e: Basic) -> str:  # noqa: N802
        return "np.e"

    def _print_Pi(self, e: Basic) -> str:  # noqa: N802
        return "np.pi"


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
        for a in e.args:
            out |= dims_read(a)
        return out
    return {s.name for s in e.free_symbols if isinstance(s, sympy.Symbol)}
