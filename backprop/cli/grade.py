"""``backprop grade SPEC|MANIFEST ANSWERS... [-o DIR]`` and ``backprop grade MANIFEST --gradescope``.

A class: every answer in the ANSWERS files (CSV, JSON, or one student's .txt) judged, scored and
written to DIR as a whole (scores.csv, verdicts.csv, summary.md, feedback/, gradescope/). An input
that does not read -- the manifest, a spec, a row of the answers -- is a located error, exit 2,
and nothing is graded or written. A student's wrong or unreadable answer is a grade, not an error.

One submission on Gradescope (``--gradescope``): the student's file from /autograder/submission,
the results to /autograder/results/results.json. There a submission that does not read is the
student's to fix: it gets no points and says why, and the autograder itself succeeds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from backprop.cli.options import path
from backprop.grading.answers import SUFFIXES, Answer, read_answers
from backprop.grading.grade import ClassGrades, grade_class
from backprop.grading.gradescope import RESULTS_FILE, SUBMISSION_DIR, failed_submission, results, results_text
from backprop.grading.manifest import Assignment, load_assignment, single_spec, target_name, targets_of
from backprop.grading.outputs import OUTPUT_FILES, class_files
from backprop.language.expression import suggest
from backprop.support.errors import SpecError, UsageError
from backprop.support.escape import path_word, shell_join
from backprop.support.extras import missing
from backprop.support.files import UnsafeWriteError, safe_write, spec_files
from backprop.support.rundir import RunDir
from backprop.verification.forms import parse_aliases
from backprop.verification.verify import CHAINS

HELP = {"grade": "grade a class's hand-derived gradients: a score table, a feedback page per student, "
                 "Gradescope results"}
EXAMPLES = {"grade": (
    "backprop grade two_layer_sigmoid answers.csv -o grades --partial 0.5",
    "backprop grade hw3.toml --gradescope    # in Gradescope's run_autograder",
)}

EPILOG = """\
ANSWERS: a CSV with a header naming student, question (or target) and answer; a JSON
list of such objects; or one student's .txt (dW1 = EXPR or QUESTION: EXPR, one a line).
Without a manifest, a question is a gradient of SPEC (dW1); a manifest (.toml or .json)
names several questions over several specs, with weights, chain modes, aliases and the
partial-credit policy (see docs/grading.md). On a spec with a loop a question is a
target such as dH[t] or dWh, and an answer is in the general form backprop verify reads
(dH[:, t] + Wh.T @ dZ[t+1], sum_t(dZ[t] @ H[t-1].T)).

DIR (default grades/NAME) receives scores.csv, verdicts.csv, summary.md,
feedback/STUDENT.md and .html, and gradescope/STUDENT/results.json. It is replaced as a
whole, and only if it holds nothing but a previous grading's files.

exit status: 0 graded (whatever the students' verdicts), 2 an input or option that
cannot be used (nothing written)
"""


def _alias(text: str) -> dict[str, str]:
    """``--alias A=p,Y=y``: course names -> spec names (as ``backprop verify --alias`` reads them)."""
    try:
        return parse_aliases(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction of the points from 0 to 1, got {text[:40]!r}")
    return value


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("spec", metavar="SPEC", help="a spec file or bundled example, or an assignment manifest (.toml, .json)")
    p.add_argument("answers", metavar="ANSWERS", nargs="*", help="answers: .csv, .json, or one student's .txt")
    p.add_argument("-o", "--output", type=path, metavar="DIR", help="where the results go (default grades/NAME)")
    p.add_argument("--alias", type=_alias, action="append", metavar="COURSE=SPEC[,...]",
                   help="course names for the spec's names, for every question (merged over the manifest's)")
    p.add_argument("--chain", choices=CHAINS, help="what dOTHER stands for (default: the manifest's, else true)")
    p.add_argument("--partial", type=_fraction, metavar="FRACTION",
                   help="partial credit: this fraction of a question's points for a wrong answer whose mistake is "
                        "only a factor or a missing path (default: the manifest's, else 0: off)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("Gradescope (one submission, inside Gradescope's autograder)")
    g.add_argument("--gradescope", action="store_true",
                   help="grade the one submission in --submission and write Gradescope's --results file")
    g.add_argument("--submission", type=path, metavar="DIR", default=SUBMISSION_DIR,
                   help=f"the student's files (default {SUBMISSION_DIR}): one .csv, .json or .txt of answers")
    g.add_argument("--results", type=path, metavar="FILE", default=RESULTS_FILE,
                   help=f"the results file to write (default {RESULTS_FILE})")
    g.add_argument("--force", action="store_true", help="overwrite --results FILE even if backprop did not write it")


def _settings(args: argparse.Namespace) -> dict[str, object]:
    settings: dict[str, object] = {}
    if args.chain:
        settings["chain"] = args.chain
    if args.partial is not None:
        settings["partial_credit"] = args.partial
    if args.alias:
        settings["aliases"] = {k: v for d in args.alias for k, v in d.items()}
    return settings


def _is_manifest(spec: str) -> bool:
    return spec.lower().endswith((".toml", ".json"))


def _assignment(spec: str, answers: list[Answer], settings: dict[str, object]) -> Assignment:
    """The manifest's assignment, or one question per gradient of SPEC that the answers name."""
    if _is_manifest(spec):
        return load_assignment(spec, settings)
    from backprop.engine.pipeline import get_notes_derivation

    deriv = get_notes_derivation(spec)  # a bad spec: its own located error; a loop's, derived through time
    targets = []
    for a in answers:
        name = target_name(a.question, deriv)
        if name is None:
            names = ["d" + t for t in targets_of(deriv)]
            raise SpecError(f"unknown question '{a.question}'{suggest(a.question, names)}: without a manifest, a "
                            f"question is a gradient of {deriv.model.name} ({', '.join(names)})",
                            a.line, a.col, a.file, a.source_line)
        targets.append(name)
    return single_spec(spec, targets, settings, deriv)


def _progress(quiet: bool) -> Callable[[int], Callable[[], None]] | None:
    """A tqdm bar on a terminal (tqdm comes with the [train] extra; without it, one line says so)."""
    if quiet or not sys.stderr.isatty():
        return None
    if missing("tqdm"):
        print("backprop: note: no progress bar without tqdm: pip install 'backprop-toolkit[train]'", file=sys.stderr)
        return None

    def start(total: int) -> Callable[[], None]:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="grading", unit="answer", file=sys.stderr, dynamic_ncols=True, leave=False)

        def tick() -> None:
            bar.update()
            if bar.n >= total:
                bar.close()

        if total == 0:
            bar.close()
        return tick

    return start


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.gradescope:
        return _gradescope(args, settings)
    if not args.answers:
        raise UsageError("no answers: give one or more ANSWERS files (.csv, .json, or a student's .txt)")
    answers = [a for p in args.answers for a in read_answers(p)]  # every file reads before anything is graded
    assignment = _assignment(args.spec, answers, settings)
    name = Path(args.spec).stem if _is_manifest(args.spec) else next(iter(assignment.derivations.values())).model.name
    out = Path(args.output) if args.output else Path("grades") / name
    inputs = [*assignment.inputs, *args.answers, *spec_files(args.spec)]
    try:
        run_dir = RunDir(out, OUTPUT_FILES, inputs=inputs, option="-o")
        run_dir.check()  # before the work: not after grading a class
        graded = grade_class(assignment, answers, progress=_progress(args.quiet))
        with run_dir as staging:
            for rel, text in class_files(graded).items():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            run_dir.commit()
    except UnsafeWriteError as e:
        raise UsageError(str(e)) from None
    print(_summary(graded))
    print(f"wrote {out}/scores.csv, verdicts.csv, summary.md, feedback/ and gradescope/ "
          f"({len(graded.students)} student{'s' * (len(graded.students) != 1)})")
    return 0


def _summary(graded: ClassGrades) -> str:
    """What was graded -- the same line for the same answers (no clock time: ``bench.grade_speed`` measures that)."""
    n = len(graded.students)
    mean = sum(graded.total(s) for s in graded.students) / n if n else 0.0
    return (f"graded {graded.answered} answers of {n} student{'s' * (n != 1)} to {len(graded.assignment.questions)} "
            f"questions ({graded.judged} distinct, each judged once); mean score {mean:.3g} of "
            f"{graded.assignment.max_score:g}")


def _submission_file(directory: str) -> str:
    """The one answers file of a submission (_StudentError, for the student to read, if not exactly one)."""
    d = Path(directory)
    if not d.is_dir():
        raise UsageError(f"--submission {directory}: no such directory (Gradescope puts the student's files in "
                         f"{SUBMISSION_DIR})")
    found = sorted(str(p) for p in d.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if len(found) != 1:
        raise _StudentError(f"the submission holds {'no' if not found else len(found)} answers files "
                            f"({', '.join(Path(f).name for f in found) or 'none'}): submit one .txt, .csv or .json "
                            "file of answers")
    return found[0]


class _StudentError(Exception):
    """The submission cannot be graded, and it is the student's to fix."""


def _gradescope(args: argparse.Namespace, settings: dict[str, object]) -> int:
    """Grade one submission as Gradescope's autograder: the instructor's inputs must read (else exit 2);
    the student's need not (no points, and the reason in the results)."""
    if len(args.answers) > 1:
        raise UsageError("--gradescope grades one submission: give at most one ANSWERS file")
    if not _is_manifest(args.spec):
        raise UsageError("--gradescope needs the assignment's manifest (.toml or .json): it fixes the questions "
                         "a submission answers")
    assignment = load_assignment(args.spec, settings)
    read = list(args.answers)
    try:
        file = args.answers[0] if args.answers else _submission_file(args.submission)
        read.append(file)
        answers = read_answers(file, student="submission")
        doc = results(grade_class(assignment, answers), "submission")
    except (SpecError, _StudentError) as e:
        message = e.format() if isinstance(e, SpecError) else str(e)
        doc = failed_submission(message.replace(str(Path(args.submission)) + "/", ""), assignment.title,
                                assignment.visibility)
    command = shell_join(["backprop", "grade", path_word(args.spec), "--gradescope", "--results",
                          path_word(args.results)])
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    try:
        safe_write(args.results, results_text(doc, command), inputs=[*assignment.inputs, *read],
                   force=args.force, option="--results")
    except UnsafeWriteError as e:
        raise UsageError(str(e)) from None
    print(f"score {doc['score']} of {assignment.max_score:g}; wrote {args.results}")
    return 0
