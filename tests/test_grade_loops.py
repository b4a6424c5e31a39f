"""Grading a class on a loop: ``backprop grade`` on a spec with a recurrence, its answers in the general
form (``dH[t] = …``, ``dWh = sum_t(…)``) judged by the time-claims judge, with the outputs, the
determinism, the dedup and the located errors of flat grading.

The sample class is ``examples/class_rnn`` (bundled ``rnn_tanh``): a student per classic mistake of
backpropagation through time, right answers, an unreadable one and missing ones."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from backprop.cli import main
from backprop.grading.answers import read_answers
from backprop.grading.grade import grade_class
from backprop.grading.manifest import load_assignment, single_spec
from backprop.grading.outputs import class_files
from backprop.support.errors import SpecError
from backprop.verification.verify import verify

ROOT = Path(__file__).resolve().parent.parent
CLASS = ROOT / "examples" / "class_rnn"
INPUTS = [str(CLASS / "bptt.toml"), str(CLASS / "answers.csv"), str(CLASS / "submissions" / "ines.txt")]

#: The sample class as an instructor grades it (q1 dH[t], q2 dZ[t], q3 dWh, q4 dWx, q5 dh0), partial
#: credit 0.5 for a mistake that leaves out paths.
EXPECTED = {
    "ada": ["correct"] * 5,
    "ben": ["correct", "correct", "partial:last", "partial:last", "correct"],  # one step's share, not the sum
    "chloe": ["partial:own", "correct", "correct", "correct", "correct"],  # the recursion without dH[:, t]
    "dmitri": ["partial:carry", "correct", "correct", "correct", "correct"],  # ... without step t+1's share
    "emma": ["wrong:transpose", "correct", "wrong:transpose", "correct", "correct"],
    "farid": ["correct", "correct", "wrong:step", "wrong:shape", "correct"],  # H[t] for H[t-1]; X[:, t] not X[:, t].T
    "gwen": ["unusable", "correct", "unusable", "missing", "missing"],  # dZ[t-1]; a bracket short; none; empty
    "hiroshi": ["correct", "wrong:value", "wrong:value", "correct", "wrong:shape"],  # dh0 not summed over the examples
    "ines": ["correct", "correct", "correct", "correct", "wrong:target"],  # a .txt; q5 answers dWh
}


def grade(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["grade", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bptt") / "grades"
    assert main(["grade", *INPUTS, "-o", str(out), "-q"]) == 0
    return out


def rows(directory: Path, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader((directory / name).open(encoding="utf-8")))


def test_every_answer_of_the_class(graded: Path) -> None:
    got: dict[str, list[str]] = {}
    for r in rows(graded, "verdicts.csv"):
        got.setdefault(r["student"], []).append(
            r["verdict"] + (f":{r['mistake']}" if r["verdict"] in ("partial", "wrong") else ""))
    assert got == EXPECTED
    scores = {r["student"]: r for r in rows(graded, "scores.csv")}
    assert list(scores["ada"]) == ["student", "q1", "q2", "q3", "q4", "q5", "total", "out_of", "feedback"]
    assert [scores["ada"][k] for k in ("total", "out_of")] == ["6", "6"]
    assert [scores["ben"][q] for q in ("q3", "q4", "total")] == ["1", "0.5", "4.5"]  # half of 2 and of 1
    assert [scores["gwen"][q] for q in ("q1", "q2", "q3", "q4", "q5", "total")] == ["0", "1", "0", "0", "0", "1"]


def test_the_feedback_names_the_classic_mistakes(graded: Path) -> None:
    # the Markdown pages escape brackets (H\\[t\\]): compare their text unescaped
    page = {s: (graded / "feedback" / f"{s}.md").read_text(encoding="utf-8").replace("\\", "") for s in EXPECTED}
    assert "the gradient of a shared weight from the last step only" in page["ben"]
    assert "Partial credit (0.5 of the points): right on some paths" in page["ben"]
    assert "the recursion is missing the step's own term" in page["chloe"]
    assert "the recursion is missing what step t+1 sends back" in page["dmitri"]
    assert "Wh where Whᵀ belongs: with Wh.T the claim is right" in page["emma"]
    assert "H[t] where H[t-1] belongs" in page["farid"]
    assert "a δ is read at t or t+1" in page["gwen"] and "Your answer: none" in page["gwen"]
    assert "wrong shape: the claim is h×m, ∂L/∂h0 is h×1" in page["hiroshi"]
    assert "this is an answer for dWh, but the question asks for dh0" in page["ines"]
    assert "## q1: the recursion for ∂L/∂Hₜ (rnn_tanh): 1 of 1" in page["ada"]
    html = (graded / "feedback" / "ben.html").read_text(encoding="utf-8")
    assert "the gradient of a shared weight from the last step only" in html
    summary = (graded / "summary.md").read_text(encoding="utf-8").replace("\\", "")
    assert "| q3: ∂L/∂Wh | 4 | 1 | 3 | 1 | 0 |" in summary  # correct, partial, wrong, unusable, missing
    assert "- 1 student, partial (last): the gradient of a shared weight from the last step only" in summary
    result = json.loads((graded / "gradescope" / "chloe" / "results.json").read_text(encoding="utf-8"))
    assert (result["score"], result["tests"][0]["status"], result["tests"][0]["score"]) == (5.5, "failed", 0.5)


def test_reruns_are_byte_identical(graded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = grade(capsys, *INPUTS, "-o", str(tmp_path / "again"))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == ("graded 43 answers of 9 students to 5 questions (19 distinct, each judged once); "
                                   "mean score 3.94 of 6")
    assert snapshot(tmp_path / "again") == snapshot(graded)


def test_each_distinct_answer_is_judged_once() -> None:
    assignment = load_assignment(INPUTS[0])
    answers = [a for f in INPUTS[1:] for a in read_answers(f)]
    once = grade_class(assignment, answers)
    every = grade_class(assignment, answers, dedupe=False)
    assert (once.answered, once.judged, every.judged) == (43, 19, 43)
    files, again = class_files(once), class_files(every)
    assert files["summary.md"] == again["summary.md"].replace("43 distinct", "19 distinct")  # it says how many
    assert {k: v for k, v in files.items() if k != "summary.md"} == {k: v for k, v in again.items() if k != "summary.md"}


def test_without_a_manifest_and_with_the_courses_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A question per target the answers name, in the derivation's order; aliases rename, and say so."""
    answers = tmp_path / "a.csv"
    answers.write_text('student,question,answer\nada,dH[t],"dS[:, t] + Wh.T @ dZ[t+1]"\nada,dWh,dZ[T] @ S[T-1].T\n'
                       "ben,dWh,sum_t(dZ[t] @ S[t-1].T)\n", encoding="utf-8")
    code, _, err = grade(capsys, "rnn_tanh", str(answers), "--alias", "S=H", "-o", str(tmp_path / "o"))
    assert (code, err) == (0, "")
    assert (tmp_path / "o" / "scores.csv").read_text(encoding="utf-8").splitlines()[:3] == [
        "student,dWh,dH[t],total,out_of,feedback", "ada,0,1,1,2,feedback/ada.html", "ben,1,0,1,2,feedback/ben.html"]
    got = {(r["student"], r["question"]): r for r in rows(tmp_path / "o", "verdicts.csv")}
    assert got[("ada", "dH[t]")]["read_as"] == "dH[t] = dH[:, t] + Wh.T @ dZ[t+1]"
    assert (got[("ada", "dWh")]["verdict"], got[("ada", "dWh")]["mistake"]) == ("wrong", "last")  # no partial credit


def test_gradescope_grades_a_submission_on_a_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "answers.txt").write_text("dH[t] = dH[:, t] + Wh.T @ dZ[t+1]\nq3: dZ[T] @ H[T-1].T\n", encoding="utf-8")
    results = tmp_path / "results.json"
    code, _, _ = grade(capsys, INPUTS[0], "--gradescope", "--submission", str(sub), "--results", str(results))
    doc = json.loads(results.read_text(encoding="utf-8"))
    assert (code, doc["score"], [t["score"] for t in doc["tests"]]) == (0, 2, [1, 0, 1, 0, 0])
    assert "from the last step only" in doc["tests"][2]["output"]


def _nothing_written(tmp_path: Path) -> bool:
    return not (tmp_path / "out").exists()


def test_a_chain_mode_a_loop_does_not_take_is_refused_at_the_loop(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = grade(capsys, *INPUTS, "--chain", "own", "-o", str(tmp_path / "out"))
    assert (code, out) == (2, "") and _nothing_written(tmp_path)
    assert "rnn_tanh.spec:12:1: error: --chain own is not built for claims about a loop yet" in err
    answers = tmp_path / "a.csv"
    answers.write_text("student,question,answer\nada,dWh,sum_t(dZ[t] @ H[t-1].T)\n", encoding="utf-8")
    code, _, err = grade(capsys, "rnn_tanh", str(answers), "--chain", "closed", "-o", str(tmp_path / "out"))
    assert code == 2 and "error: --chain closed is not built for claims about a loop yet" in err
    manifest = tmp_path / "hw.toml"
    manifest.write_text('spec = "rnn_tanh"\n[questions.q1]\ntarget = "dWh"\n\n[questions.q2]\ntarget = "dH[t]"\n'
                        'chain = "own"\n', encoding="utf-8")
    code, _, err = grade(capsys, str(manifest), INPUTS[1], "-o", str(tmp_path / "out"))
    assert code == 2 and _nothing_written(tmp_path)
    assert err.startswith(f"{manifest}:7:1: error: chain = 'own' is not built for a loop yet (rnn_tanh has one, at ")


@pytest.mark.parametrize(("manifest", "where", "phrase"), [
    ('spec = "rnn_tanh"\n[questions.q1]\ntarget = "dH[s]"\n', (3, 1),
     "rnn_tanh has no gradient 'dH[s]' (did you mean 'dH[t]'?); targets: dWx, dWh, dbx, dbh, dh0, dU, dbu, dH[t], dZ[t]"),
    ('spec = "rnn_tanh"\n[grading]\nchain = "closed"\n[questions.q1]\ntarget = "dWh"\n', (3, 1),
     "chain = 'closed' is not built for a loop yet"),
])
def test_manifest_errors_on_a_loop_are_located(tmp_path: Path, manifest: str, where: tuple[int, int], phrase: str) -> None:
    path = tmp_path / "hw.toml"
    path.write_text(manifest, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_assignment(str(path))
    assert ((info.value.line, info.value.col), phrase in info.value.message) == (where, True), info.value.format()


def test_an_unknown_question_is_located_and_nothing_is_written(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    answers = tmp_path / "a.csv"
    answers.write_text("student,question,answer\nada,dWh,sum_t(dZ[t] @ H[t-1].T)\nben,dH[T],dH[:, T]\n",
                       encoding="utf-8")
    code, out, err = grade(capsys, "rnn_tanh", str(answers), "-o", str(tmp_path / "out"))
    assert (code, out) == (2, "") and _nothing_written(tmp_path)
    assert err.splitlines()[0].startswith(f"{answers}:3:5: error: unknown question 'dH[T]'")
    assert "a question is a gradient of rnn_tanh (dWx, dWh," in err


def test_claims_about_the_first_state_and_with_aliases_verify() -> None:
    """What grading asks of the judge, as ``backprop verify`` gives it: dH[0] as a target, aliases."""
    report = verify("rnn_tanh", ["dH[0] = sum(Wh.T @ dZ[1], axis=1)", "dH[0] = Wh.T @ dZ[1]",
                                 "dS[t] = dS[:, t] + Wh.T @ dZ[t+1]"], aliases={"S": "H"})
    assert [(r.name, r.status, r.mistake) for r in report] == [
        ("H[0]", "correct", None), ("H[0]", "wrong", "shape"), ("H[t]", "correct", None)]
    assert report[2].reading == "dH[t] = dH[:, t] + Wh.T @ dZ[t+1]"


def test_single_spec_questions_follow_the_derivation() -> None:
    a = single_spec("rnn_tanh", ["H[t]", "Wh", "H[0]", "Z[t]"])
    assert list(a.questions) == ["dWh", "dH[t]", "dZ[t]", "dH[0]"]
