"""``backprop grade``: the sample class end to end against golden files, byte-identical reruns, the
output directory's rules (never over an input, only over its own results), located errors with
nothing written, and Gradescope's one-submission mode.

Golden files: tests/golden/grade/ holds the sample class's score table, verdicts, summary and a
few pages exactly as ``backprop grade`` writes them. After a deliberate change, review the diff and
regenerate them with

    BACKPROP_UPDATE_GOLDEN=1 python -m pytest tests/test_grade_cli.py -k golden
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backprop.cli import main
from backprop.support.files import status

ROOT = Path(__file__).resolve().parent.parent
CLASS = Path("examples/class")  # relative: the verdicts name the files as the command line does
GOLDEN = Path(__file__).parent / "golden" / "grade"
INPUTS = [str(CLASS / f) for f in ("hw3.toml", "answers.csv", "answers.json", "submissions/ines.txt",
                                   "submissions/jun.txt")]
#: The files compared with golden copies: the tables, one page of each kind, one Gradescope result.
GOLDEN_FILES = ("scores.csv", "verdicts.csv", "summary.md", "feedback/ben.md", "feedback/dmitri.md",
                "feedback/Zoe_b_O_Brien_b-bd3c8216.html", "gradescope/dmitri/results.json")


def grade(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["grade", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture
def graded(tmp_path: Path, capsys: pytest.CaptureFixture[str], in_root: None) -> Path:
    out = tmp_path / "hw3"
    code, stdout, err = grade(capsys, *INPUTS, "-o", str(out))
    assert (code, err) == (0, "")
    assert stdout.splitlines() == [
        "graded 63 answers of 11 students to 6 questions (59 distinct, each judged once); mean score 3.23 of 7",
        f"wrote {out}/scores.csv, verdicts.csv, summary.md, feedback/ and gradescope/ (11 students)"]
    return out


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden(graded: Path, name: str) -> None:
    got = (graded / name).read_text(encoding="utf-8")
    path = GOLDEN / name
    if os.environ.get("BACKPROP_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"missing {path}: run BACKPROP_UPDATE_GOLDEN=1 python -m pytest tests/test_grade_cli.py -k golden"
    assert got == path.read_text(encoding="utf-8"), (
        f"{name} differs from its golden copy: review the change, then regenerate with "
        "BACKPROP_UPDATE_GOLDEN=1 python -m pytest tests/test_grade_cli.py -k golden")


#: The sample class as an instructor grades it: every right answer accepted, every wrong one not,
#: and the mistake named -- whatever the wording of the diagnoses becomes.
EXPECTED = {  # student -> (status, mistake) per question q1..q6
    "ada": ["correct"] * 6,
    "ben": ["partial:factor"] * 6,  # in LaTeX and NumPy, a missing 1/m everywhere: the structure is right
    "chloe": ["correct", "wrong:transpose", "wrong:transpose", "correct", "wrong:transpose", "unusable"],
    "dmitri": ["correct", "correct", "correct", "wrong:step", "wrong:step", "wrong:step"],  # Z(1 − Z), carried
    "emma": ["wrong:sign", "wrong:sign", "correct", "correct", "correct", "wrong:sum"],
    "farid": ["wrong:sum", "unusable", "unusable", "wrong:step", "wrong:step", "wrong:shape"],
    "gwen": ["correct", "missing", "correct", "missing", "wrong:chain", "missing"],
    "hiroshi": ["correct", "correct", "partial:factor", "wrong:step", "wrong:step", "wrong:value"],
    "ines": ["correct", "correct", "partial:factor", "correct", "correct", "correct"],
    "jun": ["partial:factor", "wrong:transpose", "correct", "correct", "wrong:value", "wrong:shape"],
    "Zoë <b>O'Brien</b>": ["wrong:step", "partial:factor", "unusable", "correct", "wrong:target", "correct"],
}


def test_every_answer_of_the_sample_class(graded: Path) -> None:
    import csv

    rows = list(csv.DictReader((graded / "verdicts.csv").open(encoding="utf-8")))
    got: dict[str, list[str]] = {}
    for r in rows:
        got.setdefault(r["student"], []).append(
            r["verdict"] + (f":{r['mistake']}" if r["verdict"] in ("partial", "wrong") else ""))
    assert got == EXPECTED
    scores = (graded / "scores.csv").read_text(encoding="utf-8").splitlines()
    assert scores[0] == "student,q1,q2,q3,q4,q5,q6,total,out_of,feedback"
    assert "ada,1,1,1,1,2,1,7,7,feedback/ada.html" in scores and "ben,0.5,0.5,0.5,0.5,1,0.5,3.5,7,feedback/ben.html" in scores


def test_reruns_are_byte_identical_and_replace_their_own_results(graded: Path, capsys, in_root: None) -> None:
    first = snapshot(graded)
    assert grade(capsys, *INPUTS, "-o", str(graded))[0] == 0
    assert snapshot(graded) == first
    # a student fewer: the old page goes with the old directory
    assert grade(capsys, *INPUTS[:-1], "-o", str(graded))[0] == 0
    assert "feedback/jun.md" in first and not (graded / "feedback" / "jun.md").exists()


def test_refuses_a_directory_with_files_it_did_not_write(graded: Path, capsys, in_root: None) -> None:
    (graded / "feedback" / "notes.txt").write_text("mine", encoding="utf-8")
    before = snapshot(graded)
    code, _, err = grade(capsys, *INPUTS, "-o", str(graded))
    assert code == 2 and "it holds feedback/notes.txt, which backprop did not write" in err
    assert snapshot(graded) == before
    (graded / "feedback" / "notes.txt").unlink()
    (graded / "scores.csv").write_text("edited", encoding="utf-8")
    code, _, err = grade(capsys, *INPUTS, "-o", str(graded))
    assert code == 2 and "it holds scores.csv" in err


def test_never_writes_over_its_inputs(tmp_path: Path, capsys, in_root: None) -> None:
    (tmp_path / "a.csv").write_text("student,question,answer\nada,dW1,dZ @ X.T\n", encoding="utf-8")
    code, _, err = grade(capsys, "two_layer_sigmoid", str(tmp_path / "a.csv"), "-o", str(tmp_path))
    assert code == 2 and "refusing to replace -o" in err and "it holds the input" in err
    code, _, err = grade(capsys, "two_layer_sigmoid", str(tmp_path / "a.csv"), "-o", str(tmp_path / "a.csv"))
    assert code == 2 and f"refusing to replace -o {tmp_path / 'a.csv'}: it holds the input" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_a_bad_row_is_located_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    answers = tmp_path / "a.csv"
    answers.write_text("student,question,answer\nada,dW1,dZ @ X.T\nben,dW9,dZ\n", encoding="utf-8")
    code, out, err = grade(capsys, "two_layer_sigmoid", str(answers), "-o", str(tmp_path / "out"))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{answers}:3:5: error: unknown question 'dW9' (did you mean 'dw2'?): without a manifest, a question is a "
        "gradient of two_layer_sigmoid (dW1, db1, dw2, db2, dyhat, dA, dZ)", "    ben,dW9,dZ", "        ^"]
    assert not (tmp_path / "out").exists()


def test_without_a_manifest_the_columns_follow_the_derivation(tmp_path: Path, capsys) -> None:
    answers = tmp_path / "a.csv"
    answers.write_text("student,question,answer\nada,db1,\"sum(dZ, axis=1)\"\nada,W1,dZ @ X.T\n"
                       "ben,dW1,2 * dZ @ X.T\n", encoding="utf-8")
    assert grade(capsys, "two_layer_sigmoid", str(answers), "-o", str(tmp_path / "o"), "--partial", "0.25")[0] == 0
    assert (tmp_path / "o" / "scores.csv").read_text(encoding="utf-8") == (
        "student,dW1,db1,total,out_of,feedback\nada,1,1,2,2,feedback/ada.html\nben,0.25,0,0.25,2,feedback/ben.html\n")


def test_no_answers_is_a_usage_error(capsys) -> None:
    code, _, err = grade(capsys, "two_layer_sigmoid")
    assert code == 2 and err.startswith("backprop: error: no answers")


def test_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "hw.toml").write_text('[questions.q1]\nspec = "two_layer_sigmoid"\ntarget = "dW1"\nwieght = 2\n')
    (tmp_path / "a.csv").write_text("student,question,answer\nada,q1,x\n")
    r = subprocess.run([sys.executable, "-m", "backprop", "grade", "hw.toml", "a.csv"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("hw.toml:4:1: error: unknown key 'wieght' in question 'q1' (did you mean 'weight'?)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "hw.toml"]


def test_progress_bar_only_on_a_terminal(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = tmp_path / "a.csv"
    answers.write_text("student,question,answer\nada,dW1,dZ @ X.T\n", encoding="utf-8")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if not installed
    code, _, err = grade(capsys, "two_layer_sigmoid", str(answers), "-o", str(tmp_path / "o"))
    assert code == 0 and err == ("backprop: note: no progress bar without tqdm: pip install "
                                 "'backprop-toolkit[train]'\n")


# ---------------------------------------------------------------------------
# Gradescope: one submission per run
# ---------------------------------------------------------------------------


def gradescope(capsys, tmp_path: Path, files: dict[str, str], *extra: str) -> tuple[int, dict]:  # noqa: ANN001
    sub = tmp_path / "submission"
    sub.mkdir(exist_ok=True)
    for name, text in files.items():
        (sub / name).write_text(text, encoding="utf-8")
    results = tmp_path / "results" / "results.json"
    code, _, _ = grade(capsys, str(ROOT / CLASS / "hw3.toml"), "--gradescope", "--submission", str(sub),
                       "--results", str(results), *extra)
    return code, json.loads(results.read_text(encoding="utf-8")) if results.exists() else {}


def test_gradescope_grades_one_submission(tmp_path: Path, capsys) -> None:
    text = (ROOT / CLASS / "submissions" / "ines.txt").read_text(encoding="utf-8")
    code, doc = gradescope(capsys, tmp_path, {"answers.txt": text})
    assert code == 0 and doc["score"] == 6.5 and len(doc["tests"]) == 6
    t = doc["tests"][2]
    assert (t["name"], t["score"], t["max_score"], t["status"], t["visibility"]) == (
        "q3: ∂L/∂W₁ (two_linear_layers)", 0.5, 1, "failed", "visible")
    assert t["output"].splitlines()[1] == "Verdict: wrong: m/2 times the correct gradient: a missing 2/m?"
    assert status((tmp_path / "results" / "results.json").read_text(encoding="utf-8")) == "generated"
    code, again = gradescope(capsys, tmp_path, {})  # its own file is replaced; the same bytes
    assert code == 0 and again == doc


@pytest.mark.parametrize(("files", "phrase"), [
    ({}, "the submission holds no answers files (none): submit one .txt, .csv or .json file of answers"),
    ({"a.txt": "q1: dyhat @ x.T\n", "b.csv": ""}, "the submission holds 2 answers files (a.txt, b.csv)"),
    ({"answers.csv": "question,answer\nq1,dyhat @ x.T\nq8,x\n"},
     "answers.csv:3:1: error: unknown question 'q8'; the questions are q1, q2, q3, q4, q5, q6"),
])
def test_a_submission_that_does_not_read_gets_no_points_and_says_why(tmp_path: Path, capsys, files: dict[str, str],
                                                                     phrase: str) -> None:
    code, doc = gradescope(capsys, tmp_path, files)
    assert code == 0 and doc["score"] == 0 and doc["tests"] == []
    assert phrase in doc["output"] and str(tmp_path) not in doc["output"]


def test_gradescope_refuses_a_file_it_did_not_write_and_a_bad_manifest(tmp_path: Path, capsys) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.json").write_text("{}", encoding="utf-8")
    code, doc = gradescope(capsys, tmp_path, {"answers.txt": "q1: dyhat @ x.T\n"})
    assert code == 2 and doc == {}
    code, doc = gradescope(capsys, tmp_path, {}, "--force")
    assert code == 0 and doc["score"] == 1
    code, _, err = grade(capsys, "two_layer_sigmoid", "--gradescope")
    assert code == 2 and "--gradescope needs the assignment's manifest" in err
