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

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.engine.chain import at_loop
from backprop.engine.derivation import Derivation
from backprop.engine.pipeline import get_derivation, get_model
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.printing import GradSymbol
from backprop.language.model import Model
from backprop.support.deepstack import deep_stack
from backprop.support.errors import ShapeError, SpecError
from backprop.support.naming import grad_name
from backprop.verification.claims import Claim, ClaimParser, ClaimSource, claim_sources
from backprop.verification.diagnose import Diagnosis
from backprop.verification.exact import ExactCheck
from backprop.verification.numeric import TOL, Point, Points, rel, tie_point
from backprop.verification.report import ClaimResult, VerifyReport
from backprop.verification.time_claims import check_time_claims


class Verifier:
    """Judges claims about one derivation; sizes and random points are fixed per instance (deterministic)."""

    def __init__(self, deriv: Derivation, seed: int = 0, tol: float | str = TOL) -> None:
        self.deriv = deriv
        #: the stated tolerance: a claim is correct when its relative error is at most this at every
        #: point, whether or not the exact check runs; "exact": correct only when proved exactly
        #: (numerically at :data:`TOL` where the exact check cannot run, and the note says so)
        self.tol = tol
        self.threshold = TOL if tol == "exact" else float(tol)
        self.model = deriv.model
        self.parser = ClaimParser(deriv)
        self.points = Points(deriv, seed)
        self.sizes = self.points.sizes
        self.seed = seed
        self.diagnosis = Diagnosis(deriv, self.points, self.parser.grads, self.threshold)
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
        return ClaimResult(name=claim.name, claim_text=claim.answer or claim.text, file=claim.file, line=claim.line,
                           reading=claim.text if claim.answer else "", **self._memo[key])

    def _judge(self, claim: Claim) -> dict[str, Any]:
        name, e = claim.name, claim.expr
        step = self.deriv.step(name)
        c, g = self.points.vals(e), self.points.grad(name)
        if shape_of(e) != step.shape:
            kind, msg = self.diagnosis.wrong_shape(claim, step, c, g)
            return {"verdict": False, "diagnosis": msg, "error": math.inf, "exact_checked": False, "mistake": kind}
        err = max(rel(x, y) for x, y in zip(c, g))
        if err <= self.threshold:
            tie = self._at_ties(e, name)
            if tie is not None:
                return {"verdict": False, "diagnosis": tie, "error": err, "exact_checked": False, "mistake": "tie"}
            status, note = self.exact(e, name)
            if status == "disproved" and self.tol == "exact":
                msg = f"agrees to {err:.1g} numerically but differs exactly ({note})"
                return {"verdict": False, "diagnosis": msg, "error": err, "exact_checked": True, "mistake": "value",
                        "exact_note": note}
            if status == "disproved":  # the stated tolerance decides, as it does where no exact check runs
                note = (f"within the tolerance {self.threshold:.0e} but not exactly equal ({note}): "
                        "a stabilizing epsilon? --tol exact rejects it")
            elif status == "skipped" and self.tol == "exact":
                note = f"{note}; judged numerically, within {TOL:.0e}"
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
            if np.all(np.isfinite(got)) and rel(got, want) > self.threshold:
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


#: What ``dOTHER`` in a claim stands for: the true gradient, the student's own earlier answer for
#: OTHER (the chain graded as written), or nothing (a closed form is required).
CHAINS = ("true", "own", "closed")


#: What ``own`` holds for an answer that is there but cannot stand for its gradient: why not.
_BROKEN, _UNREADABLE = "is itself a broken chain", "could not be read"


def _chained(claim: Claim, mode: str, own: dict[str, Claim | str]) -> Claim | tuple[str, str]:
    """The claim with each ``dOTHER`` resolved as ``mode`` says, or (mistake, diagnosis) when the
    rules of the mode make it wrong: a recursive form where a closed one is required, or a chain
    through an answer that is missing or does not fit (``own`` maps a target to its answer, or to
    why that answer cannot be used)."""
    grads = sorted(claim.expr.atoms(GradSymbol), key=lambda g: g.name)
    if mode == "true" or not grads:
        return claim
    names = ", ".join(g.name for g in grads)
    if mode == "closed":
        what = "stands for another gradient" if len(grads) == 1 else "stand for other gradients"
        return "closed", f"a closed form is required: {names} {what}; write it out"
    missing = [g.name for g in grads if g.of not in own]
    if missing:
        return "chain", f"uses {', '.join(missing)}, but no answer for it comes before this one"
    broken = [g for g in grads if isinstance(own[g.of], str)]
    if broken:
        why = {own[g.of] for g in broken}
        reason = why.pop() if len(why) == 1 else f"{_BROKEN} or {_UNREADABLE}"
        return "chain", f"uses {', '.join(g.name for g in broken)}, whose answer above {reason}"
    try:
        expr = claim.expr.xreplace({g: own[g.of].expr for g in grads})  # type: ignore[union-attr]
    except ShapeError as e:
        return "shape", f"shape mismatch with your own {names}: {e}"
    return dataclasses.replace(claim, expr=expr)


@deep_stack
def check_claims(
    spec_or_model: str | Model | Derivation, sources: Iterable[ClaimSource], seed: int = 0, chain: str = "true",
    aliases: Mapping[str, str] | None = None, tol: float | str = TOL, verifier: Verifier | None = None,
    earlier: Sequence[tuple[ClaimSource, str]] = (),
) -> tuple[VerifyReport, list[SpecError]]:
    """Judge every claim, in order. One that cannot be read is reported (an unusable result, and its
    located error) and never stops the others; one whose shapes do not fit is judged wrong, with the
    shape mismatch as its diagnosis, as a grader would mark it. ``chain`` (one of :data:`CHAINS`)
    says what ``dOTHER`` stands for; ``aliases`` maps course names to the spec's (``A`` → ``p``).
    An answer in LaTeX, NumPy or the derivation's Unicode is read into the spec language first,
    and its reading is in the result.

    ``verifier``: one already built for this derivation (``spec_or_model`` is then its derivation,
    and ``seed`` and ``tol`` are the verifier's), so a caller judging many batches -- a class's
    answers, one student at a time -- builds the sizes, points and exact checker once and shares
    its memo of verdicts across the batches.

    ``earlier``: answers given before these, each with the chain mode it is graded in; never judged
    here, they are what ``dOTHER`` stands for with ``chain="own"`` -- a grader judging one question
    at a time passes the student's answers to the questions before it."""
    if chain not in CHAINS:
        raise ValueError(f"chain must be one of {', '.join(CHAINS)}, got {chain!r}")
    if verifier is None and not isinstance(spec_or_model, Derivation):
        model = get_model(spec_or_model)
        if model.loops:  # claims in the general form of backpropagation through time
            if chain != "true":
                raise not_yet_chained(model, chain)
            return check_time_claims(model, sources, seed, tol, aliases=aliases)
    if verifier is None:
        deriv = spec_or_model if isinstance(spec_or_model, Derivation) else get_derivation(spec_or_model)
        verifier = Verifier(deriv, seed, tol)
    deriv = verifier.deriv
    results: list[ClaimResult] = []
    errors: list[SpecError] = []
    own: dict[str, Claim | str] = {}  # each target's latest answer, its dOTHERs resolved (or why it is unusable)
    for src, mode in earlier:
        try:
            parsed = verifier.parse(verifier.parser.read(src, aliases))
        except SpecError:
            name = _claimed_name(src.text)
            if name:
                own[name] = _UNREADABLE
            continue
        resolved = _chained(parsed, mode, own)
        own[parsed.name] = _BROKEN if isinstance(resolved, tuple) else resolved
    for answer in sources:
        src = answer
        try:
            src = verifier.parser.read(answer, aliases)
            parsed = verifier.parse(src)
            claim = _chained(parsed, chain, own)
            if isinstance(claim, tuple):
                mistake, why = claim
                if mistake == "chain":
                    own[parsed.name] = _BROKEN  # answered, but not resolvable: later uses say so
                results.append(ClaimResult(name=parsed.name, claim_text=parsed.answer or parsed.text, verdict=False,
                                           diagnosis=why, error=math.inf, exact_checked=False, mistake=mistake,
                                           file=src.file, line=src.line, reading=parsed.text if parsed.answer else ""))
                continue
            own[claim.name] = claim
            results.append(verifier.check(claim))
        except SpecError as err:
            name = _claimed_name(src.text)
            kind = {"verdict": False, "diagnosis": err.message, "error": math.inf, "exact_checked": False,
                    "file": src.file, "line": src.line, "name": name, "claim_text": answer.text.strip(),
                    "reading": src.text.strip() if src.answer else ""}
            if err.shapes:
                kind["diagnosis"] = _checked_fix(verifier, src, err)
                results.append(ClaimResult(mistake="shape", **kind))
            else:
                errors.append(err)
                results.append(ClaimResult(mistake="unusable", unusable=True, **kind))
    exact = verifier.exact_sizes if any(r.exact_checked for r in results) else None
    return VerifyReport(deriv.model.name, results, verifier.sizes, exact, errors), errors


def not_yet_chained(model: Model, chain: str) -> SpecError:
    return at_loop(model, f"--chain {chain} is not built for claims about a loop yet: there dOTHER is the true "
                          "gradient (--chain true)")


def _checked_fix(verifier: Verifier, src: ClaimSource, err: SpecError) -> str:
    """The shape mismatch's message, its "did you mean" kept only if the suggested claim is correct:
    ``dZ @ ones(k, 1)`` is not told to write ``dZ.T @ ones(k, 1)``, which fits and is wrong too."""
    if err.fix is None:
        return err.message
    start, end, rewrite, hint = err.fix
    other = ClaimSource(src.text[:start] + rewrite + src.text[end:], src.file, src.line)
    try:
        good = verifier.check(verifier.parse(other)).verdict
    except SpecError:
        good = False
    return err.message if good else err.message.replace(hint, "")


def _claimed_name(text: str) -> str:
    """The NAME of ``dNAME = ...`` as written, for a claim that could not be parsed ('' if none)."""
    lhs = text.split("=", 1)[0].strip() if "=" in text else ""
    return lhs[1:] if lhs.startswith("d") and lhs[1:].isidentifier() else ""


@deep_stack
def verify(
    spec_or_model: str | Model | Derivation, claims: str | Sequence[str], seed: int = 0, chain: str = "true",
    aliases: Mapping[str, str] | None = None, tol: float | str = TOL,
) -> VerifyReport:
    """Judge hand-derived gradients: ``verify("two_layer_sigmoid", ["dW1 = dZ @ X.T"])``.

    ``claims`` is a list of ``dNAME = EXPR`` strings, or one string holding one
    claim per line (``#`` comments and blank lines allowed). A claim that cannot be read
    does not stop the others: it is in the report as unusable, its located
    :class:`~backprop.support.errors.SpecError` in ``report.errors``. ``chain``: ``dOTHER`` is the
    true gradient ("true"), the claimant's own earlier answer for OTHER ("own"), or not allowed ("closed").
    Answers may be written in LaTeX, NumPy or the derivation's Unicode (each result shows its
    ``reading``); ``aliases`` maps course names to the spec's: ``{"A": "p"}``. ``tol``: a claim is
    correct when its relative error is at most this at every point (default 1e-7), whether or not
    the exact check runs; ``"exact"`` requires an exact proof where one can run.
    """
    return check_claims(spec_or_model, claim_sources(claims), seed, chain, aliases, tol)[0]
