"""Students' answers, read from what a course platform exports: CSV, JSON, or one student's text file.

- CSV: a header naming ``student``, ``question`` (or ``target``) and ``answer`` in any order (other
  columns are ignored: a form's timestamp, an email), then one answer per row;
- JSON: a list of objects with the same keys;
- a text file (``.txt``): one student's answers -- the student is the file's name -- one a line,
  ``dW1 = EXPR`` (the question whose target is dW1; ``dH[t] = EXPR`` for a loop's step) or
  ``q3: EXPR`` (question q3), ``#`` comments and blank lines allowed: the claims file
  ``backprop verify --claims`` reads, so a student can check it before handing it in.

Every answer keeps where it came from (file, line, column of the answer), so an error in the file
-- a missing column, an unknown question, a second answer to one question -- points at its row,
compiler-style, and nothing is graded until the whole file reads. An empty answer is no answer.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from backprop.support.errors import SpecError
from backprop.support.reading import read_user_text

#: The columns (keys) an answers file must have; ``target`` may stand for ``question``.
COLUMNS = ("student", "question", "answer")
SUFFIXES = (".csv", ".json", ".txt")


@dataclass(frozen=True)
class Answer:
    """One student's answer to one question, as written, and where."""

    student: str
    question: str  # as written: a question id of the manifest, or a target (dW1)
    text: str
    file: str
    line: int
    col: int = 1  # of the question's field, for errors about it
    source_line: str | None = None


def read_answers(path: str, student: str | None = None) -> list[Answer]:
    """The answers in ``path`` (by its suffix: .csv, .json, .txt), every row checked.

    ``student``: whose answers these all are -- one submission, as Gradescope hands it over; a CSV
    or JSON file then needs no student column (one it has is not read). Default: the student
    column, and for a text file the file's name without suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise SpecError(f"answers are a .csv, .json or .txt file, not '{suffix or 'no suffix'}'", 0, 0, path)
    text = read_user_text(path, "answers file")
    if text.startswith("\ufeff"):  # spreadsheets save CSV with a byte-order mark
        text = text[1:]
    if suffix == ".csv":
        return _csv(path, text, student)
    if suffix == ".json":
        return _json(path, text, student)
    return _txt(path, text, student if student is not None else Path(path).stem)


def _field_columns(line: str) -> list[int]:
    """The 1-based column where each field of a CSV line starts (quotes respected)."""
    cols, quoted = [1], False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            cols.append(i + 2)
    return cols


def _csv(path: str, text: str, student: str | None) -> list[Answer]:
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise SpecError(f"not valid CSV: {e}", 1, 1, path, lines[0] if lines else None) from None
    if header is None:
        raise SpecError("empty: an answers CSV starts with a header naming student, question and answer", 0, 0, path)
    names = [h.strip().lower() for h in header]
    if "question" not in names and "target" in names:
        names[names.index("target")] = "question"
    missing = [c for c in COLUMNS if c not in names and not (c == "student" and student is not None)]
    if missing:
        raise SpecError(f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)}: the header must name "
                        f"student, question (or target) and answer; it has {', '.join(repr(h) for h in header)}",
                        1, 1, path, lines[0] if lines else None)
    twice = sorted({n for n in names if n in COLUMNS and names.count(n) > 1})
    if twice:
        raise SpecError(f"column {twice[0]!r} appears twice in the header", 1, 1, path, lines[0])
    index = {c: names.index(c) for c in COLUMNS if c in names}
    out = []
    while True:
        start = reader.line_num + 1  # the row's first line (a quoted answer may span several)
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise SpecError(f"not valid CSV: {e}", start, 1, path, _line(lines, start)) from None
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        source = _line(lines, start)
        if len(row) < len(header):
            raise SpecError(f"{len(row)} field{'s' * (len(row) != 1)} where the header has {len(header)}",
                            start, 1, path, source)
        cols = _field_columns(source or "")
        at = {c: cols[index[c]] if index[c] < len(cols) else 1 for c in index}
        who = student if student is not None else row[index["student"]]
        out.append(_answer(who, row[index["question"]], row[index["answer"]], path, start, at, source))
    return out


def _line(lines: list[str], n: int) -> str | None:
    return lines[n - 1] if 0 < n <= len(lines) else None


def _answer(student: str, question: str, answer: str, path: str, line: int, at: dict[str, int],
            source: str | None) -> Answer:
    if not student.strip():
        raise SpecError("no student: every answer names its student", line, at.get("student", 1), path, source)
    if not question.strip():
        raise SpecError("no question: every answer names its question (an id of the manifest, or a target "
                        "such as dW1)", line, at["question"], path, source)
    return Answer(student.strip(), question.strip(), answer.strip(), path, line, at["question"], source)


def _json(path: str, text: str, student: str | None) -> list[Answer]:
    """A JSON list of {student, question, answer} objects; each object's position is kept for errors."""
    lines = text.splitlines()
    decoder = json.JSONDecoder()

    def position(i: int) -> tuple[int, int]:
        return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1

    def fail(message: str, i: int) -> SpecError:
        line, col = position(i)
        return SpecError(message, line, col, path, _line(lines, line))

    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"not valid JSON: {e.msg}", e.lineno, e.colno, path, _line(lines, e.lineno)) from None
    i = _skip(text, 0)
    if text[i:i + 1] != "[":
        raise fail("answers in JSON are a list of objects with student, question and answer", i)
    i = _skip(text, i + 1)
    out = []
    while text[i:i + 1] != "]":
        item, end = decoder.raw_decode(text, i)
        if not isinstance(item, dict):
            raise fail("each answer is an object with student, question and answer", i)
        if "question" not in item and "target" in item:
            item = {**item, "question": item["target"]}
        if student is not None:
            item = {**item, "student": student}
        missing = [c for c in COLUMNS if c not in item]
        if missing:
            raise fail(f"this answer has no {', '.join(missing)}: each names student, question (or target) and answer", i)
        bad = [c for c in COLUMNS if not isinstance(item[c], str)]
        if bad:
            raise fail(f"{bad[0]} is a string here, not {type(item[bad[0]]).__name__}", i)
        line, col = position(i)
        out.append(_answer(item["student"], item["question"], item["answer"], path, line,
                           dict.fromkeys(COLUMNS, col), _line(lines, line)))
        i = _skip(text, end)
        if text[i:i + 1] == ",":
            i = _skip(text, i + 1)
    return out


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


#: ``q3: EXPR`` in a text file: the answer to question q3 (``dW1 = EXPR`` names its question by target).
_LABELLED = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*:(?!:)\s*")
_CLAIM = re.compile(r"\s*(d[A-Za-z_]\w*(?:\[\s*\w+\s*\])?)\s*=(?!=)")  # dH[t] = EXPR: a loop's step


def _txt(path: str, text: str, student: str) -> list[Answer]:
    if not student.strip():
        raise SpecError("a text file of answers is one student's: its name names the student", 0, 0, path)
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.split("#", 1)[0].strip():
            continue
        labelled, claim = _LABELLED.match(raw), _CLAIM.match(raw)
        if labelled is not None and claim is None:
            out.append(Answer(student.strip(), labelled.group(1), raw[labelled.end():].strip(), path, n,
                              labelled.start(1) + 1, raw))
        elif claim is not None:
            out.append(Answer(student.strip(), claim.group(1), raw.strip(), path, n, claim.start(1) + 1, raw))
        else:
            raise SpecError("a line of answers reads dNAME = EXPR (e.g. dW1 = dZ @ X.T) or QUESTION: EXPR "
                            "(e.g. q3: dZ @ X.T)", n, len(raw) - len(raw.lstrip()) + 1, path, raw)
    return out
