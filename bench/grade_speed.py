"""How long ``backprop grade`` takes on a class: 200 students × 6 questions on the CS230 examples.

The class is synthetic but shaped like a real one (:func:`synthetic_class`): each question has the
usual right answers (closed and recursive forms) and the usual mistakes -- a missing 1/m, a
transpose, the wrong activation derivative, a sum over the wrong axis, a sign, an unreadable
line, no answer -- drawn with a fixed seed, each student writing in one of two styles (spaced or
compact, as students do). The assignment is the bundled sample's (``examples/class/hw3.toml``:
six questions over four specs, two of them graded with ``chain = "own"``).

Measured, each the median of ``--repeats`` fresh processes:

- **grade**: ``backprop grade hw3.toml class.csv -o DIR -q``, end to end (start-up, imports,
  derivations, judging, writing 600 files);
- the judging only (after imports and derivations), each way in its own processes so that no
  cache of one warms another: as ``backprop grade`` does it (one Verifier per spec, each distinct
  answer once), with every answer judged (one Verifier per spec, no dedupe), and as a script
  calling ``backprop.verify`` per student and spec would (a Verifier per call).

``python -m bench.grade_speed`` prints the table and writes it into ``docs/grading.md`` (between
its ``<!-- grade-speed -->`` markers). Target: the class graded in under 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "examples" / "class" / "hw3.toml"
DOC = ROOT / "docs" / "grading.md"
TARGET_SECONDS = 30.0

#: question -> (weight, answer): the right forms, then the usual mistakes, in the spec language, LaTeX,
#: NumPy and the derivation's Unicode (H is the course's name for A: the sample manifest's alias).
BANK: dict[str, list[tuple[float, str]]] = {
    "q1": [(38, "2/m * sum((yhat - y) * x)"), (8, "sum(dyhat * x)"), (5, "dyhat @ x.T"),
           (5, "2 * mean((yhat - y) * x)"), (4, r"\frac{2}{m} (\hat{y} - y) x^T"), (3, "np.sum(dyhat * x)"),
           (8, "2 * sum((yhat - y) * x)"), (3, r"2 (\hat{y} - y) x^T"), (6, "1/m * sum((yhat - y) * x)"),
           (6, "2/m * sum((y - yhat) * x)"), (7, "2/m * (yhat - y) * x"), (3, "2/m * sum(yhat - y)"),
           (3, "2/m * sum((yhat - y) * x")],
    "q2": [(38, "2/m * (yhat - y) @ X.T"), (10, "dyhat @ X.T"), (3, "(X @ dyhat.T).T"),
           (4, r"\frac{2}{m} (\hat{y} - y) X^T"), (2, "∂L/∂ŷ Xᵀ"), (12, "2 * (yhat - y) @ X.T"),
           (7, "2/m * X @ (yhat - y).T"), (3, "np.dot(X, dyhat.T)"), (6, "2/m * (y - yhat) @ X.T"),
           (6, "(yhat - y) @ X.T / m"), (3, "2/m * (yhat - y) @ X"), (3, "dyhat @@ X.T")],
    "q3": [(35, "(w2.T @ (2/m * (yhat - y))) @ X.T"), (12, "dZ @ X.T"), (8, "w2.T @ dyhat @ X.T"),
           (3, "∂L/∂Z Xᵀ"), (8, "(w2.T @ (2 * (yhat - y))) @ X.T"), (2, r"w_2^T (2 (\hat{y} - y)) X^T"),
           (7, "X @ dZ.T"), (3, "np.dot(X, dZ.T)"), (7, "(w2.T @ (yhat - y)) @ X.T"), (5, "dZ @ X.T / m"),
           (5, "(w2 @ dyhat) @ X.T")],
    "q4": [(30, "dA * A * (1 - A)"), (15, "(w2.T @ (2/m * (yhat - y))) * A * (1 - A)"),
           (5, "dA * sigmoid(Z) * (1 - sigmoid(Z))"), (5, "w2.T @ dyhat * A * (1 - A)"), (3, r"\sigma'(Z) \odot dH"),
           (2, "np.multiply(dA, A * (1 - A))"), (7, "dA * Z * (1 - Z)"), (3, "∂L/∂A ⊙ Z ⊙ (1 − Z)"),
           (6, "dA * A * (1 + A)"), (2, r"dH \odot H \odot (1 + H)"), (8, "dA"),
           (9, "(w2.T @ (2 * (yhat - y))) * A * (1 - A)"), (5, "dA * (1 - A)")],
    "q5": [(60, "dZ @ X.T"), (5, "dZ X^T"), (3, "np.dot(dZ, X.T)"), (2, "∂L/∂Z Xᵀ"), (10, "X @ dZ.T"),
           (5, "dZ @ X.T / m"), (10, "((w2.T @ (2/m * (yhat - y))) * A * (1 - A)) @ X.T"), (5, "dA @ X.T")],
    "q6": [(50, "sum(dZ, axis=1)"), (10, "dZ @ ones(m, 1)"), (5, "np.sum(dZ, axis=1, keepdims=True)"),
           (10, "sum(dZ, axis=0)"), (2, "np.sum(dZ, axis=0, keepdims=True)"), (3, "np.sum(dZ, axis=1)"), (8, "dZ"),
           (8, "mean(dZ, axis=1)"), (4, "sum(dZ)")],
}
#: The share of questions a student leaves blank.
BLANK = 0.03


def compact(answer: str) -> str:
    """The same answer typed without spaces around operators: ``2/m*(yhat-y)@X.T``."""
    return re.sub(r"\s*([-+*/@=,])\s*", r"\1", answer)


def synthetic_class(students: int = 200, seed: int = 0) -> list[dict[str, str]]:
    """Rows of (student, question, answer): each student answers the six questions in one style."""
    rng = random.Random(seed)
    rows = []
    for i in range(1, students + 1):
        style = compact if rng.random() < 0.3 else (lambda a: a)
        for question, bank in BANK.items():
            answer = "" if rng.random() < BLANK else rng.choices([a for _, a in bank], [w for w, _ in bank])[0]
            rows.append({"student": f"s{i:03d}", "question": question, "answer": style(answer)})
    return rows


def write_csv(rows: list[dict[str, str]], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["student", "question", "answer"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def time_cli(answers: Path, out: Path, repeats: int) -> list[float]:
    """Wall seconds of ``backprop grade`` in fresh processes."""
    env = _env()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "backprop", "grade", str(MANIFEST), str(answers), "-o", str(out), "-q"],
                       check=True, env=env, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def _judge_child(variant: str, answers: str) -> float:
    """Run in a child process: seconds to judge the class one way, after the derivations are built."""
    import backprop
    from backprop.grading.answers import read_answers
    from backprop.grading.grade import claim_of, grade_class
    from backprop.grading.manifest import load_assignment

    assignment = load_assignment(str(MANIFEST))
    given = read_answers(answers)
    start = time.perf_counter()
    if variant == "naive":  # backprop.verify(spec, the student's claims on it), chain as the questions ask
        by_student: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for a in given:
            q = assignment.questions[a.question]
            if a.text:
                by_student.setdefault((a.student, q.spec), []).append((claim_of(a.text, q.target), q.chain))
        for (_, spec), claims in by_student.items():
            chain = "own" if any(mode == "own" for _, mode in claims) else "true"
            backprop.verify(assignment.derivations[spec], [c for c, _ in claims], chain=chain)
    else:
        graded = grade_class(assignment, given, dedupe=variant == "shared")
        print(graded.answered, graded.judged, file=sys.stderr)
    return time.perf_counter() - start


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))


def time_judging(answers: Path, repeats: int) -> dict[str, float | int]:
    """The judging alone, three ways, each in fresh processes (no cache of one warms another): as grade
    does it, without its dedupe, and as a script calling backprop.verify per student and spec would."""
    out: dict[str, float | int] = {}
    for variant in ("shared", "no_dedupe", "naive"):
        times = []
        for _ in range(repeats):
            r = subprocess.run([sys.executable, "-m", "bench.grade_speed", "--child", variant, str(answers)],
                               check=True, env=_env(), capture_output=True, text=True, cwd=ROOT)
            times.append(float(r.stdout))
            if variant == "shared":
                out["answers"], out["distinct"] = (int(x) for x in r.stderr.split())
        out[variant] = statistics.median(times)
    return out


def table(cli: list[float], judging: dict[str, float | int], students: int) -> str:
    med = statistics.median(cli)
    ok = "met" if med < TARGET_SECONDS else "MISSED"
    return "\n".join([
        f"{students} students × {len(BANK)} questions = {judging['answers']} answers (the rest left blank), "
        f"{judging['distinct']} distinct: each judged once.",
        "",
        "| what | seconds |",
        "|:---|---:|",
        f"| `backprop grade` end to end, fresh process (median of {len(cli)}) | **{med:.1f}** (target < "
        f"{TARGET_SECONDS:.0f}: {ok}) |",
        f"| judging only, as `grade` does: a Verifier per spec, each distinct answer once | {judging['shared']:.2f} |",
        f"| judging only, a Verifier per spec, every answer (no dedupe) | {judging['no_dedupe']:.2f} |",
        f"| judging only, `backprop.verify` per student and spec (a Verifier per call) | {judging['naive']:.2f} |",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.grade_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-write", action="store_true", help=f"print only; do not update {DOC.relative_to(ROOT)}")
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "CSV"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(_judge_child(*args.child))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        answers = Path(tmp) / "class.csv"
        write_csv(synthetic_class(args.students), answers)
        cli = time_cli(answers, Path(tmp) / "out", args.repeats)
        judging = time_judging(answers, args.repeats)
    text = table(cli, judging, args.students)
    print(text)
    if not args.no_write:
        doc = DOC.read_text(encoding="utf-8")
        new = re.sub(r"(<!-- grade-speed -->\n)(?:.*?\n)?(<!-- /grade-speed -->)",
                     lambda m: m.group(1) + text + "\n" + m.group(2), doc, flags=re.S)
        DOC.write_text(new, encoding="utf-8")
    return 0 if statistics.median(cli) < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
