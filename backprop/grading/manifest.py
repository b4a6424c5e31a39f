"""An assignment: which gradient each question asks for, on which spec, worth what, graded how.

Written by the instructor as a small TOML (or JSON) manifest::

    title = "Homework 3: backpropagation by hand"
    spec = "two_layer_sigmoid"          # the default spec of the questions (a bundled name or a path)

    [grading]
    partial_credit = 0.5                # off (0) unless set: see PARTIAL_KINDS
    aliases = { Yhat = "yhat" }         # course names -> spec names, for every question

    [questions.q1]
    target = "dW1"
    weight = 2
    chain = "own"                       # dOTHER is the student's own earlier answer

Every value is checked before any answer is graded, and a bad one is an error located in the
manifest (``hw3.toml:12:1: error: ...``): a grader that stops half way through a class, or grades
it against the wrong spec, costs an instructor more than one that refuses to start. A spec path
is relative to the manifest, so an assignment directory can move as a whole.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backprop.engine.derivation import Derivation
from backprop.engine.pipeline import get_notes_derivation
from backprop.engine.through_time import TimeDerivation
from backprop.language.expression import suggest
from backprop.support.bundled import SPEC_SUFFIX, example_names, examples_dir
from backprop.support.errors import SpecError
from backprop.support.reading import read_user_text
from backprop.verification.time_syntax import claim_targets
from backprop.verification.verify import CHAINS, not_yet_chained

#: The mistakes (``ClaimResult.mistake``) that may earn partial credit, and what each means. The
#: default is the two where the structure of the answer is right: only a constant or a size
#: factor is off (a missing 1/m, a 2 of a square) or a path of a variable used twice is missing.
PARTIAL_KINDS: dict[str, str] = {
    "factor": "right but for a constant or size factor (a missing 1/m, 2, 1/√k)",
    "paths": "right on some paths of a variable used several times, missing or mis-scaling another",
    "sign": "the negative of the correct gradient",
    "near": "agrees to about 1e-4: a stabilizing epsilon or a rounded constant",
    "transpose": "the transpose of the correct gradient (a square one, where shapes cannot tell)",
    "sum": "right but summed over the wrong axis, or not summed over the examples",
}
DEFAULT_PARTIAL_KINDS = ("factor", "paths")

_TOP_KEYS = ("title", "spec", "grading", "questions")
_GRADING_KEYS = ("partial_credit", "partial_kinds", "chain", "aliases", "visibility")
_QUESTION_KEYS = ("spec", "target", "weight", "chain", "aliases", "partial_credit", "title")
#: Gradescope's visibility of a test's result to the student.
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


@dataclass(frozen=True)
class Question:
    """One question: ∂L/∂``target`` on ``spec``."""

    id: str
    spec: str  # what get_notes_derivation reads: a path or a bundled example's name
    target: str  # NAME, as in dNAME; for a loop's step, NAME[t] (dH[t]), or a first state's H[0]
    weight: float = 1.0
    chain: str = "true"
    aliases: tuple[tuple[str, str], ...] = ()
    partial_credit: float = 0.0  # the fraction for a wrong answer whose mistake is in the assignment's kinds
    title: str = ""
    line: int = 0  # where the manifest defines it (0: no manifest)


@dataclass
class Assignment:
    """The questions, in order, and how wrong answers are scored."""

    title: str
    questions: dict[str, Question]
    partial_kinds: frozenset[str] = frozenset(DEFAULT_PARTIAL_KINDS)
    visibility: str = "visible"
    path: str | None = None  # the manifest (None: one spec, questions named by their targets)
    #: spec -> its derivation (through time, for a spec with a loop)
    derivations: dict[str, Derivation | TimeDerivation] = field(default_factory=dict)
    #: the files the assignment was read from (never written over)
    inputs: list[str] = field(default_factory=list)

    @property
    def max_score(self) -> float:
        return sum(q.weight for q in self.questions.values())


_HEADER = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


def _dotted(path: str) -> tuple[str, ...]:
    """``questions . "q 1"`` -> ("questions", "q 1")."""
    return tuple(m.group(1) or m.group(2) or m.group(3)
                 for m in re.finditer(r'"([^"]*)"|\'([^\']*)\'|([^.\s"\']+)', path))


class _Located:
    """Positions of tables and keys in the manifest's text, for errors (tomllib and json give none)."""

    def __init__(self, path: str, text: str, is_json: bool) -> None:
        self.path, self.lines, self.is_json = path, text.splitlines(), is_json

    def where(self, table: tuple[str, ...] = (), key: str | None = None) -> tuple[int, int]:
        """(line, column) of ``key`` in ``table`` (or of the table), as near as it can be found; (1, 1) else."""
        if self.is_json:
            return self._where_json(table, key)
        start, end = 0, len(self.lines)
        if table:
            heads = [(i, _dotted(m.group(1))) for i, line in enumerate(self.lines) if (m := _HEADER.match(line))]
            hit = next((i for i, path in heads if path == table), None)
            if hit is None:  # an inline table or dotted keys: the line that names its last part
                found = self._find(rf'^\s*(?:[\w"\'.\s-]*\.\s*)?["\']?{re.escape(table[-1])}["\']?\s*[=.]', 0, end)
                if found is None:
                    return (1, 1)
                start, end = found[0] - 1, found[0]
            else:
                start, end = hit, next((i for i, _ in heads if i > hit), len(self.lines))
        if key is None:
            return (start + 1, 1)
        found = self._find(rf'(?:^|[{{,])\s*["\']?{re.escape(key)}["\']?\s*=(?!=)', start, end)
        return found or (start + 1, 1)

    def _where_json(self, table: tuple[str, ...], key: str | None) -> tuple[int, int]:
        start, found = 0, (1, 1)
        for part in (*table, *([key] if key else [])):
            hit = self._find(rf'"{re.escape(part)}"\s*:', start, len(self.lines))
            if hit is None:
                break
            start, found = hit[0] - 1, hit
        return found

    def _find(self, pattern: str, start: int, end: int) -> tuple[int, int] | None:
        """(line, column) of the first match in lines [start, end), the column at the name it matched."""
        rx = re.compile(pattern)
        for i in range(start, end):
            m = rx.search(self.lines[i])
            if m is not None:
                text = m.group()
                return i + 1, m.start() + len(text) - len(text.lstrip(" \t{,")) + 1
        return None

    def error(self, message: str, table: tuple[str, ...] = (), key: str | None = None) -> SpecError:
        line, col = self.where(table, key)
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return SpecError(message, line, col, self.path, source)


def load_assignment(path: str, settings: Mapping[str, Any] | None = None) -> Assignment:
    """The assignment a manifest (``.toml`` or ``.json``) describes, every spec loaded and every value checked.

    ``settings`` (from the command line: ``chain``, ``partial_credit``, ``aliases``) replace the
    manifest's ``[grading]`` ones -- aliases are merged, the command line's winning -- but not a
    question's own."""
    text = read_user_text(path, "manifest")
    is_json = path.lower().endswith(".json")
    loc = _Located(path, text, is_json)
    try:
        doc = json.loads(text) if is_json else tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"not valid JSON: {e.msg}", e.lineno, e.colno, path, loc.lines[e.lineno - 1]
                        if 0 < e.lineno <= len(loc.lines) else None) from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e)) or "not valid TOML"
        raise SpecError(f"not valid TOML: {message}", line, col, path,
                        loc.lines[line - 1] if 0 < line <= len(loc.lines) else None) from None
    if not isinstance(doc, dict):
        raise loc.error("a manifest is a table (a JSON object) with 'questions' and, optionally, 'title', "
                        "'spec' and 'grading'")
    return _assignment(doc, loc, Path(path).parent, dict(settings or {}))


def _keys(doc: Mapping[str, Any], known: tuple[str, ...], loc: _Located, table: tuple[str, ...], what: str) -> None:
    for key in doc:
        if key not in known:
            raise loc.error(f"unknown key '{key}' in {what}{suggest(key, list(known))}; known keys: {', '.join(known)}",
                            table, key)


def _assignment(doc: dict[str, Any], loc: _Located, base: Path, settings: dict[str, Any]) -> Assignment:
    _keys(doc, _TOP_KEYS, loc, (), "the manifest")
    grading = doc.get("grading", {})
    if not isinstance(grading, dict):
        raise loc.error("'grading' is a table of settings", (), "grading")
    _keys(grading, _GRADING_KEYS, loc, ("grading",), "[grading]")
    if "aliases" in settings and isinstance(grading.get("aliases", {}), dict):
        settings["aliases"] = {**grading.get("aliases", {}), **settings["aliases"]}
    grading = {**grading, **settings}
    at = ("grading",)
    partial = _fraction(grading.get("partial_credit", 0), loc, at, "partial_credit")
    chain = _choice(grading.get("chain", "true"), CHAINS, loc, at, "chain")
    aliases = _aliases(grading.get("aliases", {}), loc, at)
    kinds = grading.get("partial_kinds", list(DEFAULT_PARTIAL_KINDS))
    if not isinstance(kinds, list) or not all(isinstance(k, str) and k in PARTIAL_KINDS for k in kinds):
        raise loc.error(f"partial_kinds is a list of mistakes from: {', '.join(PARTIAL_KINDS)}", at, "partial_kinds")
    visibility = _choice(grading.get("visibility", "visible"), VISIBILITIES, loc, at, "visibility")
    title = doc.get("title", Path(loc.path).stem)
    if not isinstance(title, str):
        raise loc.error("'title' is a string", (), "title")
    default_spec = doc.get("spec")
    if default_spec is not None and not isinstance(default_spec, str):
        raise loc.error("'spec' is a bundled example's name or a path relative to the manifest", (), "spec")
    questions = doc.get("questions")
    if not isinstance(questions, dict) or not questions:
        raise loc.error("no questions: add a table [questions.q1] with at least a target (e.g. target = \"dW1\")",
                        (), "questions")
    assignment = Assignment(title, {}, frozenset(kinds), visibility, loc.path, inputs=[loc.path])
    for qid, q in questions.items():
        table = ("questions", qid)
        if not isinstance(q, dict):
            raise loc.error(f"question '{qid}' is a table with a target, e.g. [questions.{qid}] target = \"dW1\"", table)
        _keys(q, _QUESTION_KEYS, loc, table, f"question '{qid}'")
        spec_text = q.get("spec", default_spec)
        if spec_text is None:
            raise loc.error(f"question '{qid}' names no spec: give it spec = \"...\" or a top-level spec", table)
        if not isinstance(spec_text, str):
            raise loc.error("spec is a bundled example's name or a path relative to the manifest", table, "spec")
        spec = _resolve_spec(spec_text, base, loc, table if "spec" in q else (), "spec")
        deriv = _derivation(spec, assignment)
        target = _target(q.get("target"), deriv, loc, table, qid)
        weight = q.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (math.isfinite(weight) and weight > 0):
            raise loc.error(f"weight is a positive number, got {weight!r}", table, "weight")
        q_title = q.get("title", "")
        if not isinstance(q_title, str):
            raise loc.error("title is a string", table, "title")
        merged = dict(aliases) | dict(_aliases(q.get("aliases", {}), loc, table))
        q_chain = _choice(q.get("chain", chain), CHAINS, loc, table, "chain")
        if isinstance(deriv, TimeDerivation) and q_chain != "true":
            raise _loop_chain(deriv, q_chain, loc, table if "chain" in q else at, "chain" in q or "chain" not in settings)
        assignment.questions[str(qid)] = Question(
            id=str(qid), spec=spec, target=target, weight=float(weight), chain=q_chain,
            aliases=tuple(sorted(merged.items())),
            partial_credit=_fraction(q.get("partial_credit", partial), loc, table, "partial_credit"),
            title=q_title, line=loc.where(table)[0])
    return assignment


def _loop_chain(td: TimeDerivation, chain: str, loc: _Located, table: tuple[str, ...], in_manifest: bool) -> SpecError:
    """A chain mode a loop does not take: located at the manifest's ``chain`` that set it, or (set by
    ``--chain``) at the loop, as ``backprop verify --chain`` says it."""
    if not in_manifest:
        return not_yet_chained(td.model, chain)
    r = td.model.loops[0]
    return loc.error(f"chain = {chain!r} is not built for a loop yet ({td.model.name} has one, at {td.model.path}:{r.line}): "
                     "in an answer about a loop dOTHER is the true gradient (chain = \"true\")", table, "chain")


def _fraction(value: Any, loc: _Located, table: tuple[str, ...], key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise loc.error(f"{key} is a fraction of the points from 0 (off) to 1, got {value!r}", table, key)
    return float(value)


def _choice(value: Any, choices: tuple[str, ...], loc: _Located, table: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise loc.error(f"{key} is one of {', '.join(choices)}, got {value!r}", table, key)
    return str(value)


def _aliases(value: Any, loc: _Located, table: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v
                                              for k, v in value.items()):
        raise loc.error("aliases is a table of course names to spec names, e.g. aliases = { A = \"p\", Y = \"y\" }",
                        table, "aliases")
    return tuple(sorted(value.items()))


def _resolve_spec(spec: str, base: Path, loc: _Located, table: tuple[str, ...], key: str) -> str:
    """A path relative to the manifest if that file exists, else a bundled example's name."""
    here = base / spec
    if here.is_file():
        return str(here)
    if not spec.endswith(SPEC_SUFFIX) and "/" not in spec and (examples_dir() / f"{spec}{SPEC_SUFFIX}").is_file():
        return spec
    raise loc.error(f"unknown spec '{spec}': no file {here} and no bundled example of that name"
                    f"{suggest(spec, example_names())} (bundled: {', '.join(example_names())})", table, key)


def _derivation(spec: str, assignment: Assignment) -> Derivation | TimeDerivation:
    if spec not in assignment.derivations:
        assignment.derivations[spec] = get_notes_derivation(spec)  # a bad spec: its own located error
        if Path(spec).is_file():
            assignment.inputs.append(spec)
    return assignment.derivations[spec]


def targets_of(deriv: Derivation | TimeDerivation) -> list[str]:
    """The gradients a question may ask for: the params, then the intermediates, in the derivation's order
    (with a loop, the step's values at a general t before them: ``H[t]``, ``Z[t]``)."""
    if isinstance(deriv, TimeDerivation):
        return claim_targets(deriv)
    steps = [s.target for s in deriv.steps]
    params = [p for p in deriv.params if p in steps]
    return params + [t for t in steps if t not in params]


def target_name(text: str, deriv: Derivation | TimeDerivation) -> str | None:
    """``dW1`` or ``W1`` -> ``W1`` when the derivation has that gradient, else None (``dH[ t ]`` is ``H[t]``)."""
    text = "".join(text.split()) if "[" in text else text.strip()
    names = targets_of(deriv)
    if text in names:
        return text
    if text.startswith("d") and text[1:] in names:
        return text[1:]
    return None


def _target(value: Any, deriv: Derivation | TimeDerivation, loc: _Located, table: tuple[str, ...], qid: str) -> str:
    names = targets_of(deriv)
    if value is None:
        found = target_name(str(qid), deriv)  # [questions.dW1] needs no target = "dW1"
        if found is not None:
            return found
        raise loc.error(f"question '{qid}' has no target: which gradient does it ask for? (one of "
                        f"{', '.join('d' + n for n in names)})", table)
    found = target_name(value, deriv) if isinstance(value, str) else None
    if found is None:
        raise loc.error(f"{deriv.model.name} has no gradient {value!r}{suggest(str(value), ['d' + n for n in names])}; "
                        f"targets: {', '.join('d' + n for n in names)}", table, "target")
    return found


def single_spec(spec: str, targets: list[str], settings: Mapping[str, Any] | None = None,
                deriv: Derivation | TimeDerivation | None = None) -> Assignment:
    """Without a manifest: one spec, and a question per target the answers name (``dW1``), weight 1 each,
    in the derivation's order (params first) so that the score table's columns do not depend on the CSV.
    ``settings`` are the command line's, as for :func:`load_assignment`; ``deriv``: the spec's, if derived
    already."""
    settings = settings or {}
    deriv = get_notes_derivation(spec) if deriv is None else deriv
    chain, partial = settings.get("chain", "true"), float(settings.get("partial_credit", 0.0))
    if isinstance(deriv, TimeDerivation) and chain != "true":
        raise not_yet_chained(deriv.model, chain)
    aliases = tuple(sorted(settings.get("aliases", {}).items()))
    assignment = Assignment(deriv.model.name, {}, path=None, derivations={spec: deriv})
    if Path(spec).is_file():
        assignment.inputs.append(spec)
    order = {n: i for i, n in enumerate(targets_of(deriv))}
    for name in sorted(set(targets), key=order.__getitem__):
        assignment.questions["d" + name] = Question(id="d" + name, spec=spec, target=name, chain=chain,
                                                    aliases=aliases, partial_credit=partial)
    return assignment
