"""The instructor's views of a graded class: the score table, every verdict, and the class summary.

- ``scores.csv``: one row per student, one column per question and the total -- what a gradebook
  imports; the last column names the student's feedback page;
- ``verdicts.csv``: one row per student and question: the answer, how it was read, the verdict,
  the mistake's kind, the diagnosis, the points -- to sort and filter in a spreadsheet;
- ``summary.md``: per question, how many answers were right, partly right, wrong, and the
  mistakes the class made most, each with its count -- what to go over in the next lecture.

Every cell of user text goes through :func:`~backprop.support.escape.csv_cell` or the Markdown
escapes; rows are in a fixed order (students sorted, questions as the assignment lists them), so
the same answers give the same bytes.
"""

from __future__ import annotations

import csv
import io
from collections import Counter

from backprop.grading.grade import STATUSES, ClassGrades, Graded, format_points, question_label
from backprop.support.escape import csv_cell, markdown_code, markdown_text


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def scores_csv(graded: ClassGrades, pages: dict[str, str]) -> str:
    """``student, <question>..., total, out_of, feedback``: points per question, one student a row."""
    qids = list(graded.assignment.questions)
    out_of = format_points(graded.assignment.max_score)
    rows = [["student", *qids, "total", "out_of", "feedback"]]
    for student, row in graded.grades.items():
        rows.append([csv_cell(student), *(format_points(row[q].score) for q in qids),
                     format_points(graded.total(student)), out_of, pages[student]])
    return _csv(rows)


def verdicts_csv(graded: ClassGrades) -> str:
    """Every answer's verdict, one row per student and question (an unanswered question too)."""
    head = ["student", "question", "verdict", "points", "out_of", "mistake", "diagnosis", "answer", "read_as", "source"]
    rows = [head]
    for student, row in graded.grades.items():
        for g in row.values():
            r = g.result
            rows.append([
                csv_cell(student), csv_cell(g.question.id), g.status, format_points(g.score),
                format_points(g.question.weight), (r.mistake or "") if r and not r.verdict else "",
                csv_cell(r.diagnosis or "") if r and not r.verdict else "",
                csv_cell(g.answer.text) if g.answer else "", csv_cell(g.reading or ""),
                csv_cell(f"{g.answer.file}:{g.answer.line}") if g.answer else "",
            ])
    return _csv(rows)


#: How many of the most frequent mistakes the summary lists per question.
TOP_MISTAKES = 5


def summary_md(graded: ClassGrades) -> str:
    """The class at a glance: score spread, then per question its counts and most common mistakes."""
    a = graded.assignment
    totals = sorted(graded.total(s) for s in graded.students)
    lines = [f"# {markdown_text(a.title)}: class summary", ""]
    if totals:
        mid = len(totals) // 2
        median = totals[mid] if len(totals) % 2 else (totals[mid - 1] + totals[mid]) / 2
        lines.append(f"{len(totals)} students; total out of {format_points(a.max_score)}: median "
                     f"{format_points(median)}, lowest {format_points(totals[0])}, highest {format_points(totals[-1])}. "
                     f"{graded.answered} answers, {graded.judged} distinct (each judged once).")
    lines += ["", "| question | " + " | ".join(STATUSES) + " |", "|:---|" + "---:|" * len(STATUSES)]
    per_q = {qid: [row[qid] for row in graded.grades.values()] for qid in a.questions}
    for qid, gs in per_q.items():
        counts = Counter(g.status for g in gs)
        label = markdown_text(question_label(a.questions[qid])).replace("|", "\\|")
        lines.append(f"| {label} | " + " | ".join(str(counts[s]) for s in STATUSES) + " |")
    for qid, gs in per_q.items():
        q = a.questions[qid]
        lines += ["", f"## {markdown_text(question_label(q))}", ""]
        mistakes = Counter(_mistake_line(g) for g in gs if g.status in ("partial", "wrong", "unusable"))
        if not mistakes:
            lines.append("No wrong answers.")
            continue
        for (status, kind, diagnosis), n in sorted(mistakes.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_MISTAKES]:
            who = "student" if n == 1 else "students"
            lines.append(f"- {n} {who}, {status}{f' ({kind})' if kind else ''}: {markdown_text(diagnosis)}")
        rest = sum(mistakes.values()) - sum(n for _, n in mistakes.most_common(TOP_MISTAKES))
        if rest > 0:
            lines.append(f"- {rest} more, with other mistakes (see {markdown_code('verdicts.csv')})")
    return "\n".join(lines) + "\n"


def _mistake_line(g: Graded) -> tuple[str, str, str]:
    r = g.result
    assert r is not None
    return g.status, ("" if r.unusable else r.mistake or ""), r.diagnosis or ""
