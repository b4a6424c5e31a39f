"""Check hand-derived gradients ("claims") and say where a wrong one goes wrong.

A claim reads ``dNAME = EXPR``: ∂L/∂NAME for a param or an intermediate, in
the spec language, with ``dOTHER`` standing for the derived gradient of
another variable (so recursive forms like ``dZ = dA * A * (1 - A)`` work as
well as closed ones). Claims are parsed in :mod:`backprop.verification.claims` by the spec
parser's own :class:`~backprop.language.expression.ExprBuilder` -- never evaluated as Python.

The check is numerical first: at several sets of sizes (distinct primes, so a
stray factor m or a swapped pair of dimensions shows) and random points drawn
from the inputs' domains, the claim is evaluated with every ``dOTHER`` bound to
the true gradient and compared with the derivation's own ∂L/∂NAME. A claim that
passes is then checked exactly with SymPy at small sizes when that is cheap
(symbolic entries, so the identity is proved for every value at those sizes).

A wrong claim gets a one-line diagnosis: wrong shape (and whether it is the
transpose, or needs a sum over the examples), a constant or size-dependent
factor, a sign, missing paths, or the earliest backward step at which the claim
stops matching -- found by replacing parts of the claim with true gradients
until it holds, then describing what the offending part should have been.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.derivation import Derivation, Step
from backprop.engine.pipeline import get_derivation
from backprop.engine.simplify import simplify
from backprop.expr import ir
from backprop.expr.evaluate import evaluate, evaluate_exact
from backprop.expr.ir import OpNode, fmt_shape, shape_of
from backprop.expr.printing import GradSymbol, text
from backprop.language.model import Model
from backprop.support.deepstack import deep_stack
from backprop.support.errors import SpecError
from backprop.support.escape import json_text, markdown_code
from backprop.support.naming import grad_name
from backprop.verification.claims import Claim, ClaimParser, ClaimSource, claim_sources

#: Relative error below which two values count as equal (float64, small nets).
TOL = 1e-7
#: Operations whose exact forms are piecewise: checked exactly at a rational point.
PIECEWISE = frozenset({"relu", "leaky_relu", "step", "leaky_step", "abs", "sign"})
#: Sizes for the numerical check: distinct primes, so factors of one dimension cannot pose as another's.
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)
#: The exact check is skipped beyond these (deterministic budgets, not timeouts).
EXACT_MAX_FIXED_DIM = 4
EXACT_MAX_ENTRIES = 48  # symbolic entries
EXACT_MAX_RATIONAL_ENTRIES = 200  # entries at a rational point
EXACT_MAX_OPS = 20000
_HINT_MAX = 40
_MAX_PARTS = 120  # sub-expressions tried when locating a mistake (bounds the work on huge claims)
_UNARY_ACTIVATIONS = frozenset({"sigmoid", "tanh", "relu", "softplus", "exp", "log", "sqrt", "abs"})


# ===========================================================================
# Results
# ===========================================================================


@dataclass(frozen=True)
class ClaimResult:
    """The verdict on one claim, why, and how it was checked."""

    name: str
    claim_text: str
    verdict: bool
    diagnosis: str | None
    error: float  # largest relative error over the size sets (inf: wrong shape)
    exact_checked: bool
    mistake: str | None = None  # kind of mistake: shape, transpose, sum, factor, sign, zero, paths, step, value
    exact_note: str = ""
    file: str = "<claim 1>"
    line: int = 1

    @property
    def correct(self) -> bool:
        return self.verdict

    def line_text(self) -> str:
        """``✓ dW1 = ...  correct`` or ``✗ dW1 = ...  wrong: DIAGNOSIS``."""
        if self.verdict:
            return f"✓ {self.claim_text}  correct"
        return f"✗ {self.claim_text}  wrong: {self.diagnosis}"

    def __str__(self) -> str:
        return self.line_text()

    def _repr_markdown_(self) -> str:
        mark = "✓ correct" if self.verdict else f"✗ wrong: {self.diagnosis}"
        return f"{markdown_code(self.claim_text)} {mark}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "claim": self.claim_text,
            "correct": self.verdict,
            "verdict": "correct" if self.verdict else "wrong",
            "mistake": self.mistake,
            "diagnosis": self.diagnosis,
            "error": float(f"{self.error:.3g}") if math.isfinite(self.error) else None,  # stable across BLAS builds
            "exact_checked": self.exact_checked,
            "exact_note": self.exact_note,
            "source": f"{self.file}:{self.line}",
        }


@dataclass
class VerifyReport:
    """Every claim's result, printable as text, JSON, Markdown or an HTML table."""

    model: str
    results: list[ClaimResult]
    sizes: list[dict[str, int]] = field(default_factory=list)
    exact_sizes: dict[str, int] | None = None

    @property
    def all_correct(self) -> bool:
        return all(r.verdict for r in self.results)

    def __iter__(self) -> Iterator[ClaimResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> ClaimResult:
        return self.results[i]

    def summary(self) -> str:
        good = sum(r.verdict for r in self.results)
        exact = sum(r.exact_checked for r in self.results)
        how = f"numerically at {len(self.sizes)} sets of sizes"
        if exact and self.exact_sizes is not None:
            at = ", ".join(f"{k}={v}" for k, v in self.exact_sizes.items()) or "its fixed sizes"
            how += f"; exactly at {at} for {exact} of them"
        return f"{good} of {len(self.results)} claim{'s' * (len(self.results) != 1)} correct ({how})"

    def text(self) -> str:
        return "\n".join([r.line_text() for r in self.results] + [self.summary()]) + "\n"

    __str__ = text

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "all_correct": self.all_correct,
            "claims": [r.to_dict() for r in self.results],
            "sizes": self.sizes,
            "exact_sizes": self.exact_sizes,
        }

    def to_json(self) -> str:
        return json_text(self.to_dict()) + "\n"

    def _repr_markdown_(self) -> str:
        # Left-aligned like the text report (a centred ✓ drifts from its claim in wide tables); headed "verdict"
        # as in the JSON.
        rows = ["| claim | verdict | diagnosis |", "|:---|:---|:---|"]
        for r in self.results:
            code = markdown_code(r.claim_text).replace("|", "\\|")  # a table cell: even a code span's | splits it
            diag = "correct" if r.verdict else (r.diagnosis or "").replace("|", "\\|")
            rows.append(f"| {code} | {'✓' if r.verdict else '✗'} | {diag} |")
        return "\n".join(rows) + f"\n\n{self.summary()}\n"

    def _repr_html_(self) -> str:
        # Jupyter's stylesheet right-aligns table cells: each cell says left itself.
        left = ' style="text-align:left"'
        rows = []
        for r in self.results:
            mark = '<span style="color:#1a7f37">✓</span>' if r.verdict else '<span style="color:#cf222e">✗</span>'
            diag = "correct" if r.verdict else html.escape(r.diagnosis or "")
            rows.append(f"<tr><td{left}><code>{html.escape(r.claim_text)}</code></td><td{left}>{mark}</td>"
                        f"<td{left}>{diag}</td></tr>")
        head = "<tr>" + "".join(f"<th{left}>{h}</th>" for h in ("claim", "verdict", "diagnosis")) + "</tr>"
        return (f"<table>{head}{''.join(rows)}</table>"
                f"<p><small>{html.escape(self.summary())}</small></p>")


# ===========================================================================
# Numbers: sizes, random points, forward values and true gradients
# ===========================================================================


def _sample(domain: str | None, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random value from a declared input domain (params and plain inputs: normal)."""
    r, c = shape
    if domain == "onehot":
        out = np.zeros(shape)
        out[rng.integers(0, r, size=c), np.arange(c)] = 1.0
        return out
    if domain == "binary":  # both values, when there is room: a constant label hides terms
        for _ in range(20):
            out = rng.integers(0, 2, size=shape).astype(float)
            if r * c < 2 or 0 < out.sum() < r * c:
                break
        return out
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if domain == "prob":
        return rng.uniform(0.05, 0.95, size=shape)
    return rng.normal(size=shape)


def _size_sets(model: Model, seed: int) -> list[dict[str, int]]:
    """Several sets of sizes: within a set the dims are distinct primes; each dim varies across sets."""
    dims = sorted(model.dims)
    pool = PRIMES[: max(len(dims) + 1, 4)]
    rng = np.random.default_rng(seed)
    count = max(3, len(dims) + 2)
    out: list[dict[str, int]] = []
    for i in range(count):
        perm = rng.permutation(len(pool)) if i else np.arange(len(pool))
        out.append({d: int(pool[int(j)]) for d, j in zip(dims, perm)})
    return out


def _concrete(shape: tuple[Basic, Basic], env: Mapping[Any, Any]) -> tuple[int, int]:
    """A symbolic shape at the sizes in ``env`` (its dimension-symbol keys)."""
    dims = {k: v for k, v in env.items() if isinstance(k, sympy.Symbol)}
    return int(sympy.sympify(shape[0]).subs(dims)), int(sympy.sympify(shape[1]).subs(dims))


class _Point:
    """One size set and random point: forward values and every true gradient."""

    def __init__(self, deriv: Derivation, sizes: dict[str, int], rng: np.random.Generator) -> None:
        model = deriv.model
        self.sizes = sizes
        self.env: dict[Any, Any] = {model.dims[d]: v for d, v in sizes.items()}
        for d in model.decls.values():
            self.env[d.name] = _sample(d.domain, _concrete(d.shape, self.env), rng)
        for eq in deriv.equations:
            self.env[eq.name] = evaluate(eq.expr, self.env)
        for s in deriv.steps:
            self.env[grad_name(s.target)] = np.broadcast_to(evaluate(s.result, self.env), _concrete(s.shape, self.env))

    def value(self, e: Basic, subs: Mapping[Basic, np.ndarray] | None = None) -> np.ndarray:
        """``e`` at this point, with the given sub-expressions replaced by the given values."""
        return evaluate(e, self.env, dict(subs) if subs else {})


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative difference of two arrays of one shape (0 when both vanish)."""
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    if scale == 0.0:
        return 0.0
    return float(np.linalg.norm(a - b)) / scale


def _ratio(c: np.ndarray, g: np.ndarray) -> float | None:
    """r with c = r·g (least squares), or None when c is not a multiple of g."""
    gg = float(np.sum(g * g))
    if gg == 0.0:
        return None
    r = float(np.sum(c * g)) / gg
    if not math.isfinite(r):
        return None
    if _rel(c, r * g) > TOL * 10:
        return None
    return r


# ===========================================================================
# Factors: c · ∏ dim^k across size sets
# ===========================================================================


@dataclass(frozen=True)
class Factor:
    """A factor ``c · ∏ dim^k``; ``c`` exact when it was recognized as a small fraction."""

    c: Fraction | float
    exps: tuple[tuple[str, int], ...] = ()

    @property
    def is_one(self) -> bool:
        return not self.exps and self.c == 1

    def text(self) -> str:
        a = abs(self.c)
        num = [f"{d}{_sup(k)}" for d, k in self.exps if k > 0]
        den = [f"{d}{_sup(-k)}" for d, k in self.exps if k < 0]
        if isinstance(a, Fraction):
            n, q = a.numerator, a.denominator
        else:
            n, q = float(f"{a:.3g}"), 1
        top = ("" if n == 1 and num else _num(n)) + "·".join(num)
        bottom = ("" if q == 1 else str(q)) + "·".join(den)
        if bottom and (len(den) > 1 or (q != 1 and den)):
            bottom = f"({bottom})"  # 1/(2m), 1/(k·m)
        return top + (f"/{bottom}" if bottom else "")


def _sup(k: int) -> str:
    return "" if k == 1 else str(k).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _num(x: float | int) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _nice(x: float) -> Fraction | None:
    f = Fraction(x).limit_denominator(64)
    if f != 0 and abs(float(f) - x) <= 1e-9 * abs(x) and abs(f.numerator) <= 10_000:
        return f
    return None


def fit_factor(ratios: Sequence[float], sizes: Sequence[Mapping[str, int]]) -> Factor | None:
    """Explain per-size-set ratios as ``c · ∏ dim^k`` (at most two dims, |k| ≤ 2), simplest first."""
    if not ratios or any(r == 0 for r in ratios):
        return None
    dims = sorted(sizes[0])
    candidates: list[tuple[tuple[str, int], ...]] = [()]
    ks = (1, -1, 2, -2)
    candidates += [((d, k),) for d in dims for k in ks]
    candidates += [((a, i), (b, j)) for a, b in itertools.combinations(dims, 2) for i in ks for j in ks]
    candidates.sort(key=lambda e: sum(abs(k) for _, k in e))
    loose: Factor | None = None
    for exps in candidates:
        cs = [r / math.prod(s[d] ** k for d, k in exps) for r, s in zip(ratios, sizes)]
        if max(abs(c - cs[0]) for c in cs) > 1e-6 * abs(cs[0]):
            continue
        nice = _nice(cs[0])
        if nice is not None:
            return Factor(nice, exps)
        loose = loose or Factor(cs[0], exps)
    return loose


def factor_phrase(f: Factor, of: str = "the correct gradient", claim: Basic | None = None) -> str:
    """``exactly 1/2 of the correct gradient: a missing factor 2?`` and the like."""
    neg = f.c < 0
    a = Factor(abs(f.c), f.exps)
    if a.is_one:
        return f"the negative of {of}: a sign error"
    if len(a.exps) == 1 and a.c == 1 and abs(a.exps[0][1]) == 1:
        d, k = a.exps[0]
        size, hint = (f"{d} times too large", f"a missing 1/{d}?") if k > 0 else (f"{d} times too small", f"an extra 1/{d}?")
        if k < 0 and claim is not None and _has_op(claim, "mean"):
            hint += f" (mean(...) divides by {d}; the gradient sums)"
        return f"the negative of {of} and {size}: a sign error and {hint}" if neg else f"{size}: {hint}"
    if not a.exps and a.c < 1:
        inv = Factor(1 / a.c if isinstance(a.c, Fraction) else 1.0 / a.c)
        size, hint = f"exactly {a.text()} of {of}", f"a missing factor {inv.text()}?"
    elif not a.exps:
        size, hint = f"{a.text()} times {of}", f"an extra factor {a.text()}?"
    else:
        size = f"{a.text()} times {of}"
        if all(k > 0 for _, k in a.exps):
            inv = Factor(1 / a.c if isinstance(a.c, Fraction) else 1.0 / a.c, tuple((d, -k) for d, k in a.exps))
            hint = f"a missing {inv.text()}?"
        elif all(k < 0 for _, k in a.exps):
            hint = f"an extra {a.text()}?"
        else:
            hint = "a factor that depends on the sizes"
    if neg:
        return f"−{a.text()} times {of}: a sign error and {hint}"
    return f"{size}: {hint}"


def _has_op(e: Basic, name: str) -> bool:
    return any(isinstance(x, OpNode) and x.op.name == name for x in sympy.preorder_traversal(e))


# ===========================================================================
# The verifier
# ===========================================================================


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _grad_text(name: str) -> str:
    return text(GradSymbol(grad_name(name), 1, 1))


def _derivative_label(eq_expr: Basic) -> str:
    """σ(Z) -> σ′(Z), ReLU(Z₁) -> ReLU′(Z₁)."""
    s = text(eq_expr)
    i = s.find("(")
    return s[:i] + "′" + s[i:] if i > 0 else s + "′"


def _subexpressions(e: Basic) -> list[Basic]:
    """Distinct operation and variable sub-expressions of ``e``, outermost first (constants left out)."""
    out: dict[Basic, None] = {}
    todo = [e]
    while todo:
        x = todo.pop(0)
        if isinstance(x, OpNode):
            out.setdefault(x, None)
            todo.extend(x.children)
        elif isinstance(x, MatrixSymbol):
            out.setdefault(x, None)
    return list(out)


def _factors(e: Basic) -> list[Basic]:
    """The factors of an elementwise product (a leading −1 for a negation)."""
    if isinstance(e, OpNode) and e.op.name == "mul":
        return _factors(e.children[0]) + _factors(e.children[1])
    if isinstance(e, OpNode) and e.op.name == "neg":
        return [sympy.Integer(-1)] + _factors(e.children[0])
    return [e]


def _terms(e: Basic, sign: int = 1) -> list[tuple[int, Basic]]:
    """The signed terms of a sum: a + b − c -> [(1, a), (1, b), (−1, c)]."""
    if isinstance(e, OpNode) and e.op.name in ("add", "sub"):
        return _terms(e.children[0], sign) + _terms(e.children[1], sign if e.op.name == "add" else -sign)
    if isinstance(e, OpNode) and e.op.name == "neg":
        return _terms(e.children[0], -sign)
    return [(sign, e)]


def _product(fs: Sequence[Basic]) -> Basic:
    out: Basic = sympy.Integer(1)
    for f in fs:
        out = ir.mul(out, f)
    return out


class Verifier:
    """Judges claims about one derivation; sizes and random points are fixed per instance (deterministic)."""

    def __init__(self, deriv: Derivation, seed: int = 0) -> None:
        self.deriv = deriv
        self.model = deriv.model
        self.parser = ClaimParser(deriv)
        self.sizes = _size_sets(self.model, seed)
        rng = np.random.default_rng(seed + 1)
        self.points = [_Point(deriv, s, rng) for s in self.sizes]
        self.seed = seed
        self.examples = {str(d.shape[1]) for d in self.model.inputs if isinstance(d.shape[1], sympy.Symbol)}
        grads = set(self.parser.grads)
        #: V -> the equation U = f(V) of an elementwise activation applied to V
        self.activation_of: dict[str, Any] = {}
        for eq in deriv.equations:
            e = eq.expr
            if (isinstance(e, OpNode) and (e.op.name in _UNARY_ACTIVATIONS or e.op.name == "leaky_relu")
                    and isinstance(e.children[0], MatrixSymbol) and e.children[0].name in grads):
                self.activation_of.setdefault(e.children[0].name, eq)
        self.forward_vars: dict[str, MatrixSymbol] = {n: d.symbol for n, d in self.model.decls.items()}
        self.forward_vars.update({eq.name: eq.symbol for eq in deriv.equations})
        self._exact: dict[bool, _Exact] = {}
        self._memo: dict[tuple[str, Basic, str], dict[str, Any]] = {}

    # --- values ----------------------------------------------------------------
    def vals(self, e: Basic, subs: Mapping[Basic, Sequence[np.ndarray]] | None = None) -> list[np.ndarray]:
        """``e`` at every point; ``subs`` replaces sub-expressions by given values (one per point)."""
        out = []
        with np.errstate(all="ignore"):  # a trial substitution may divide by zero: it just does not match
            for i, p in enumerate(self.points):
                v = p.value(e, {k: vs[i] for k, vs in (subs or {}).items()})
                out.append(np.broadcast_to(v, _concrete(shape_of(e), p.env)))
        return out

    def grad(self, name: str) -> list[np.ndarray]:
        return [p.env[grad_name(name)] for p in self.points]

    def var(self, name: str) -> list[np.ndarray]:
        return [p.env[name] for p in self.points]

    @staticmethod
    def close(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
        return all(x.shape == y.shape and _rel(x, y) <= TOL for x, y in zip(a, b))

    def factor(self, a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> Factor | None:
        """``a = f · b`` at every point, with f explained as c · ∏ dim^k (None if not)."""
        if any(x.shape != y.shape for x, y in zip(a, b)):
            return None
        rs = [_ratio(x, y) for x, y in zip(a, b)]
        if any(r is None for r in rs):
            return None
        return fit_factor([float(r) for r in rs if r is not None], self.sizes)

    # --- entry -----------------------------------------------------------------
    def parse(self, src: ClaimSource) -> Claim:
        return self.parser.parse(src)

    def check(self, claim: Claim) -> ClaimResult:
        """The verdict on a parsed claim, with a diagnosis when it is wrong (a stack of answers repeats: memoized)."""
        key = (claim.name, claim.expr, claim.rhs)
        if key not in self._memo:
            self._memo[key] = self._judge(claim)
        return ClaimResult(name=claim.name, claim_text=claim.text, file=claim.file, line=claim.line, **self._memo[key])

    def _judge(self, claim: Claim) -> dict[str, Any]:
        name, e = claim.name, claim.expr
        step = self.deriv.step(name)
        c, g = self.vals(e), self.grad(name)
        if shape_of(e) != step.shape:
            kind, msg = self._wrong_shape(claim, step, c, g)
            return {"verdict": False, "diagnosis": msg, "error": math.inf, "exact_checked": False, "mistake": kind}
        err = max(_rel(x, y) for x, y in zip(c, g))
        if err <= TOL:
            status, note = self.exact(e, name)
            if status == "disproved":
                msg = f"agrees to {err:.1g} numerically but differs exactly ({note})"
                return {"verdict": False, "diagnosis": msg, "error": err, "exact_checked": True, "mistake": "value",
                        "exact_note": note}
            return {"verdict": True, "diagnosis": None, "error": err, "exact_checked": status == "proved",
                    "exact_note": note}
        kind, msg = self._diagnose(claim, step, c, g, err)
        return {"verdict": False, "diagnosis": msg, "error": err, "exact_checked": False, "mistake": kind}

    # --- wrong shapes ------------------------------------------------------------
    def _over(self, dim: Basic, axis: int) -> str:
        if axis == 1 and str(dim) in self.examples:
            return "the examples"
        return f"the {dim} {'columns' if axis == 1 else 'rows'}"

    def _sum_code(self, rhs: str, axes: Sequence[int], scalar: bool) -> str:
        body = rhs if len(rhs) <= _HINT_MAX else "..."
        return f"sum({body})" if len(axes) == 2 or scalar else f"sum({body}, axis={axes[0]})"

    def _wrong_shape(self, claim: Claim, step: Step, c: list[np.ndarray], g: list[np.ndarray]) -> tuple[str, str]:
        cs, ts = shape_of(claim.expr), step.shape
        head = f"wrong shape {fmt_shape(cs)}: {_grad_text(step.target)} is {fmt_shape(ts)}"
        if (cs[1], cs[0]) == ts:
            ct = [x.T for x in c]
            if self.close(ct, g):
                return "transpose", f"{head}; it is the transpose of the correct gradient"
            f = self.factor(ct, g)
            if f is not None:
                return "transpose", f"{head}; it is transposed, and {factor_phrase(f)}"
        axis = self._wrong_axis(claim.expr, ts, g)
        if axis is not None:
            return "sum", f"{head}; it sums over the wrong axis: {axis}"
        wide = [ax for ax in (0, 1) if ts[ax] == 1 and cs[ax] != 1]
        if wide and all(cs[ax] == ts[ax] for ax in (0, 1) if ax not in wide):
            red = [np.sum(x, axis=tuple(wide), keepdims=True) for x in c]
            over = _and([self._over(cs[ax], ax) for ax in wide])
            code = self._sum_code(claim.rhs, wide, ir.is_scalar_shape(ts))
            if self.close(red, g):
                return "sum", f"{head}; sum over {over}: {code}"
            f = self.factor(red, g)
            if f is not None:
                return "sum", f"{head}; sum over {over} ({code}), and then it is {factor_phrase(f)}"
        narrow = [ax for ax in (0, 1) if cs[ax] == 1 and ts[ax] != 1]
        if narrow and all(cs[ax] == ts[ax] for ax in (0, 1) if ax not in narrow):
            red = [np.sum(x, axis=tuple(narrow), keepdims=True) for x in g]
            if self.close(c, red):
                over = _and([self._over(ts[ax], ax) for ax in narrow])
                keep = "keep one column per example" if "the examples" in over else "do not sum over them"
                return "shape", f"{head}; it is the correct gradient summed over {over}: {keep}"
        return "shape", head

    def _wrong_axis(self, e: Basic, ts: tuple[Basic, Basic], g: list[np.ndarray]) -> str | None:
        """sum(E, axis=0) where sum(E, axis=1) is meant (or the other way round)."""
        if not (isinstance(e, OpNode) and e.op.name in ("sum", "mean") and len(e.attrs[0]) == 1):
            return None
        other = 1 - int(e.attrs[0][0])
        x = e.children[0]
        if shape_of(x)[other] == 1:
            return None
        fixed = ir.node(e.op.name, x, ir.axes_attr(other))
        if shape_of(fixed) != ts or not self.close(self.vals(fixed), g):
            return None
        along = "the examples" if other == 1 and str(shape_of(x)[1]) in self.examples else (
            "each row" if other == 1 else "each column")
        return f"axis={other} sums over {along}: {e.op.name}(..., axis={other})"

    # --- wrong values --------------------------------------------------------------
    def _diagnose(self, claim: Claim, step: Step, c: list[np.ndarray], g: list[np.ndarray], err: float) -> tuple[str, str]:
        if not all(np.all(np.isfinite(x)) for x in c):
            return "value", "it is not finite at some points (a division by zero, or the log of a negative number?)"
        if all(float(np.linalg.norm(x)) == 0.0 for x in c):
            return "zero", "it is zero, but the correct gradient is not"
        f = self.factor(c, g)
        if f is not None:
            kind = "sign" if (f.c == -1 and not f.exps) else "factor"
            return kind, factor_phrase(f, claim=claim.expr)
        ts = step.shape
        if ts[0] == ts[1] and not ir.is_scalar_shape(ts) and self.close([x.T for x in c], g):
            return "transpose", (f"it is the transpose of the correct gradient ({_grad_text(step.target)} is "
                                 f"{fmt_shape(ts)}, so the shapes cannot tell)")
        return self._locate(claim.expr, step.target, top=True, err=err)

    def _locate(self, s: Basic, target: str, top: bool, err: float) -> tuple[str, str]:
        """Descend to the part of ``s`` that stops matching: replace parts by true gradients until it holds."""
        hole = self._hole(s, target)
        if hole is not None:
            part, var = hole
            return self._locate(part, var, top=False, err=err)
        return self._local(s, target, top, err)

    def _hole(self, s: Basic, target: str) -> tuple[Basic, str] | None:
        want = self.grad(target)
        best: tuple[Basic, str] | None = None
        for part in _subexpressions(s)[1:_MAX_PARTS]:
            shape = shape_of(part)
            if ir.is_scalar_shape(shape):
                continue
            for var in self.parser.grads:
                if self.deriv.step(var).shape != shape:
                    continue
                if self.close(self.vals(s, {part: self.grad(var)}), want) and not self._holds(part, var):
                    if best is None or ir.count_nodes(part) > ir.count_nodes(best[0]):
                        best = (part, var)
                    break
        return best

    def _holds(self, part: Basic, var: str) -> bool:
        """Whether ``part`` already contains ∂L/∂var: then the mistake is around it, not inside."""
        want, shape = self.grad(var), self.deriv.step(var).shape
        return any(shape_of(x) == shape and self.close(self.vals(x), want) for x in _subexpressions(part)[1:])

    def _local(self, s: Basic, target: str, top: bool, err: float) -> tuple[str, str]:
        """Describe how ``s`` fails to be ∂L/∂target when no smaller part is to blame."""
        step = self.deriv.step(target)
        got, want = self.vals(s), self.grad(target)
        where = "" if top else f"in {_grad_text(target)}: "
        for check in (self._paths, self._extra_term, self._other_gradient, self._activation):
            found = check(s, step, got)
            if found is not None:
                return found[0], where + found[1] if check is self._paths else found[1]
        if not top:
            f = self.factor(got, want)
            if f is not None:
                part = f"its part {text(s)}, which should be {_grad_text(target)}, is "
                return "factor", part + factor_phrase(f, of=f"the correct {_grad_text(target)}", claim=s)
        for check in (self._transposed_leaf, self._swapped_leaf):
            found = check(s, step)
            if found is not None:
                return found
        rec = text(step.recursive)
        if top:
            return "value", f"does not match {_grad_text(target)} = {rec} (relative error {err:.2g})"
        return "step", f"its part {text(s)} should be {_grad_text(target)} = {rec}"

    def _paths(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """A variable used several times: which uses the claim covers (fit over the paths' contributions)."""
        paths = step.paths
        if len(paths) < 2:
            return None
        contrib = [self.vals(p.expr) for p in paths]
        coefs: list[list[float]] = [[] for _ in paths]
        sizes = []
        for i, y in enumerate(got):
            a = np.column_stack([np.broadcast_to(c[i], y.shape).ravel() for c in contrib])
            sol, _, rank, _ = np.linalg.lstsq(a, y.ravel(), rcond=None)
            if rank < len(paths):
                continue  # the uses cannot be told apart at this point (e.g. too few examples)
            if _rel(a @ sol, y.ravel()) > TOL * 10:
                return None
            sizes.append(self.sizes[i])
            for j, v in enumerate(sol):
                coefs[j].append(float(v))
        if len(sizes) < 2:
            return None
        domains = {d.name: d.domain for d in self.model.decls.values()}
        terms = [text(simplify(p.expr, domains)) for p in paths]
        vias = [p.via for p in paths]
        labels = [f"{p.via} (contributing {t})" if vias.count(p.via) > 1 else p.via for p, t in zip(paths, terms)]
        matched, missing, other = [], [], []
        for j, cs in enumerate(coefs):
            scale = max(abs(x) for x in cs)
            if scale < 1e-9:
                missing.append(j)
                continue
            f = fit_factor(cs, sizes)
            if f is None:
                return None
            (matched if f.is_one else other).append((j, f))
        parts = []
        if missing:
            lost = [f"{paths[j].via} (contributing {terms[j]})" for j in missing]
            s_ = "s" if len(missing) > 1 else ""
            if matched:
                ok = _and([labels[j] for j, _ in matched])
                parts.append(f"matches the path{'s' if len(matched) > 1 else ''} through {ok} "
                             f"but misses the path{s_} through {_and(lost)}")
            else:
                parts.append(f"misses the path{s_} through {_and(lost)}")
        for j, f in other:
            label = f"{paths[j].via} (contributing {terms[j]})"
            if f.c == -1 and not f.exps:
                parts.append(f"the path through {label} has the wrong sign")
            else:
                parts.append(f"the path through {label} is {factor_phrase(f, of='its correct contribution')}")
        if not parts:
            return None
        return "paths", "; ".join(parts)

    def _other_gradient(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """The part is the gradient of another variable: a skipped step (often the activation's derivative)."""
        for var in self.parser.grads:
            if var == step.target or self.deriv.step(var).shape != step.shape:
                continue
            if not self.close(got, self.grad(var)):
                continue
            act = self.activation_of.get(step.target)
            if act is not None and act.name == var:
                local = act.expr.op.vjps[0](sympy.Integer(1), act.symbol, act.expr)
                label = _derivative_label(act.expr)
                return "step", (f"the factor {label} = {text(local)} is missing: "
                                f"{_grad_text(step.target)} = {_grad_text(var)} ⊙ {label}, not {_grad_text(var)}")
            return "step", f"uses {_grad_text(var)} where {_grad_text(step.target)} belongs"
        return None

    def _activation(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """δ_Z = δ_A ⊙ f′(Z): find the δ_A factor (or a multiple of it), then compare the rest with f′."""
        act = self.activation_of.get(step.target)
        if act is None:
            return None
        found = self._outer_factor(_factors(s), self.grad(act.name))
        if found is None:
            return None
        pick, rest, f = found
        claimed = _product(rest)
        local = act.expr.op.vjps[0](sympy.Integer(1), act.symbol, act.expr)
        label = _derivative_label(act.expr)
        right = shape_of(claimed) == step.shape and self.close(self.vals(claimed), self.vals(local))
        wrong = f"this would hold if {label} were {text(claimed)}; it is {text(local)}"
        v = self.forward_vars[step.target]
        if shape_of(claimed) == step.shape and self.close(self.vals(claimed, {v: self.var(act.name)}), self.vals(local)):
            wrong += f": use {text(act.symbol)} = {text(act.expr)}, not {text(v)}"
        if f is None:
            return "step", wrong
        off = f"{text(_product(pick))} is {factor_phrase(f, of=_grad_text(act.name))}"
        if right:
            return "factor", f"in {_grad_text(step.target)}: {off}"
        return "step", f"two mistakes in {_grad_text(step.target)}: {off}; and {wrong}"

    def _outer_factor(self, fs: list[Basic], outer: list[np.ndarray]) -> tuple[list[Basic], list[Basic], Factor | None] | None:
        """Factors whose product is ``outer`` (factor None) or a multiple of it; the rest."""
        loose = None
        for size in (1, 2):
            for pick in itertools.combinations(range(len(fs)), size):
                if len(fs) - size < 1:
                    continue
                got = self.vals(_product([fs[i] for i in pick]))
                split = ([fs[i] for i in pick], [x for i, x in enumerate(fs) if i not in pick])
                if self.close(got, outer):
                    return (*split, None)
                f = self.factor(got, outer) if loose is None else None
                if f is not None:
                    loose = (*split, f)
        return loose

    def _extra_term(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """A sum that holds without one of its terms."""
        terms = _terms(s)
        if len(terms) < 2:
            return None
        want = self.grad(step.target)
        vals = [[sign * np.broadcast_to(v, w.shape) for v, w in zip(self.vals(t), want)] for sign, t in terms]
        for i, (sign, t) in enumerate(terms):
            rest = [sum(vals[j][k] for j in range(len(terms)) if j != i) for k in range(len(want))]
            if self.close(rest, want):
                return "value", f"the term {'−' if sign < 0 else '+'} {text(t)} does not belong: without it the claim holds"
        return None

    def _transposed_leaf(self, s: Basic, step: Step) -> tuple[str, str] | None:
        want = self.grad(step.target)
        for leaf in sorted(s.atoms(MatrixSymbol), key=lambda x: x.name):
            r, c = shape_of(leaf)
            if r != c or r == 1:
                continue
            if self.close(self.vals(s, {leaf: [x.T for x in self.vals(leaf)]}), want):
                return "step", (f"{text(leaf)} needs a transpose here: "
                                f"{_grad_text(step.target)} = {text(step.recursive)}")
        return None

    def _swapped_leaf(self, s: Basic, step: Step) -> tuple[str, str] | None:
        want = self.grad(step.target)
        for leaf in sorted(s.atoms(MatrixSymbol), key=lambda x: x.name):
            if isinstance(leaf, GradSymbol):
                continue
            for name, sym in self.forward_vars.items():
                if name == leaf.name or shape_of(sym) != shape_of(leaf):
                    continue
                if self.close(self.vals(s, {leaf: self.var(name)}), want):
                    return "step", (f"has {text(leaf)} where {text(sym)} belongs: "
                                    f"{_grad_text(step.target)} = {text(step.recursive)}")
        return None

    # --- exact check -----------------------------------------------------------------
    def exact(self, e: Basic, name: str) -> tuple[str, str]:
        """``proved`` / ``disproved`` / ``skipped``, and a note on how (or why not)."""
        ops = {x.op.name for x in sympy.preorder_traversal(e) if isinstance(x, OpNode)}
        for eq in self.deriv.equations:
            ops |= {x.op.name for x in sympy.preorder_traversal(eq.expr) if isinstance(x, OpNode)}
        modes = [True] if ops & PIECEWISE else [False, True]  # symbolic entries when possible, else a rational point
        status, note = "skipped", ""
        for rational in modes:
            if rational not in self._exact:
                self._exact[rational] = _Exact(self.deriv, rational, self.seed)
            status, note = self._exact[rational].check(e, name)
            if status != "skipped":
                break
        return status, note

    @property
    def exact_sizes(self) -> dict[str, int]:
        return _exact_sizes(self.model)


# ===========================================================================
# Exact check with SymPy
# ===========================================================================


def _exact_sizes(model: Model) -> dict[str, int]:
    return {d: 2 + i % 2 for i, d in enumerate(sorted(model.dims))}


def _rational(x: float, den: int) -> sympy.Rational:
    return sympy.Rational(round(float(x) * den), den)


def _ops(m: sympy.MatrixBase) -> int:
    return sum(sympy.count_ops(x) for x in m)


class _Exact:
    """Forward values and true gradients on SymPy matrices at small sizes.

    Params and unconstrained inputs are symbols, so an identity that holds is
    proved for every value at those sizes; inputs with a domain are concrete
    values from it. With piecewise operations (ReLU) every entry is a rational
    clear of the kinks instead.
    """

    def __init__(self, deriv: Derivation, rational: bool, seed: int) -> None:
        self.deriv, self.rational = deriv, rational
        model = deriv.model
        self.sizes = _exact_sizes(model)
        self.dims = {model.dims[d]: v for d, v in self.sizes.items()}
        self.reason = ""
        self.env: dict[Any, Any] = {}
        self.cache: dict[Basic, Any] = {}
        fixed = [int(x) for d in model.decls.values() for x in d.shape if isinstance(x, sympy.Integer)]
        shapes = {n: _concrete(d.shape, self.dims) for n, d in model.decls.items()}
        entries = sum(r * c for r, c in shapes.values())
        if fixed and max(fixed) > EXACT_MAX_FIXED_DIM:
            self.reason = f"skipped: the spec fixes a size of {max(fixed)}, too large for SymPy"
            return
        if entries > (EXACT_MAX_RATIONAL_ENTRIES if rational else EXACT_MAX_ENTRIES):
            self.reason = "skipped: too many entries even at the smallest sizes"
            return
        rng = np.random.default_rng(seed + 7)
        for _attempt in range(8):
            if self._build(shapes, rng):
                return
        self.reason = self.reason or "skipped: no exact point clear of the kinks"

    def _build(self, shapes: Mapping[str, tuple[int, int]], rng: np.random.Generator) -> bool:
        model = self.deriv.model
        self.env = dict(self.dims)
        self.cache = {}
        for n, d in model.decls.items():
            r, c = shapes[n]
            if d.domain in ("onehot", "binary") or self.rational or d.domain == "prob":
                x = _sample(d.domain, (r, c), rng)
                if d.domain == "prob":
                    x = np.clip(x, 0.1, 0.9)
                den = 1 if d.domain in ("onehot", "binary") else 97
                if d.domain == "positive":
                    x = np.maximum(x, 0.25)
                self.env[n] = sympy.Matrix(r, c, lambda i, j, x=x, den=den: _rational(x[i, j], den))
            else:
                pos = d.domain == "positive"
                self.env[n] = sympy.Matrix(
                    r, c, lambda i, j, n=n, pos=pos: sympy.Symbol(f"{n}[{i},{j}]", real=True, positive=pos or None))
        try:
            for eq in self.deriv.equations:
                self.env[eq.name] = self._eval(eq.expr)
            if self.rational and not self._clear_of_kinks():
                return False
            for s in self.deriv.steps:
                v = self._eval(s.result)
                r, c = _concrete(s.shape, self.dims)
                if v.shape != (r, c):
                    v = sympy.Matrix(r, c, lambda i, j, v=v: v[i if v.rows > 1 else 0, j if v.cols > 1 else 0])
                self.env[grad_name(s.target)] = v
        except _TooLargeError:
            self.reason = "skipped: the expressions grow too large at the smallest sizes"
        return True

    def _eval(self, e: Basic) -> sympy.Matrix:
        v = evaluate_exact(e, self.env, self.cache)
        if _ops(v) > EXACT_MAX_OPS:
            raise _TooLargeError
        return v

    def _clear_of_kinks(self) -> bool:
        for eq in self.deriv.equations:
            for x in sympy.preorder_traversal(eq.expr):
                if isinstance(x, OpNode) and x.op.name in PIECEWISE:
                    arg = evaluate_exact(x.children[0], self.env, self.cache)
                    if any(v == 0 for v in arg):
                        return False
        return True

    def check(self, e: Basic, name: str) -> tuple[str, str]:
        at = ", ".join(f"{k}={v}" for k, v in self.sizes.items()) or "the spec's sizes"
        if self.reason:
            return "skipped", self.reason
        how = "at a rational point" if self.rational else "for every value of the params"
        try:
            got = self._eval(e)
        except _TooLargeError:
            return "skipped", "skipped: the claim grows too large at the smallest sizes"
        want = self.env[grad_name(name)]
        if got.shape != want.shape:
            got = sympy.Matrix(*want.shape, lambda i, j: got[i if got.rows > 1 else 0, j if got.cols > 1 else 0])
        verdicts = [_exact_zero(a - b) for a, b in zip(got, want)]
        if any(v is False for v in verdicts):
            return "disproved", f"at {at}"
        if all(v is True for v in verdicts):
            return "proved", f"proved equal at {at}, {how}"
        return "skipped", f"inconclusive at {at}: SymPy could not decide"


class _TooLargeError(Exception):
    """An exact value exceeded the budget; the exact check is skipped."""


def _exact_zero(x: sympy.Expr) -> bool | None:
    """True when ``x`` is provably 0, False when provably not, None when undecided."""
    x = sympy.sympify(x)
    if x == 0 or sympy.cancel(x) == 0:
        return True
    if sympy.count_ops(x) < 400 and sympy.simplify(x) == 0:
        return True
    free = sorted(x.free_symbols, key=str)
    rng = np.random.default_rng(len(free))
    subs = {s: _rational(rng.uniform(0.2, 1.5), 97) for s in free}
    v = x.evalf(40, subs=subs)
    if v.is_number and abs(v) > sympy.Float("1e-25"):
        return False
    return None


# ===========================================================================
# API
# ===========================================================================


@deep_stack
def check_claims(
    spec_or_model: str | Model | Derivation, sources: Iterable[ClaimSource], seed: int = 0
) -> tuple[VerifyReport | None, list[SpecError]]:
    """Parse every claim (collecting all errors), then judge them if all parsed."""
    deriv = spec_or_model if isinstance(spec_or_model, Derivation) else get_derivation(spec_or_model)
    verifier = Verifier(deriv, seed)
    claims: list[Claim] = []
    errors: list[SpecError] = []
    for src in sources:
        try:
            claims.append(verifier.parse(src))
        except SpecError as err:
            errors.append(err)
    if errors:
        return None, errors
    results = [verifier.check(c) for c in claims]
    exact = verifier.exact_sizes if any(r.exact_checked for r in results) else None
    return VerifyReport(deriv.model.name, results, verifier.sizes, exact), []


@deep_stack
def verify(spec_or_model: str | Model | Derivation, claims: str | Sequence[str], seed: int = 0) -> VerifyReport:
    """Judge hand-derived gradients: ``verify("two_layer_sigmoid", ["dW1 = dZ @ X.T"])``.

    ``claims`` is a list of ``dNAME = EXPR`` strings, or one string holding one
    claim per line (``#`` comments and blank lines allowed). Raises the first
    :class:`~backprop.support.errors.SpecError` when a claim cannot be parsed.
    """
    report, errors = check_claims(spec_or_model, claim_sources(claims), seed)
    if errors:
        raise errors[0]
    assert report is not None
    return report
