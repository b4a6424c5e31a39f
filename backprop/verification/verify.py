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
stops matching.

This module holds the verdict and the entry points; the stages have a module each: parsing a
claim (:mod:`~backprop.verification.claims`), the numerical comparison
(:mod:`~backprop.verification.numeric`), the exact check (:mod:`~backprop.verification.exact`), the
diagnosis of a wrong claim (:mod:`~backprop.verification.diagnose`, with factors in
:mod:`~backprop.verification.factors`) and the report (:mod:`~backprop.verification.report`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.engine.derivation import Derivation
from backprop.engine.pipeline import get_derivation
from backprop.expr.ir import OpNode, shape_of
from backprop.language.model import Model
from backprop.support.deepstack import deep_stack
from backprop.support.errors import SpecError
from backprop.support.naming import grad_name
from backprop.verification.claims import Claim, ClaimParser, ClaimSource, claim_sources
from backprop.verification.diagnose import Diagnosis
from backprop.verification.exact import ExactCheck
from backprop.verification.numeric import TOL, Point, Points, rel, tie_point
from backprop.verification.report import ClaimResult, VerifyReport


class Verifier:
    """Judges claims about one derivation; sizes and random points are fixed per instance (deterministic)."""

    def __init__(self, deriv: Derivation, seed: int = 0) -> None:
        self.deriv = deriv
        self.model = deriv.model
        self.parser = ClaimParser(deriv)
        self.points = Points(deriv, seed)
        self.sizes = self.points.sizes
        self.seed = seed
        self.diagnosis = Diagnosis(deriv, self.points, self.parser.grads)
        self._exact = ExactCheck(deriv, seed)
        self._memo: dict[tuple[str, Basic, str], dict[str, Any]] = {}
        self._tie_points: list[Point] | None = None  # built when a claim first needs them

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
        c, g = self.points.vals(e), self.points.grad(name)
        if shape_of(e) != step.shape:
            kind, msg = self.diagnosis.wrong_shape(claim, step, c, g)
            return {"verdict": False, "diagnosis": msg, "error": math.inf, "exact_checked": False, "mistake": kind}
        err = max(rel(x, y) for x, y in zip(c, g))
        if err <= TOL:
            tie = self._at_ties(e, name)
            if tie is not None:
                return {"verdict": False, "diagnosis": tie, "error": err, "exact_checked": False, "mistake": "tie"}
            status, note = self.exact(e, name)
            if status == "disproved":
                msg = f"agrees to {err:.1g} numerically but differs exactly ({note})"
                return {"verdict": False, "diagnosis": msg, "error": err, "exact_checked": True, "mistake": "value",
                        "exact_note": note}
            return {"verdict": True, "diagnosis": None, "error": err, "exact_checked": status == "proved",
                    "exact_note": note}
        kind, msg = self.diagnosis.wrong_value(claim, step, c, g, err)
        return {"verdict": False, "diagnosis": msg, "error": err, "exact_checked": False, "mistake": kind}

    def _at_ties(self, e: Basic, name: str) -> str | None:
        """Why a claim right at random points is wrong where values tie or sit on a kink, or None.

        Random points never tie, so a claim that forgets a convention (a tie of maximum split half
        and half, clip passing the gradient on its boundary) passes them; it is compared again at a
        point of -1, 0 and 1 when the forward pass has such an operation, and the diagnosis cites it."""
        kinks = {x.op.name: x.op for eq in self.deriv.equations for x in sympy.preorder_traversal(eq.expr)
                 if isinstance(x, OpNode) and x.op.piecewise and any(x.op.operand_vjp(i) for i in range(x.op.arity))}
        if not kinks:
            return None
        if self._tie_points is None:  # every size set, so that some column or row surely ties
            self._tie_points = [p for p in (tie_point(self.deriv, sizes, self.seed) for sizes in self.sizes) if p]
        for point in self._tie_points:
            with np.errstate(all="ignore"):
                want = point.env[grad_name(name)]
                got = np.broadcast_to(point.value(e), np.shape(want))
            if np.all(np.isfinite(got)) and rel(got, want) > TOL:
                break
        else:
            return None
        rules = "; ".join(op.rule(0) for op in kinks.values())
        return (f"right at random points but wrong where values tie or sit on a kink (every param and input "
                f"-1, 0 or 1): the derivation follows PyTorch's convention there ({rules}; see docs/operations.md)")

    def exact(self, e: Basic, name: str) -> tuple[str, str]:
        """``proved`` / ``disproved`` / ``skipped``, and a note on how (or why not)."""
        return self._exact.check(e, name)

    @property
    def exact_sizes(self) -> dict[str, int]:
        return self._exact.sizes


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
