"""Keep derived adjoints in textbook form.

Elementwise regions of an expression (``+ - * / **`` and elementwise
functions) form a commutative algebra, so each maximal region is handed to
SymPy as a scalar expression -- matrices become commuting symbols, everything
non-elementwise an opaque atom -- normalized there (``cancel``, ``factor_terms``)
and rebuilt, keeping the smallest form. That is what turns
``-(Y/P)/m ⊙ P + P ⊙ colsum(Y)/m`` into ``(P − Y)/m`` once ``colsum(Y) = 1``
is known for one-hot labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import OpNode, is_const, shape_of
from backprop.expr.ops import REGISTRY
from backprop.expr.printing import GradSymbol
from backprop.language.domains import domain
from backprop.language.model import Domains

ARITH = frozenset({"add", "sub", "mul", "div", "pow", "neg"})
_SYMPY_FUNCS = {"exp": "exp", "log": "log", "tanh": "tanh", "Abs": "abs", "sign": "sign"}
_MAX_CANCEL_OPS = 80


class _Region:
    """Translation of one elementwise region to SymPy and back."""

    def __init__(self, domains: Mapping[str, str | None]) -> None:
        self.domains = domains
        self.leaves: dict[sympy.Symbol, Basic] = {}
        self.by_leaf: dict[Basic, sympy.Symbol] = {}

    def leaf(self, x: Basic) -> sympy.Symbol:
        if x not in self.by_leaf:
            name = x.name if isinstance(x, MatrixSymbol) else f"_atom{len(self.by_leaf)}"
            s = sympy.Symbol(name, real=True)
            self.by_leaf[x], self.leaves[s] = s, x
        return self.by_leaf[x]

    def to_sympy(self, e: Basic) -> sympy.Expr:
        if is_const(e):
            return e
        if isinstance(e, MatrixSymbol):
            return self.leaf(e)
        assert isinstance(e, OpNode)
        name = e.op.name
        if name == "broadcast":
            return self.to_sympy(e.children[0])
        if not e.op.elementwise:
            inner = simplify(e, self.domains)
            if isinstance(inner, OpNode) and inner.op.name != e.op.name:
                return self.to_sympy(inner)  # e.g. colsum(onehot Y) became 1
            return self.leaf(inner)
        if name == "pow" and ir.fine_fraction(e.children[1]):  # one opaque factor (see there)
            base = e.children[0]
            return self.leaf(ir.node("pow", simplify(base, self.domains) if isinstance(base, OpNode) else base,
                                     e.children[1]))
        if e.op.mask or name == "half_step":
            # A comparison (a tie test of max/min, a user's mask) reads its operands exactly as the
            # forward pass computes them: K ⊙ (K − 1) is not K² − K to the last bit, and a tie
            # [x ≤ min(x)] tested on a refactored x misses the very entry that is the minimum.
            return self.leaf(e)
        args = [self.to_sympy(c) for c in e.children]
        if name in ARITH:
            return e.op.exact(*args)
        if name in ("exp", "log", "tanh", "abs", "sign"):
            return e.op.exact(*args)
        return sympy.Function(name, real=True)(*args)  # real: sign(exp(f)) stays free of re(f), im(f)

    # --- back ----------------------------------------------------------------
    def from_sympy(self, s: sympy.Expr) -> Basic:
        if not (s.free_symbols & set(self.leaves)):
            return s
        if isinstance(s, sympy.Symbol):
            return self.leaves[s]
        if isinstance(s, sympy.Add):
            return self._add(s)
        if isinstance(s, sympy.Mul):
            return self._mul(s)
        if isinstance(s, sympy.Pow):
            base, ex = s.args
            if ex == sympy.Rational(1, 2):
                return ir.node("sqrt", self.from_sympy(base))
            if ex.is_number and ex < 0:
                return ir.div(sympy.Integer(1), self.from_sympy(base ** (-ex)))
            return ir.power(self.from_sympy(base), self.from_sympy(ex))
        fname = type(s).__name__
        fname = _SYMPY_FUNCS.get(fname, fname)
        if fname in REGISTRY:
            return ir.node(fname, *(self.from_sympy(a) for a in s.args))
        raise ValueError(f"cannot rebuild {s!r}")  # pragma: no cover - defensive

    def _add(self, s: sympy.Add) -> Basic:
        terms = list(sympy.Add.make_args(s))
        terms.sort(key=lambda t: (t.could_extract_minus_sign(), not bool(t.free_symbols & set(self.leaves))))
        out: Basic | None = None
        for t in terms:
            neg = t.could_extract_minus_sign()
            piece = self.from_sympy(-t if neg else t)
            if out is None:
                out = ir.neg(piece) if neg else piece
            else:
                out = ir.sub(out, piece) if neg else ir.add(out, piece)
        assert out is not None
        return out

    def _mul(self, s: sympy.Mul) -> Basic:
        if s.could_extract_minus_sign():
            return ir.neg(self.from_sympy(-s))
        const, num, den = sympy.Integer(1), [], []
        leafset = set(self.leaves)
        for f in sympy.Mul.make_args(s):
            if not (f.free_symbols & leafset):
                const *= f
            elif isinstance(f, sympy.Pow) and f.exp.is_number and f.exp < 0:
                den.append(f.base ** (-f.exp))
            else:
                num.append(f)
        # δ first, then scalars, then whole matrix products: (w₂ᵀ δ) ⊙ A ⊙ (1 − A), as notes write it
        num.sort(key=lambda f: (not self._is_grad(f), not self._is_scalar(f), not self._is_atom(f)))
        body: Basic | None = None
        for f in num:
            body = self.from_sympy(f) if body is None else ir.mul(body, self.from_sympy(f))
        p, q = sympy.fraction(sympy.together(const))
        if not den and isinstance(body, OpNode) and body.op.name == "mul" and not (p == 1 and q != 1):
            out: Basic = const
            for f in num:  # a left-leaning chain reads 2 λ W, not 2 (λ W)
                out = ir.mul(out, self.from_sympy(f))
            return out
        if den:
            d: Basic = q  # a constant denominator joins the others: y/(m p), not y/p/m
            for f in den:
                d = ir.mul(d, self.from_sympy(f))
            body = ir.div(p if body is None else ir.mul(p, body), d)
            return body
        assert body is not None
        if p == 1 and q != 1:
            return ir.div(body, q)
        return ir.mul(const, body)

    def _is_scalar(self, f: sympy.Expr) -> bool:
        leaf = self.leaves.get(f)
        return leaf is not None and ir.is_scalar(leaf)

    def _is_atom(self, f: sympy.Expr) -> bool:
        """A non-elementwise subexpression (a matrix product) standing in as one factor."""
        return isinstance(self.leaves.get(f), OpNode)

    def _is_grad(self, f: sympy.Expr) -> bool:
        return isinstance(self.leaves.get(f), GradSymbol)


def _cost(e: Basic) -> tuple[int, int, int, int]:
    """Smallest first; among equals, the factored one (m (1 − p), not m p − m), then the one
    whose differences read as notes write them (1 − p, not p − 1)."""
    return (ir.count_nodes(e), _repeated_leaves(e), _trailing_constants(e), len(str(e)))


def _trailing_constants(e: Basic) -> int:
    """How many differences end in a constant (p − 1 rather than 1 − p)."""
    if not isinstance(e, OpNode):
        return 0
    own = int(e.op.name == "sub" and is_const(e.children[1]) and not is_const(e.children[0]))
    return own + sum(_trailing_constants(c) for c in e.children)


def _oriented(s: sympy.Expr) -> sympy.Expr:
    """``s`` with each factor x − c (c a positive constant) written c − x: (y − p)/(p (p − 1))
    becomes (p − y)/(p (1 − p)). An odd number of sign flips is undone on a factor with no
    constant (y − p to p − y), else on the coefficient."""
    if not isinstance(s, sympy.Mul):
        return s
    flips, out, free = 0, [], []
    for f in s.args:
        base, ex = f.as_base_exp()
        if isinstance(base, sympy.Add) and ex.is_Integer:
            const = base.as_coeff_Add()[0]
            if const.is_negative:
                base, flips = -base, flips + int(ex) % 2
            elif const == 0 and int(ex) % 2:
                free.append(len(out))
        out.append((base, ex))
    if flips % 2:
        if free:
            base, ex = out[free[0]]
            out[free[0]] = (-base, ex)
        else:
            out.append((sympy.Integer(-1), sympy.Integer(1)))
    return sympy.Mul(*(b**e for b, e in out), evaluate=True)


def _repeated_leaves(e: Basic) -> int:
    seen: list[Basic] = []

    def walk(x: Basic) -> None:
        if isinstance(x, OpNode):
            for c in x.children:
                walk(c)
        elif not isinstance(x, sympy.Number):  # 1 − y and 1 − p share no factor
            seen.append(x)

    walk(e)
    return len(seen) - len(set(seen))


def _onehot_colsum(e: OpNode, domains: Mapping[str, str | None]) -> bool:
    """A one-hot value summed over its classes (the rows of Y[c, m], or the class axis a
    model's :class:`~backprop.language.model.Domains` gives; ``onehot(y, c)`` along its axis): 1
    for every example."""
    x = e.children[0]
    if e.op.name != "sum":
        return False
    if isinstance(x, OpNode) and x.op.name == "onehot":
        labels = x.children[0]
        if isinstance(labels, MatrixSymbol) and not _knows(domains, labels.name):
            return False
        axis = int(x.args[-1][0])
    elif isinstance(x, MatrixSymbol) and domains.get(x.name) == "onehot" and _knows(domains, x.name):
        axis = domains.class_axes.get(x.name, 0) if isinstance(domains, Domains) else 0
    else:
        return False
    return tuple(int(a) for a in e.args[-1]) == (axis,)


def _reduction(e: OpNode, domains: Mapping[str, str | None]) -> Basic:
    """sum/mean: pull constant factors out; a one-hot column sums to 1."""
    inner = simplify(e.children[0], domains)
    rebuilt = ir.node(e.op.name, inner, *e.attrs)
    if _onehot_colsum(rebuilt, domains):
        return ir.broadcast_to(sympy.Integer(1), rebuilt.shape)
    region = _Region(domains)
    s = region.to_sympy(inner)
    coeff, rest = s.as_independent(*region.leaves, as_Add=False)
    if coeff == 0:  # Σ(0 · x) = 0; kept as a product, it would be simplified again forever
        return ir.broadcast_to(sympy.Integer(0), rebuilt.shape)
    if coeff != 1 and rest != 1:
        # SymPy's scalar view drops broadcasts: give the factor back the operand's shape,
        # or Σ(2 · b𝟏[n×m]) would become 2 Σ(b), losing the m copies.
        reduced = ir.node(e.op.name, ir.broadcast_to(region.from_sympy(rest), inner.shape), *e.attrs)
        if _onehot_colsum(reduced, domains):
            return ir.broadcast_to(coeff, reduced.shape)
        return ir.mul(coeff, reduced) if coeff != -1 else ir.neg(reduced)
    return rebuilt


def _is_eye(x: Basic) -> bool:
    return isinstance(x, OpNode) and x.op.name == "eye"


def _without_identity(e: Basic) -> Basic:
    """A product with the identity is its other factor, I B = B and A I = A (the trace's adjoint is
    ∂L/∂t I, so ∂ tr(A B)/∂A reads Bᵀ, not I Bᵀ); a solve against it is the inverse, solve(A, I) = A⁻¹."""
    if not isinstance(e, OpNode) or e.op.name not in ("matmul", "solve"):
        return e
    a, b = e.children
    if e.op.name == "matmul":
        return b if _is_eye(a) else (a if _is_eye(b) else e)
    if not _is_eye(b):
        return e
    if isinstance(a, OpNode) and a.op.name == "transpose":
        return ir.transpose(ir.node("inv", a.children[0]))
    return ir.node("inv", a)


def _knows(domains: Mapping[str, str | None], name: str) -> bool:
    """Whether simplification may use what ``name``'s domain says (see :meth:`Domains.knows`)."""
    return domains.knows(name) if isinstance(domains, Domains) else True


def _symmetric(x: Basic, domains: Mapping[str, str | None]) -> bool:
    """An input declared symmetric (``spd``), or the inverse of one."""
    if isinstance(x, OpNode) and x.op.name == "inv":
        return _symmetric(x.children[0], domains)
    return isinstance(x, MatrixSymbol) and domain(domains.get(x.name)).symmetric and _knows(domains, x.name)


def _symmetric_transpose(e: Basic, domains: Mapping[str, str | None]) -> Basic:
    """Sᵀ = S and S⁻ᵀ = S⁻¹ for a symmetric input S: the notes then read as a textbook's for a covariance."""
    if isinstance(e, OpNode) and e.op.name == "transpose" and _symmetric(e.children[0], domains):
        return e.children[0]
    return e


def simplify(e: Basic, domains: Mapping[str, str | None] | None = None, *, facts: bool = True,
             unused: frozenset[str] = frozenset()) -> Basic:
    """An equal expression in the smallest textbook form found. ``facts=False``: without what the
    inputs' domains say (a one-hot column sums to 1, Sᵀ = S), as algebra alone leaves it;
    ``unused``: without what these names' domains say."""
    if not isinstance(e, OpNode):
        return e
    # Only declared domains matter (a missing name reads as None): keying on them alone keeps
    # the key, and the sort, small in a deep network with hundreds of undomained names.
    axes = domains.class_axes if isinstance(domains, Domains) else {}
    if isinstance(domains, Domains):
        facts, unused = facts and domains.facts, unused | domains.unused
    return _simplify(e, tuple(sorted((k, v, axes.get(k, 0)) for k, v in (domains or {}).items() if v is not None)),
                     facts, unused)


@lru_cache(maxsize=1 << 14)
def _simplify(e: OpNode, domain_items: tuple[tuple[str, str | None, int], ...], facts: bool = True,
              unused: frozenset[str] = frozenset()) -> Basic:
    """Memoized: expanding a deep network's gradients meets each δ's subtree again
    at every layer, so each is simplified once, not once per layer."""
    domains = Domains({k: v for k, v, _ in domain_items}, {k: axis for k, v, axis in domain_items if v == "onehot"},
                      facts, unused)
    shape = shape_of(e)
    if e.op.name in ("sum", "mean"):
        out = _reduction(e, domains)
    elif not e.op.elementwise and e.op.name != "broadcast":
        out = _without_identity(e.func(*(simplify(c, domains) for c in e.children), *e.attrs))
        out = _symmetric_transpose(out, domains)
    else:
        out = _simplify_region(e, domains)
    if shape_of(out) != shape:
        out = ir.broadcast_to(out, shape)
    return out


#: Numbers longer than this (in bits) keep cancel and factor_terms away from a region: they
#: compute contents and gcds of such numbers raised to symbolic powers, for minutes
#: ((1e-320 ** s / (m + 1)) ** (2 - w) ** 9). 256 bits is 1e77; float64 holds 53.
_MAX_NUMBER_BITS = 256


def _long_numbers(s: sympy.Expr) -> bool:
    return any(max(abs(n.p), n.q).bit_length() > _MAX_NUMBER_BITS
               for n in s.atoms(sympy.Rational))


def _simplify_region(e: Basic, domains: Mapping[str, str | None]) -> Basic:
    region = _Region(domains)
    s = region.to_sympy(e)
    candidates = [s]
    if sympy.count_ops(s) <= _MAX_CANCEL_OPS and not _long_numbers(s):
        cancelled = sympy.cancel(s)
        candidates += [sympy.factor_terms(s), cancelled, sympy.factor_terms(cancelled)]
        candidates += [o for o in map(_oriented, candidates) if o not in candidates]
    built = [region.from_sympy(c) for c in candidates]
    return built[0] if len(built) == 1 else min(built, key=_cost)
