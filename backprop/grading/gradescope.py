"""Gradescope's autograder format: a ``results.json`` per submission.

Gradescope runs an autograder once per submission, in a container: the student's files are in
``/autograder/submission``, and the autograder writes ``/autograder/results/results.json``::

    {"score": 7.5, "output": "...", "visibility": "visible",
     "tests": [{"name": "q1: ∂L/∂W₁", "number": "1", "score": 2, "max_score": 2, "status": "passed",
                "output": "Your answer: ...", "visibility": "visible"}, ...]}

One test per question, its ``output`` the feedback page's lines for it (plain text: Gradescope
shows it as written). ``backprop grade --gradescope`` is that autograder; ``backprop grade -o DIR``
writes the same file for every student of a class (``DIR/gradescope/<student>/results.json``), to
check what Gradescope will show before the assignment opens, or to upload through its API.
"""

from __future__ import annotations

from typing import Any

from backprop.grading.feedback import answer_lines, spec_name
from backprop.grading.grade import ClassGrades, format_points, question_label
from backprop.support.escape import comment_text, json_text
from backprop.support.files import HASH_KEY, MARK, digest

#: Where Gradescope's harness puts things (https://gradescope-autograders.readthedocs.io/en/latest/specs/).
SUBMISSION_DIR = "/autograder/submission"
RESULTS_FILE = "/autograder/results/results.json"
METADATA_FILE = "/autograder/submission_metadata.json"


def _points(x: float) -> float | int:
    """A score as JSON shows it: 2 rather than 2.0, and 0.333 rather than 0.33333333333333331."""
    return int(x) if x == int(x) else float(format_points(x))


def results(graded: ClassGrades, student: str) -> dict[str, Any]:
    """The results object of one student's submission."""
    a = graded.assignment
    tests = []
    for number, g in enumerate(graded.grades[student].values(), 1):
        spec = spec_name(graded, g)
        lines = [f"{label}: {value}" for label, value, _ in answer_lines(g, spec)]
        tests.append({
            "name": f"{question_label(g.question)} ({spec})",
            "number": str(number),
            "score": _points(g.score),
            "max_score": _points(g.question.weight),
            "status": "passed" if g.status == "correct" else "failed",
            "output": "\n".join(lines),
            "visibility": a.visibility,
        })
    total = graded.total(student)
    return {
        "score": _points(total),
        "output": f"{a.title}: {format_points(total)} of {format_points(a.max_score)} points.",
        "visibility": a.visibility,
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def failed_submission(message: str, title: str, visibility: str) -> dict[str, Any]:
    """The results of a submission that cannot be graded (its file does not read): no points, and why --
    the student sees it and can submit again, rather than an autograder failure."""
    return {"score": 0, "output": f"{title}: your submission could not be graded.\n{message}",
            "visibility": visibility, "stdout_visibility": "hidden", "tests": []}


def results_text(doc: dict[str, Any], command: str = "") -> str:
    """``doc`` as JSON, marked as backprop's inside ``extra_data`` (a field Gradescope stores and does
    not interpret), so that a later run may replace the file and nothing else is ever replaced."""
    if not command:
        return json_text(doc) + "\n"
    body = json_text({**doc, "extra_data": {"backprop": "results"}}) + "\n"
    note = f"{MARK} -- do not edit; rewrite with: {comment_text(command)}; {HASH_KEY} {digest(body)}"
    anchor = '  "extra_data": {\n'
    i = body.index(anchor) + len(anchor)
    return body[:i] + f"    \"generated_by\": {json_text(note, indent=None)},\n" + body[i:]
