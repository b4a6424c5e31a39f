"""The files a graded class becomes, as one mapping of relative path -> content.

Kept apart from writing them (the command line stages them in a directory that replaces the old
one as a whole): the same class always gives the same mapping, byte for byte.
"""

from __future__ import annotations

import re

from backprop.grading.feedback import feedback_html, feedback_md
from backprop.grading.grade import ClassGrades
from backprop.grading.gradescope import results, results_text
from backprop.grading.tables import scores_csv, summary_md, verdicts_csv
from backprop.support.escape import file_stems

#: Every file ``backprop grade -o DIR`` writes; nothing else may be in DIR when it is replaced.
OUTPUT_FILES = re.compile(
    r"scores\.csv|verdicts\.csv|summary\.md|feedback/[A-Za-z0-9][A-Za-z0-9._-]*\.(?:md|html)"
    r"|gradescope/[A-Za-z0-9][A-Za-z0-9._-]*/results\.json")


def class_files(graded: ClassGrades) -> dict[str, str]:
    """scores.csv, verdicts.csv, summary.md, and per student feedback/<id>.md, .html and
    gradescope/<id>/results.json (``<id>`` the student's id made a safe, unique file name)."""
    stems = file_stems(graded.students)
    pages = {s: f"feedback/{stems[s]}.html" for s in graded.students}
    files = {"scores.csv": scores_csv(graded, pages), "verdicts.csv": verdicts_csv(graded),
             "summary.md": summary_md(graded)}
    for student in graded.students:
        stem = stems[student]
        files[f"feedback/{stem}.md"] = feedback_md(graded, student)
        files[f"feedback/{stem}.html"] = feedback_html(graded, student)
        files[f"gradescope/{stem}/results.json"] = results_text(results(graded, student))
    assert all(OUTPUT_FILES.fullmatch(name) for name in files)
    return files
