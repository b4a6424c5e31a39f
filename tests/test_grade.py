"""Grading a class (``backprop.grading``): answers files and manifests read with located errors,
each distinct answer judged once, scores with the partial-credit policy, own chains per student,
and outputs that are the same bytes for the same class and safe whatever the students' ids."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from backprop.grading.answers import read_answers
from backprop.grading.grade import claim_of, grade_class, normalized
from backprop.grading.manifest import PARTIAL_KINDS, load_assignment, single_spec
from backprop.grading.outputs import OUTPUT_FILES, class_files
from backprop.support.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent
CLASS = ROOT / "examples" / "class"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(fn, *args) -> SpecError:  # noqa: ANN001
    with pytest.raises(SpecError) as info:
        fn(*args)
    return info.value


# ---------------------------------------------------------------------------
# Answers files
# ---------------------------------------------------------------------------


def test_csv_with_extra_columns_a_bom_quotes_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", '\ufeffTimestamp,Target,Student,Answer\n'
                 '1,dW1,ada,"sum(dZ, axis=1)"\n\n2,db1,ada,"dZ @\nones(m, 1)"\n3,dw2,ben,\n')
    got = [(a.student, a.question, a.text, a.line) for a in read_answers(path)]
    assert got == [("ada", "dW1", "sum(dZ, axis=1)", 2), ("ada", "db1", "dZ @\nones(m, 1)", 4), ("ben", "dw2", "", 6)]


@pytest.mark.parametrize(("text", "where", "phrase"), [
    ("student,answer\nada,x\n", (1, 1), "missing column question"),
    ("student,question,answer\nada,dW1\n", (2, 1), "2 fields where the header has 3"),
    ("student,question,answer\n ,dW1,x\n", (2, 1), "no student"),
    ("student,question,answer\nada,,x\n", (2, 5), "no question"),
    ("student,question,question,answer\n", (1, 1), "column 'question' appears twice"),
])
def test_csv_errors_point_at_the_row(tmp_path: Path, text: str, where: tuple[int, int], phrase: str) -> None:
    path = write(tmp_path, "a.csv", text)
    e = error_of(read_answers, path)
    assert (e.line, e.col) == where and phrase in e.message and e.file == path


def test_json_answers_and_their_errors(tmp_path: Path) -> None:
    ok = write(tmp_path, "a.json", '[\n  {"student": "ada", "target": "dW1", "answer": "dZ @ X.T"},\n'
               '  {"student": "ben", "question": "q2", "answer": "dZ"}\n]\n')
    assert [(a.student, a.question, a.line, a.col) for a in read_answers(ok)] == [("ada", "dW1", 2, 3),
                                                                                    ("ben", "q2", 3, 3)]
    for text, where, phrase in [
        ('{"student": "ada"}', (1, 1), "a list of objects"),
        ('[1]', (1, 2), "each answer is an object"),
        ('[\n {"student": "ada", "answer": "x"}]', (2, 2), "has no question"),
        ('[{"student": "ada", "question": "q1", "answer": 3}]', (1, 2), "answer is a string here, not int"),
        ('[{"student": "ada",\n "question": "q1" "answer": 3}]', (2, 19), "not valid JSON: Expecting ',' delimiter"),
    ]:
        e = error_of(read_answers, write(tmp_path, "b.json", text))
        assert ((e.line, e.col), phrase in e.message) == (where, True), (text, e.format())


def test_a_students_text_file(tmp_path: Path) -> None:
    path = write(tmp_path, "sub/ines.txt", "# homework 3\n\nq1: 2/m * sum(dyhat)  # mine\ndW1 = dZ @ X.T\n")
    assert [(a.student, a.question, a.text, a.line) for a in read_answers(path)] == [
        ("ines", "q1", "2/m * sum(dyhat)  # mine", 3), ("ines", "dW1", "dW1 = dZ @ X.T", 4)]
    e = error_of(read_answers, write(tmp_path, "x.txt", "dZ @ X.T\n"))
    assert (e.line, e.col) == (1, 1) and "a line of answers reads dNAME = EXPR" in e.message
    assert "not '.xlsx'" in error_of(read_answers, write(tmp_path, "x.xlsx", "")).message


def test_one_submission_needs_no_student_column(tmp_path: Path) -> None:
    path = write(tmp_path, "answers.csv", "question,answer\nq1,dZ\n")
    assert [a.student for a in read_answers(path, student="submission")] == ["submission"]


# ---------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------

MANIFEST = """\
title = "HW"
spec = "two_layer_sigmoid"
[grading]
partial_credit = 0.25
aliases = { Yhat = "yhat" }

[questions.q1]
target = "dW1"
weight = 2
chain = "own"
[questions.db1]
spec = "net.spec"
partial_credit = 0
aliases = { B = "b1" }
"""
NET = "input X[n, m]\ninput y[1, m]\nparam W1[k, n]\nparam b1[k, 1]\nloss = sum((W1 @ X + b1 - y)**2) / m\n"


def test_manifest_reads_every_setting(tmp_path: Path) -> None:
    write(tmp_path, "hw/net.spec", NET)
    a = load_assignment(write(tmp_path, "hw/hw.toml", MANIFEST), {"aliases": {"A": "A"}})
    q1, q2 = a.questions.values()
    assert (a.title, a.max_score, list(a.questions)) == ("HW", 3.0, ["q1", "db1"])
    assert (q1.spec, q1.target, q1.weight, q1.chain, q1.partial_credit, q1.line) == (
        "two_layer_sigmoid", "W1", 2.0, "own", 0.25, 7)
    assert q1.aliases == (("A", "A"), ("Yhat", "yhat"))  # the command line's merged over [grading]
    assert (q2.spec, q2.target, q2.partial_credit, q2.aliases) == (
        str(tmp_path / "hw" / "net.spec"), "b1", 0.0, (("A", "A"), ("B", "b1"), ("Yhat", "yhat")))
    assert a.inputs == [str(tmp_path / "hw" / "hw.toml"), str(tmp_path / "hw" / "net.spec")]
    assert a.partial_kinds == frozenset({"factor", "paths"})


@pytest.mark.parametrize(("change", "where", "phrase"), [
    (("weight = 2", "wieght = 2"), (9, 1), "unknown key 'wieght' in question 'q1' (did you mean 'weight'?)"),
    (('spec = "net.spec"', 'spec = "nett.spec"'), (12, 1), "unknown spec 'nett.spec'"),
    (('target = "dW1"', 'target = "dW3"'), (8, 1), "has no gradient 'dW3'"),
    (("weight = 2", "weight = 0"), (9, 1), "weight is a positive number, got 0"),
    (("partial_credit = 0.25", "partial_credit = 2"), (4, 1), "from 0 (off) to 1, got 2"),
    (('chain = "own"', 'chain = "mine"'), (10, 1), "chain is one of true, own, closed, got 'mine'"),
    (('aliases = { B = "b1" }', 'aliases = { B = 1 }'), (14, 1), "aliases is a table of course names"),
    (("[grading]", "[grading]\npartial_kinds = ['wrong']"), (4, 1), "partial_kinds is a list of mistakes from"),
    (("[questions.q1]", "[questions.q1"), (7, 14), "not valid TOML"),
])
def test_manifest_errors_point_at_the_key(tmp_path: Path, change: tuple[str, str], where: tuple[int, int],
                                          phrase: str) -> None:
    write(tmp_path, "net.spec", NET)
    path = write(tmp_path, "hw.toml", MANIFEST.replace(*change))
    e = error_of(load_assignment, path)
    assert ((e.line, e.col), phrase in e.message) == (where, True), e.format()


def test_json_manifest_and_a_question_named_by_its_target(tmp_path: Path) -> None:
    doc = {"spec": "two_layer_sigmoid", "questions": {"dW1": {}, "q2": {"target": "dZ", "weight": 3}}}
    a = load_assignment(write(tmp_path, "hw.json", json.dumps(doc, indent=1)))
    assert [(q.id, q.target, q.weight) for q in a.questions.values()] == [("dW1", "W1", 1.0), ("q2", "Z", 3.0)]
    doc["questions"]["q2"]["target"] = "dQ"
    e = error_of(load_assignment, write(tmp_path, "hw.json", json.dumps(doc, indent=1)))
    assert (e.line, e.source_line.strip()) == (6, '"target": "dQ",') and "has no gradient 'dQ'" in e.message


def test_every_partial_kind_is_a_mistake_verify_names() -> None:
    kinds = re.search(r"mistake: str \| None = None  # (.*)", (ROOT / "backprop/verification/report.py").read_text())
    assert kinds and set(PARTIAL_KINDS) <= {k.strip() for k in kinds.group(1).split(",")}


# ---------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------


def grade_csv(tmp_path: Path, rows: list[tuple[str, str, str]], spec: str = "two_layer_sigmoid", **settings):  # noqa: ANN003, ANN201
    text = "student,question,answer\n" + "".join(f'{s},{q},"{a}"\n' for s, q, a in rows)
    answers = read_answers(write(tmp_path, "a.csv", text))
    assignment = single_spec(spec, [a.question.lstrip("d") if a.question.startswith("d") else a.question
                                    for a in answers], settings)
    return grade_class(assignment, answers)


def test_identical_answers_are_judged_once(tmp_path: Path) -> None:
    rows = [(f"s{i}", "dw2", "2/m * (yhat - y) @ A.T" if i % 2 else "2/m  *  (yhat - y) @ A.T") for i in range(10)]
    rows += [(f"s{i}", "dW1", "dZ @ X.T") for i in range(10)]
    graded = grade_csv(tmp_path, rows)
    assert (graded.answered, graded.judged) == (20, 2)
    assert all(g.status == "correct" for row in graded.grades.values() for g in row.values())


def test_partial_credit_only_when_on_and_only_for_its_kinds(tmp_path: Path) -> None:
    rows = [("a", "dw2", "2 * (yhat - y) @ A.T"), ("a", "db1", "sum(dZ, axis=0)"), ("a", "dW1", "dZ @ X.T"),
            ("b", "dw2", "2/m * (y - yhat) @ A.T")]
    off = grade_csv(tmp_path, rows)
    on = grade_csv(tmp_path, rows, partial_credit=0.5)
    assert [(g.status, g.score) for g in off.grades["a"].values()] == [("correct", 1), ("wrong", 0), ("wrong", 0)]
    assert [(g.status, g.score) for g in on.grades["a"].values()] == [("correct", 1), ("wrong", 0), ("partial", 0.5)]
    assert on.grades["b"]["dw2"].status == "wrong" and on.grades["b"]["dW1"].status == "missing"  # a sign: no credit
    assert on.total("a") == 1.5 and on.assignment.max_score == 3


def test_an_answer_about_another_gradient_is_wrong(tmp_path: Path) -> None:
    g = grade_csv(tmp_path, [("a", "dW1", "dw2 = 2/m * (yhat - y) @ A.T"), ("a", "dw2", "dW1 = dZ @ X.T")])
    assert g.grades["a"]["dW1"].result.diagnosis == "this is an answer for dw2, but the question asks for dW1"
    assert g.grades["a"]["dW1"].result.mistake == "target" and g.grades["a"]["dw2"].status == "wrong"


@pytest.mark.parametrize(("answer", "claim"), [
    ("dZ @ X.T", "dW1 = dZ @ X.T"),
    ("dW1 = dZ @ X.T", "dW1 = dZ @ X.T"),
    ("np.sum(dZ, axis=1, keepdims=True)", "dW1 = np.sum(dZ, axis=1, keepdims=True)"),  # '=' inside brackets
    ("dA * (Z >= 0)", "dW1 = dA * (Z >= 0)"),
    ("x == y", "dW1 = x == y"),
    (r"\frac{\partial L}{\partial W_1} = \frac{1}{m} \delta X^T", r"\frac{\partial L}{\partial W_1} = \frac{1}{m} \delta X^T"),
    (r"\sum_{i=1}^m \delta_i x_i^T", r"dW1 = \sum_{i=1}^m \delta_i x_i^T"),
    ("  dZ\n  @ X.T ", "dW1 = dZ @ X.T"),
])
def test_the_claim_an_answer_makes(answer: str, claim: str) -> None:
    assert claim_of(answer, "W1") == claim
    assert normalized("a \t b\n") == "a b"


def test_own_chains_are_per_student_and_carry_a_mistake(tmp_path: Path) -> None:
    path = write(tmp_path, "hw.toml", 'spec = "two_layer_sigmoid"\n[questions.q1]\ntarget = "dZ"\n'
                 '[questions.q2]\ntarget = "dW1"\nchain = "own"\n')
    answers = read_answers(write(tmp_path, "a.csv", "student,question,answer\n"
                                 "a,q1,dA * A * (1 - A)\na,q2,dZ @ X.T\nb,q1,dA * Z * (1 - Z)\nb,q2,dZ @ X.T\n"
                                 "c,q2,dZ @ X.T\n"))
    g = grade_class(load_assignment(path), answers)
    assert [g.grades[s]["q2"].status for s in "abc"] == ["correct", "wrong", "wrong"]
    assert "σ′(Z) were Z ⊙ (1 − Z)" in g.grades["b"]["q2"].result.diagnosis
    assert g.grades["c"]["q2"].result.diagnosis == "uses dZ, but no answer for it comes before this one"
    assert g.judged == 5  # the three q2 read alike, but what their dZ stands for differs: judged apart


def test_answers_name_questions_by_id_or_target_once(tmp_path: Path) -> None:
    path = write(tmp_path, "hw.toml", '[questions.q1]\nspec = "two_layer_sigmoid"\ntarget = "dW1"\n'
                 '[questions.q2]\nspec = "two_linear_layers"\ntarget = "dW1"\n[questions.q3]\n'
                 'spec = "two_linear_layers"\ntarget = "db1"\n')
    assignment = load_assignment(path)
    ok = read_answers(write(tmp_path, "a.csv", "student,question,answer\na,q1,dZ @ X.T\na,db1,dZ\n"))
    assert grade_class(assignment, ok).grades["a"]["q3"].status == "wrong"
    for rows, where, phrase in [
        ("a,dW1,x\n", (2, 3), "'dW1' is asked by questions q1, q2: name the question instead"),
        ("a,q7,x\n", (2, 3), "unknown question 'q7'"),
        ("a,q3,x\na,db1,y\n", (3, 3), "a second answer of 'a' to question q3 (the first is at"),
    ]:
        answers = read_answers(write(tmp_path, "b.csv", "student,question,answer\n" + rows))
        e = error_of(grade_class, assignment, answers)
        assert ((e.line, e.col), phrase in e.message) == (where, True), e.format()


def test_answers_as_students_write_them_with_the_courses_names(tmp_path: Path) -> None:
    """LaTeX, NumPy and the derivation's Unicode are read by verify; each verdict keeps the reading."""
    g = grade_csv(tmp_path, [("a", "dw2", r"\frac{2}{m} (p - y) H^T"), ("a", "db1", "np.sum(dZ, axis=1, keepdims=True)"),
                             ("a", "dW1", "∂L/∂Z Xᵀ"), ("b", "dw2", "np.dot(2 * (p - y), H.T)")],
                  aliases={"p": "yhat", "H": "A"}, partial_credit=0.5)
    row = g.grades["a"]
    assert [x.status for x in row.values()] == ["correct"] * 3
    assert [x.reading for x in row.values()] == ["dW1 = dZ @ X.T", "db1 = sum(dZ, axis=1)",
                                                 "dw2 = 2 / m * (yhat - y) @ A.T"]
    b = g.grades["b"]["dw2"]
    assert (b.status, b.result.mistake, b.reading) == ("partial", "factor", "dw2 = 2 * (yhat - y) @ A.T")


# ---------------------------------------------------------------------------
# Outputs: the same bytes for the same class, whatever order the rows come in; safe for any id
# ---------------------------------------------------------------------------


def sample_class() -> tuple[object, list]:
    answers = [a for f in ("answers.csv", "answers.json", "submissions/ines.txt", "submissions/jun.txt")
               for a in read_answers(str(CLASS / f))]
    return load_assignment(str(CLASS / "hw3.toml")), answers


def test_outputs_do_not_depend_on_the_order_of_the_rows() -> None:
    assignment, answers = sample_class()
    first = class_files(grade_class(assignment, answers))
    random.Random(1).shuffle(answers)
    assert class_files(grade_class(assignment, answers)) == first
    assert all(OUTPUT_FILES.fullmatch(name) for name in first)


HOSTILE_IDS = ["<script>alert(1)</script>", "../../etc/passwd", "=HYPERLINK(\"http://x\")", "a\nb", "Ada", "ada",
               "con", "", "x" * 300, "**bold** | `code`", "Zoë"]


def test_hostile_student_ids(tmp_path: Path) -> None:
    doc = [{"student": s, "question": "dW1", "answer": "<b>dZ</b> @ X.T"} for s in HOSTILE_IDS if s]
    answers = read_answers(write(tmp_path, "a.json", json.dumps(doc)))
    files = class_files(grade_class(single_spec("two_layer_sigmoid", ["W1"]), answers))
    pages = [n for n in files if n.startswith("feedback/") and n.endswith(".html")]
    assert len(pages) == len(doc) and all(OUTPUT_FILES.fullmatch(n) for n in files)
    for name, text in files.items():
        if name.endswith(".html"):  # every id and answer is text, never a tag
            assert "<script>" not in text and "<b>" not in text, name
        if name.endswith(".md"):  # a tag only inside a code span, where Markdown shows it as written
            assert "<script>" not in text and "<b>" not in re.sub(r"`[^`]*`", "", text), name
    scores = files["scores.csv"]
    assert "\n=HYPERLINK" not in scores and "'=HYPERLINK" in scores and "a\\x0ab" in scores
