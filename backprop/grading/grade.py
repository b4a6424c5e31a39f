"""Grading a class: every answer judged by :mod:`backprop.verification`, each distinct one once.

Cost is in the judging, so it is shared twice over:

- **one Verifier per spec** -- its sizes, random points, exact checker and memo of verdicts are
  built once and serve every student (:func:`~backprop.verification.verify.check_claims` takes it);
- **identical answers are judged once**: an answer is keyed by (spec, chain mode, aliases, the
  claim with its white space collapsed), and with ``chain = "own"`` by the student's earlier
  answers on that spec as well, since they are what its ``dOTHER`` stands for. A class repeats
  itself -- the right answer, the missing 1/m -- so most answers are a key already judged.

A spec with a loop is graded the same way, its answers in the general form (``dH[t] = …``,
``dWh = sum_t(…)``) judged by one :class:`~backprop.verification.time_claims.TimeClaims` per spec,
which names the classic mistakes of backpropagation through time.

The verdict, diagnosis and mistake kind are verification's own; this module adds the score (the
question's weight, a fraction of it for a wrong answer whose mistake the assignment's
partial-credit policy names, nothing for the rest) and the bookkeeping of who answered what.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from backprop.engine.derivation import Derivation
from backprop.engine.through_time import TimeDerivation
from backprop.expr.printing import GradSymbol, text
from backprop.grading.answers import Answer
from backprop.grading.manifest import Assignment, Question, target_name
from backprop.language.expression import suggest
from backprop.support.deepstack import deep_stack
from backprop.support.errors import SpecError
from backprop.support.naming import grad_name
from backprop.verification.claims import ClaimSource
from backprop.verification.report import ClaimResult
from backprop.verification.time_claims import LOOP_PATHS, TimeClaims, check_time_claims
from backprop.verification.verify import Verifier, check_claims

#: How each graded answer stands, in every output.
STATUSES = ("correct", "partial", "wrong", "unusable", "missing")


@dataclass(frozen=True)
class Graded:
    """One student's answer to one question: the verdict (None when there is no answer) and the score."""

    student: str
    question: Question
    answer: Answer | None
    result: ClaimResult | None
    score: float
    status: str  # one of STATUSES

    @property
    def reading(self) -> str:
        """The answer as the spec language reads it, when it was written otherwise (LaTeX, NumPy, Unicode,
        a course's names); '' when it was read as written."""
        return self.result.reading if self.result is not None else ""


@dataclass
class ClassGrades:
    """Every student's graded answers, students sorted, questions in the assignment's order."""

    assignment: Assignment
    grades: dict[str, dict[str, Graded]]  # student -> question id -> graded
    answered: int = 0  # answers given
    judged: int = 0  # distinct keys judged (the rest were identical to one of them)
    specs: list[str] = field(default_factory=list)

    @property
    def students(self) -> list[str]:
        return list(self.grades)

    def total(self, student: str) -> float:
        return sum(g.score for g in self.grades[student].values())


def question_label(q: Question) -> str:
    """``q1: ∂L/∂W₁`` -- the question's id and the gradient it asks for (or its own title)."""
    what = q.title or text(GradSymbol(grad_name(q.target), 1, 1))
    return what if q.id in (grad_name(q.target), q.target) and not q.title else f"{q.id}: {what}"


# --- answers -> questions ------------------------------------------------------


def resolve(assignment: Assignment, answers: Sequence[Answer]) -> dict[tuple[str, str], Answer]:
    """(student, question id) -> answer, every question known and answered at most once; else a located error."""
    by_target: dict[tuple[str, str], list[str]] = {}
    for q in assignment.questions.values():
        by_target.setdefault((q.spec, q.target), []).append(q.id)
    out: dict[tuple[str, str], Answer] = {}
    for a in answers:
        qid = a.question if a.question in assignment.questions else None
        if qid is None:
            hits = sorted({i for (spec, _), ids in by_target.items() for i in ids
                           if target_name(a.question, assignment.derivations[spec]) == assignment.questions[i].target})
            if len(hits) > 1:
                raise _at(a, f"'{a.question}' is asked by questions {', '.join(hits)}: name the question instead")
            if not hits:
                ids = list(assignment.questions)
                raise _at(a, f"unknown question '{a.question}'{suggest(a.question, ids)}; the questions are "
                             f"{', '.join(ids)}")
            qid = hits[0]
        key = (a.student, qid)
        if key in out:
            first = out[key]
            raise _at(a, f"a second answer of {a.student!r} to question {qid} (the first is at "
                         f"{first.file}:{first.line}): keep one")
        out[key] = a
    return out


def _at(a: Answer, message: str) -> SpecError:
    return SpecError(message, a.line, a.col, a.file, a.source_line)


# --- claims ----------------------------------------------------------------------


def normalized(answer: str) -> str:
    """The answer as judged: NFC, white space runs collapsed (they never change what an answer means)."""
    return " ".join(unicodedata.normalize("NFC", answer).split())


def _has_left_side(claim: str) -> bool:
    """Whether the answer already says what it is (``dW1 = ...``, ``∂L/∂W₁ = ...``): an ``=`` outside
    brackets that is no comparison (``axis=1`` in ``np.sum(dZ, axis=1)`` is inside them)."""
    depth = 0
    for i, ch in enumerate(claim):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "=" and depth == 0:
            before, after = claim[i - 1:i], claim[i + 1:i + 2]
            if before not in ("<", ">", "!", "=") and after != "=":
                return True
    return False


def claim_of(answer: str, target: str) -> str:
    """The claim an answer to "∂L/∂``target``" makes: ``dW1 = <answer>`` unless it names its own left side."""
    text_ = normalized(answer)
    return text_ if _has_left_side(text_) else f"{grad_name(target)} = {text_}"


def _other_target(result: ClaimResult, q: Question) -> ClaimResult:
    """An answer that names another gradient than the question's (``dW2 = ...`` for ∂L/∂W₁) is wrong."""
    if result.unusable or not result.name or result.name == q.target:
        return result
    why = f"this is an answer for {grad_name(result.name)}, but the question asks for {grad_name(q.target)}"
    return ClaimResult(name=q.target, claim_text=result.claim_text, verdict=False, diagnosis=why, error=math.inf,
                       exact_checked=False, mistake="target", file=result.file, line=result.line)


# --- grading -----------------------------------------------------------------------


def partial_kind(mistake: str | None) -> str | None:
    """The partial-credit kind of a mistake: its own, except that a loop's missing paths -- a shared
    weight's share from the last step only, a recursion without its own term or without the next
    step's share -- are the "paths" kind (right on some paths of a value used several times)."""
    return "paths" if mistake in LOOP_PATHS else mistake


def _score(q: Question, result: ClaimResult, kinds: frozenset[str]) -> tuple[float, str]:
    if result.verdict:
        return q.weight, "correct"
    if result.unusable:
        return 0.0, "unusable"
    if q.partial_credit > 0 and partial_kind(result.mistake) in kinds:
        return q.weight * q.partial_credit, "partial"
    return 0.0, "wrong"


@dataclass(frozen=True, order=True)
class _Job:
    """One key to judge: a claim, and with ``chain="own"`` the student's answers before it on the same
    spec (each with its question's chain mode): what its ``dOTHER`` stand for."""

    spec: str
    chain: str
    aliases: tuple[tuple[str, str], ...]
    claim: str
    earlier: tuple[tuple[str, str], ...] = ()


#: What judges the answers on one spec: a Verifier, or for a spec with a loop a TimeClaims.
Judge = Verifier | TimeClaims


def _judge_for(deriv: Derivation | TimeDerivation) -> Judge:
    return TimeClaims(deriv) if isinstance(deriv, TimeDerivation) else Verifier(deriv)


def _judge(verifier: Judge, job: _Job, a: Answer) -> ClaimResult:
    """The verdict on one job: its claim read (LaTeX, NumPy, aliases) and judged as verify does."""
    source = ClaimSource(job.claim, a.file, a.line)
    if isinstance(verifier, TimeClaims):  # the general form, in the spec language (aliases renamed)
        report, _ = check_time_claims(verifier.td.model, [source], judge=verifier, aliases=dict(job.aliases))
        return report.results[0]
    earlier = [(ClaimSource(c, a.file, a.line), mode) for c, mode in job.earlier]
    report, _ = check_claims(verifier.deriv, [source], chain=job.chain, aliases=dict(job.aliases), verifier=verifier,
                             earlier=earlier)
    return report[0]


@deep_stack
def grade_class(assignment: Assignment, answers: Sequence[Answer],
                progress: Callable[[int], Callable[[], None]] | None = None, dedupe: bool = True) -> ClassGrades:
    """Grade every student on every question (no answer: no points). ``progress(total)`` returns a
    function called once per distinct answer judged (a progress bar's update). ``dedupe=False``
    judges every answer, identical or not (to measure what judging each distinct one once saves)."""
    given = resolve(assignment, answers)
    questions = list(assignment.questions.values())
    students = sorted({s for s, _ in given})
    jobs: dict[tuple[str, str], _Job] = {}
    for student in students:
        # the student's answers so far per (spec, aliases), each with its question's chain mode
        earlier: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[str, str]]] = {}
        for q in questions:
            a = given.get((student, q.id))
            if a is None or not a.text:
                continue
            claim = claim_of(a.text, q.target)
            before = earlier.setdefault((q.spec, q.aliases), [])
            jobs[(student, q.id)] = _Job(q.spec, q.chain, q.aliases, claim, tuple(before) if q.chain == "own" else ())
            before.append((claim, q.chain))
    # each distinct job once, judged for the first answer that asked for it (students are sorted)
    units = {job: key for key, job in reversed(jobs.items())} if dedupe else {key: key for key in jobs}
    order = sorted(units, key=lambda u: (u if dedupe else jobs[u], units[u]))  # type: ignore[index]
    tick = progress(len(order)) if progress else None
    verifiers: dict[str, Judge] = {}
    verdicts: dict[object, ClaimResult] = {}
    for unit in order:
        key = units[unit]
        job = jobs[key]
        if job.spec not in verifiers:
            verifiers[job.spec] = _judge_for(assignment.derivations[job.spec])
        verdicts[unit] = _judge(verifiers[job.spec], job, given[key])
        if tick:
            tick()
    grades: dict[str, dict[str, Graded]] = {}
    for student in students:
        row = grades[student] = {}
        for q in questions:
            a = given.get((student, q.id))
            job = jobs.get((student, q.id))
            if a is None or job is None:
                row[q.id] = Graded(student, q, a, None, 0.0, "missing")
                continue
            result = _other_target(verdicts[job if dedupe else (student, q.id)], q)
            score, status = _score(q, result, assignment.partial_kinds)
            row[q.id] = Graded(student, q, a, result, score, status)
    return ClassGrades(assignment, grades, len(jobs), len(order), sorted(verifiers))


def format_points(x: float) -> str:
    """Points as a table shows them: ``2``, ``1.5``, ``0.333`` -- the same text for the same number."""
    return re.sub(r"\.?0+$", "", f"{x:.3f}") if x != int(x) else str(int(x))
