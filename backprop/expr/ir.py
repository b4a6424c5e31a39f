"""The symbolic model's nodes: SymPy objects with a shape.

Variables are ``sympy.MatrixSymbol`` objects (a scalar is 1 x 1), constants are
plain SymPy expressions of numbers and dimension symbols, and every operation is
an ``OpNode`` -- a ``sympy.Basic`` subclass generated from the operation
registry in :mod:`backprop.expr.ops`. Building a node checks its shape rule, so a model
that was built is a model whose shapes agree.

This module is the bottom of the stage and imports nothing above it: the registry hands it
the node class for each operation's name (:data:`NODE_CLASSES`), and the package
(:mod:`backprop.expr`) hands it the printer a node shows itself with (:func:`show_nodes_with`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

import sympy
from sympy import Basic, Expr, MatrixSymbol
from sympy.core.symbol import Str
from sympy.core.sympify import _sympify
from sympy.matrices.expressions.matexpr import MatrixExpr

from backprop.support.errors import ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from backprop.expr.ops_row import Op

#: A value's dimensions, one per axis: two for a matrix, any number for a tensor.
Shape = tuple[Expr, ...]
ONE = sympy.Integer(1)
#: A scalar is a 1×1 matrix, whatever it is combined with: it broadcasts to any rank.
SCALAR: Shape = (ONE, ONE)

#: name -> node class, filled by :mod:`backprop.expr.ops` as it registers operations.
NODE_CLASSES: dict[str, type[OpNode]] = {}

#: How a node reads in ``str()`` and ``repr()``: SymPy's tree form until :mod:`backprop.expr`
#: installs the Unicode text printer, which sits above the nodes.
_show: Callable[[Basic], str] = sympy.srepr


def show_nodes_with(printer: Callable[[Basic], str]) -> None:
    """Make ``printer`` the form every operation node shows in ``str()`` and ``repr()``."""
    global _show
    _show = printer


class OpNode(Basic):
    """One application of a registered operation.

    ``args`` holds the operands first, then the operation's attributes (SymPy
    objects, e.g. the reduced axes) so that equality and hashing cover both.
    """

    op: ClassVar[Op]

    def __new__(cls, *args: Basic) -> OpNode:
        obj = Basic.__new__(cls, *args)
        obj._operands = len(args) - len(cls.op.attrs) if cls.op.variadic else cls.op.arity
        obj._shape = cls.op.shape([shape_of(c) for c in obj.args[: obj._operands]], obj)
        return obj

    @property
    def children(self) -> tuple[Basic, ...]:
        return self.args[: self._operands]

    @property
    def attrs(self) -> tuple[Basic, ...]:
        return self.args[self._operands :]

    @property
    def shape(self) -> Shape:
        return self._shape

    def __repr__(self) -> str:
        return _show(self)

    __str__ = __repr__


class TensorSymbol(MatrixSymbol):
    """A named value of any rank. Its args are ``MatrixSymbol``'s, ``(Str(name), *dims)``, with
    one dim per axis: so it hashes, compares and ``xreplace``s as a ``MatrixSymbol`` does, is found
    by ``atoms(MatrixSymbol)``, prints through ``_print_MatrixSymbol``, and a rank-2 one has exactly
    the args of the matrix of the same name and shape."""

    def __new__(cls, name: str | Str, *shape: Basic) -> TensorSymbol:
        return Basic.__new__(cls, Str(name) if isinstance(name, str) else name, *(_sympify(d) for d in shape))

    @property
    def shape(self) -> Shape:  # type: ignore[override]
        return tuple(self.args[1:])


def symbol(name: str, shape: Shape) -> MatrixSymbol:
    """The leaf for a value named ``name`` of ``shape``: a ``MatrixSymbol`` for a matrix (as every
    matrix model has always been built), a :class:`TensorSymbol` for any other rank."""
    return MatrixSymbol(name, *shape) if len(shape) == 2 else TensorSymbol(name, *shape)


def is_const(x: Basic) -> bool:
    """A scalar built from numbers and dimensions only."""
    return isinstance(x, Expr) and not isinstance(x, MatrixExpr)


def is_var(x: Basic) -> bool:
    return isinstance(x, MatrixSymbol)


def shape_of(x: Basic) -> Shape:
    if isinstance(x, OpNode):
        return x.shape
    if isinstance(x, MatrixSymbol):
        return tuple(sympy.sympify(d) for d in x.shape)
    if is_const(x):
        return SCALAR
    raise ShapeError(f"not a model expression: {x!r}")


def concrete(d: Basic, sizes: Mapping[Basic, int]) -> int:
    """A dim (or an expression of dims, such as n + k) at the sizes given for its symbols."""
    return int(sympy.sympify(d).xreplace(dict(sizes)))


def is_scalar_shape(s: Shape) -> bool:
    return len(s) == 2 and s[0] == 1 and s[1] == 1


def is_scalar(x: Basic) -> bool:
    return is_scalar_shape(shape_of(x))


def signed_terms(e: Basic) -> list[tuple[int, Basic]]:
    """The signed terms of a sum, in order: a + b − c -> [(1, a), (1, b), (−1, c)], through negations.
    A loop, not recursion: a sum of thousands of terms is a valid loss."""
    out: list[tuple[int, Basic]] = []
    todo: list[tuple[int, Basic]] = [(1, e)]
    while todo:
        sign, x = todo.pop()
        name = x.op.name if isinstance(x, OpNode) else None
        if name in ("add", "sub"):
            a, b = x.children
            todo += [(sign if name == "add" else -sign, b), (sign, a)]
        elif name == "neg":
            todo.append((-sign, x.children[0]))
        else:
            out.append((sign, x))
    return out


def fmt_dim(d: Expr) -> str:
    """A dim as shapes show it: ``n``, ``3``, an expression of dims in parentheses, ``(T·d)``, ``(n + k)``."""
    text = str(d)
    return text if d.is_Atom else "(" + text.replace("*", "·") + ")"


def fmt_shape(s: Shape) -> str:
    return "×".join(fmt_dim(d) for d in s)


def rank_mismatch(a: Shape, b: Shape, what: str) -> ShapeError:
    """Operands of different rank never broadcast: NumPy would silently prepend axes, which is
    how a column of biases becomes a row. The message says how to line the axes up."""
    lo, hi = (a, b) if len(a) < len(b) else (b, a)
    return ShapeError(
        f"cannot combine {fmt_shape(a)} (rank {len(a)}) and {fmt_shape(b)} (rank {len(b)}) in {what}: "
        f"operands of different rank do not broadcast; give the {fmt_shape(lo)} value {len(hi)} axes "
        f"with reshape (e.g. reshape(E, [{', '.join(fmt_dim(d) for d in lo)}{', 1' * (len(hi) - len(lo))}])), "
        "or reduce with keepdims-style axes so the ranks agree"
    )


def broadcast_shapes(a: Shape, b: Shape, what: str = "elementwise operation") -> Shape:
    """NumPy's rule between operands of equal rank: along each axis the lengths are equal, or one
    of them is 1. A scalar goes with any shape; operands of different rank are an error."""
    if is_scalar_shape(b):
        return a
    if is_scalar_shape(a):
        return b
    if len(a) != len(b):
        raise rank_mismatch(a, b, what)
    out = []
    for axis, (x, y) in enumerate(zip(a, b)):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif len(a) == 2:
            kind = "rows" if axis == 0 else "columns"
            raise ShapeError(
                f"cannot broadcast {fmt_shape(a)} and {fmt_shape(b)} in {what}: "
                f"{kind} {fmt_dim(x)} and {fmt_dim(y)} differ (only a scalar, an r×1 column "
                "or a 1×c row broadcasts)"
            )
        else:
            raise ShapeError(
                f"cannot broadcast {fmt_shape(a)} and {fmt_shape(b)} in {what}: axis {axis} has "
                f"{fmt_dim(x)} and {fmt_dim(y)} (only a scalar or a length-1 axis broadcasts)"
            )
    return tuple(out)


def stretched(small: Shape, big: Shape) -> bool:
    """Whether a value of shape ``small`` is broadcast along some axis to make ``big``."""
    if is_scalar_shape(small):
        return not is_scalar_shape(big)
    return len(small) == len(big) and any(s == 1 and b != 1 for s, b in zip(small, big))


def reduced_shape(s: Shape, axes: tuple[int, ...]) -> Shape:
    """The shape left by summing ``s`` along ``axes``: a scalar when every axis is reduced, else
    ``s`` with a 1 on each reduced axis (NumPy's ``keepdims``), so the result still broadcasts."""
    if set(axes) >= set(range(len(s))):
        return SCALAR
    return tuple(ONE if ax in axes else d for ax, d in enumerate(s))


def count_nodes(x: Basic) -> int:
    """Size of an expression, in operations and leaves (for swell checks and cost)."""
    if isinstance(x, OpNode):
        return 1 + sum(count_nodes(c) for c in x.children)
    return 1


def variables(x: Basic) -> set[MatrixSymbol]:
    """The variables an expression reads."""
    return {s for s in x.atoms(MatrixSymbol)}


def differentiable_reads(x: Basic) -> set[MatrixSymbol]:
    """The variables a gradient can reach in ``x``: read through operands that pass a gradient,
    not those an operation cuts (a comparison's, ``stop_gradient``'s, ``where``'s condition)."""
    out: set[MatrixSymbol] = set()
    seen: set[Basic] = set()
    todo = [x]
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.add(e)
        if isinstance(e, MatrixSymbol):
            out.add(e)
        elif isinstance(e, OpNode):
            todo.extend(c for i, c in enumerate(e.children) if e.op.operand_vjp(i) is not None)
    return out


# ---------------------------------------------------------------------------
# Smart constructors: fold constants and drop identities so derived adjoints
# stay small; everything else goes straight to the registered node class.
# ---------------------------------------------------------------------------


def node(name: str, *args: Basic) -> Basic:
    return NODE_CLASSES[name](*args)


def _zero(x: Basic) -> bool:
    return is_const(x) and x == 0


def _one(x: Basic) -> bool:
    return is_const(x) and x == 1


def add(a: Basic, b: Basic) -> Basic:
    if is_const(a) and is_const(b):
        return a + b
    if _zero(a):
        return b
    if _zero(b):
        return a
    if isinstance(b, OpNode) and b.op.name == "neg":
        return sub(a, b.children[0])
    return node("add", a, b)


def sub(a: Basic, b: Basic) -> Basic:
    if is_const(a) and is_const(b):
        return a - b
    if _zero(b):
        return a
    if _zero(a):
        return neg(b)
    return node("sub", a, b)


def neg(a: Basic) -> Basic:
    if is_const(a):
        return -a
    if isinstance(a, OpNode) and a.op.name == "neg":
        return a.children[0]
    return node("neg", a)


def mul(a: Basic, b: Basic) -> Basic:
    if is_const(a) and is_const(b):
        return a * b
    if _one(a):
        return b
    if _one(b):
        return a
    if is_const(a) and a == -1:
        return neg(b)
    if is_const(b) and b == -1:
        return neg(a)
    if is_const(b) and not is_const(a):
        a, b = b, a  # constants lead: 2 X, not X 2
    return node("mul", a, b)


def div(a: Basic, b: Basic) -> Basic:
    if is_const(a) and is_const(b):
        return a / b
    if _one(b):
        return a
    return node("div", a, b)


#: The largest number in an exponent that constant folding will take: past it, SymPy would compute
#: numbers of millions of digits (``3**10**8``; ``0.5**(m/1e-300)`` as it splits off ``0.5**(1e300 m)``).
MAX_FOLDED_EXPONENT = 1024


def written_numbers(b: Basic) -> Iterator[sympy.Number]:
    """The numbers written in ``b``: a declared shape (``x[2000, m]``) is not written in it."""
    todo = [b]
    while todo:
        e = todo.pop()
        if isinstance(e, sympy.Number):
            yield e
        elif not isinstance(e, MatrixSymbol):
            todo.extend(e.args)


def written_size(b: Basic) -> Basic:
    """The largest |number| written in ``b``."""
    return max((abs(n) for n in written_numbers(b)), default=sympy.Integer(0))


def foldable_exponent(b: Basic) -> bool:
    """Every number in the exponent ``b`` is small enough for SymPy to raise numbers to."""
    return written_size(b) <= MAX_FOLDED_EXPONENT


#: The highest root a power of numbers keeps exactly (2**0.5, 10**(1/3)); past it SymPy's sign
#: decisions build minimal polynomials of that degree (2**1e-320 is a root of degree 10^320).
MAX_ROOT_DEGREE = 24
#: An exact power of numbers with more bits than this is folded to its float instead:
#: (1 + 1e-320)**1024 is a fraction of two 327,000-digit integers, and ≈ 1.
MAX_EXACT_BITS = 4096


def _power_as_float(a: Basic, b: Basic) -> Basic | None:
    """A power of numbers SymPy should not compute exactly -- a positive number to a fraction of high
    degree (2**1e-320, 10**0.001), or one whose exact value runs to thousands of digits -- as the
    float it is; None to fold exactly (also where that float would be inf or 0: the exact power is
    then refused by the parser)."""
    if not (a.is_number and b.is_Rational and a.is_real and not a.is_zero):
        return None
    root = not b.is_Integer and b.q > MAX_ROOT_DEGREE
    long = a.is_Rational and abs(b.p) * max(abs(a.p).bit_length(), a.q.bit_length()) > MAX_EXACT_BITS
    if not ((root and a.is_positive) or (long and (b.is_Integer or a.is_positive))):
        return None
    value = sympy.Pow(a, b, evaluate=False).evalf(30)
    number = float(value) if value.is_finite else float("inf")
    return sympy.Rational(repr(number)) if 0 < abs(number) < float("inf") else None


def fine_fraction(p: Basic) -> bool:
    """A constant exponent holding a fraction of long terms (x ** 1.001 = x^(1001/1000)). SymPy's
    algebra takes x^(1/1000) as its unit: cancel builds polynomials of degree 1001 in it (10^320 for
    x ** 1e-320), and (2m)^(1/2 − 1e−320) runs out of memory. Such a power stays one opaque factor."""
    return is_const(p) and any(
        isinstance(n, sympy.Rational) and not n.is_Integer and max(abs(n.p), n.q) > MAX_ROOT_DEGREE
        for n in written_numbers(p))


def power(a: Basic, b: Basic) -> Basic:
    if is_const(a) and is_const(b) and foldable_exponent(b) and (a.is_number or not fine_fraction(b)):
        approximate = _power_as_float(a, b)
        return a**b if approximate is None else approximate
    if _one(b):
        return a
    return node("pow", a, b)


def matmul(a: Basic, b: Basic) -> Basic:
    return node("matmul", a, b)


def transpose(a: Basic) -> Basic:
    if isinstance(a, OpNode) and a.op.name == "transpose":
        return a.children[0]
    if is_scalar(a):
        return a
    return node("transpose", a)


Axis = int | tuple[int, ...] | None


def axes_tuple(axis: Axis, rank: int = 2) -> tuple[int, ...]:
    """An ``axis=`` argument as the sorted axes it names: None -> every axis."""
    if axis is None:
        return tuple(range(rank))
    return tuple(sorted({axis} if isinstance(axis, int) else set(axis)))


def axes_attr(axis: Axis, rank: int = 2) -> sympy.Tuple:
    """Reduced axes as a node attribute: None -> every axis."""
    return sympy.Tuple(*axes_tuple(axis, rank))


def total(a: Basic, axis: Axis = None) -> Basic:
    """sum(a, axis): reducing axes of length 1 is the identity; a sum over broadcast
    copies is a multiple (rowsum of c𝟏[k×m] is m c)."""
    s = shape_of(a)
    axes = axes_tuple(axis, len(s))
    want = reduced_shape(s, axes)
    if all(s[ax] == 1 for ax in axes) and want == s:
        return a
    if isinstance(a, OpNode) and a.op.name == "broadcast":
        x = a.children[0]
        xs = shape_of(x)
        if is_scalar_shape(xs) and not is_scalar_shape(s):
            return broadcast_to(mul(sympy.Mul(*(s[ax] for ax in axes)), x), want)
        copies = [s[ax] for ax in axes if xs[ax] == 1]
        return broadcast_to(mul(sympy.Mul(*copies), total(x, axes)), want)
    return node("sum", a, axes_attr(axes))


def broadcast_to(a: Basic, shape: Shape) -> Basic:
    if shape_of(a) == shape:
        return a
    return node("broadcast", a, sympy.Tuple(*shape))


def unbroadcast(g: Basic, shape: Shape) -> Basic:
    """Sum ``g`` over the axes along which a value of ``shape`` was broadcast."""
    gs = shape_of(g)
    if gs == shape:
        return g
    if is_scalar_shape(shape):
        g = total(g)
    elif len(gs) == len(shape):
        summed = tuple(ax for ax in range(len(shape)) if shape[ax] == 1 and gs[ax] != 1)
        if summed:
            g = total(g, summed)
    if shape_of(g) != shape:
        g = broadcast_to(g, shape)
    return g
