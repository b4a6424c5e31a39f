"""Files under attack: every ``-o``/``--out`` refuses what it must not replace, and bad sizes or data files
end in one compiler-style line (exit 2), never a traceback, with every file left exactly as it was.

Issue 11, "Under attack": derive -o onto its own spec or a stranger's file; codegen -o onto a symlink;
train/gradflow into read-only places and failing midway; huge or malformed --dims; non-archives and
archives whose headers lie; empty data sets; non-numeric arrays given to a generated module.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import backprop.codegen.dims
import backprop.train.loop
from backprop import codegen
from backprop.cli import main
from backprop.support.files import png_status, stamp, status
from backprop.train.data import save_npz

CLI = (sys.executable, "-c", "import sys; from backprop.cli import main; sys.exit(main())")
RUN_FILES = [".backprop-run.json", "gradflow.png", "history.csv", "loss.png", "params.npz"]
QUICK = ["--epochs", "2", "--quiet", "--dims", "m=64"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, *needles: str) -> None:
    """Exit 2, exactly one compiler-style line, no traceback, saying what it should."""
    assert code == 2, err
    assert err.startswith("backprop: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


def snapshot(*paths: Path) -> dict[Path, tuple[bytes, int]]:
    """Bytes and modification time of every file under ``paths`` (a directory: its whole tree)."""
    out = {}
    for p in paths:
        for f in [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()):
            out[f] = (f.read_bytes(), f.stat().st_mtime_ns)
    return out


def spec_copy(tmp_path: Path, name: str = "logistic_regression") -> Path:
    from backprop.support.bundled import examples_dir

    spec = tmp_path / "net.spec"
    shutil.copy(examples_dir() / f"{name}.spec", spec)
    return spec


# ---------------------------------------------------------------------------
# derive -o: marks, foreign files, the spec itself
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["net.spec", "./sub/../net.spec", "link.spec"])
@pytest.mark.parametrize("force", [False, True])
def test_derive_never_writes_over_its_spec(tmp_path: Path, capsys, target: str, force: bool) -> None:
    spec = spec_copy(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.spec").symlink_to("net.spec")
    before = snapshot(spec)
    os.chdir(tmp_path)
    code, out, err = run(capsys, "derive", "net.spec", "-o", target, *(["--force"] * force))
    assert_refused(code, err, f"-o {target}: it is the input net.spec")
    assert out == "" and snapshot(spec) == before and (tmp_path / "link.spec").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.spec", "net.spec", "sub"]


def test_derive_and_codegen_refuse_the_spec_in_a_subprocess(tmp_path: Path) -> None:
    spec = spec_copy(tmp_path)
    before = snapshot(spec)
    for command in ("derive", "codegen"):
        r = subprocess.run([*CLI, command, str(spec), "-o", str(spec), "--force"], capture_output=True, text=True)
        assert_refused(r.returncode, r.stderr, "it is the input")
    assert snapshot(spec) == before


def test_derive_refuses_a_foreign_file_unless_forced(tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# my own notes\n", encoding="utf-8")
    before = snapshot(notes)
    code, _, err = run(capsys, "derive", "two_layer_sigmoid", "-o", str(notes))
    assert_refused(code, err, f"refusing to overwrite {notes}: it was not written by backprop", "--force")
    assert snapshot(notes) == before and [p.name for p in tmp_path.iterdir()] == ["notes.md"]
    assert run(capsys, "derive", "two_layer_sigmoid", "-o", str(notes), "--force")[0] == 0
    assert status(notes.read_text(encoding="utf-8")) == "generated"


@pytest.mark.parametrize("fmt", ["txt", "tex", "md", "json"])
def test_derive_marks_what_it_writes_and_refuses_edits(tmp_path: Path, capsys, fmt: str) -> None:
    out = tmp_path / f"d.{fmt}"
    assert run(capsys, "derive", "two_layer_sigmoid", "-o", str(out))[0] == 0
    text = out.read_text(encoding="utf-8")
    assert status(text) == "generated"
    if fmt == "json":  # no comments in JSON: the mark is a member, and the file stays valid JSON
        doc = json.loads(text)
        assert list(doc)[:2] == ["generated_by", "spec"] and "written by backprop" in doc["generated_by"]
    mtime = out.stat().st_mtime_ns
    assert run(capsys, "derive", "two_layer_sigmoid", "-o", str(out))[0] == 0  # same content: left alone
    assert out.stat().st_mtime_ns == mtime
    assert run(capsys, "derive", "deep_relu", "-o", str(out))[0] == 0  # ours, unedited: replaced
    edited = out.read_text(encoding="utf-8").replace("W", "V")  # the mark line names no W
    out.write_text(edited, encoding="utf-8")
    before = snapshot(out)
    code, _, err = run(capsys, "derive", "deep_relu", "-o", str(out))
    assert_refused(code, err, "it was edited since backprop wrote it")
    assert snapshot(out) == before


def test_stamp_forms_survive_hostile_paths() -> None:
    """A newline or '-->' in a path cannot break the mark out of its comment."""
    for fmt in ("text", "latex", "markdown", "json"):
        body = '{\n  "spec": "x"\n}\n' if fmt == "json" else "body\n"
        text = stamp(body, fmt, "backprop derive 'a\nb-->c' -o x")
        assert status(text) == "generated" and text.count("\n") == body.count("\n") + 1
        if fmt == "markdown":
            assert text.splitlines()[0].count("-->") == 1
        if fmt == "json":
            json.loads(text)


# ---------------------------------------------------------------------------
# codegen -o onto symbolic links
# ---------------------------------------------------------------------------


def test_codegen_follows_a_symlink_and_keeps_it(tmp_path: Path, capsys) -> None:
    real = tmp_path / "v2" / "net.py"
    real.parent.mkdir()
    assert run(capsys, "codegen", "logistic_regression", "-o", str(real))[0] == 0
    link = tmp_path / "current.py"
    link.symlink_to(real)
    assert run(capsys, "codegen", "mlp_softmax", "-o", str(link))[0] == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert "mlp_softmax" in real.read_text(encoding="utf-8").splitlines()[0]
    assert sorted(p.name for p in real.parent.iterdir()) == ["net.py"]  # the temp file was beside the target


def test_codegen_refuses_a_symlink_to_a_foreign_file_or_nowhere(tmp_path: Path, capsys) -> None:
    mine = tmp_path / "train.py"
    mine.write_text("print('mine')\n", encoding="utf-8")
    link = tmp_path / "net.py"
    link.symlink_to(mine)
    before = snapshot(mine)
    code, _, err = run(capsys, "codegen", "mlp_softmax", "-o", str(link))
    assert_refused(code, err, "it was not generated by backprop")
    assert snapshot(mine) == before and link.is_symlink()
    dangling = tmp_path / "dangling.py"
    dangling.symlink_to(tmp_path / "elsewhere" / "x.py")
    for command in ("codegen", "derive"):
        code, _, err = run(capsys, command, "mlp_softmax", "-o", str(dangling))
        assert_refused(code, err, "symbolic link to a missing file")
    assert dangling.is_symlink() and not (tmp_path / "elsewhere").exists()


# ---------------------------------------------------------------------------
# train and gradflow: probe first, replace the run directory as a whole
# ---------------------------------------------------------------------------


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make a directory unwritable -- for root too (chattr +i), or skip where that cannot be done."""
    undo: list[Callable[[], object]] = []

    def make(d: Path) -> None:
        if os.geteuid() != 0:
            d.chmod(0o555)
            undo.append(lambda: d.chmod(0o755))
            return
        r = subprocess.run(["chattr", "+i", str(d)], capture_output=True)
        if r.returncode != 0:
            pytest.skip("running as root, and chattr +i is not available to make a directory read-only")
        undo.append(lambda: subprocess.run(["chattr", "-i", str(d)], check=True))

    yield make
    for u in reversed(undo):
        u()


def _no_training(*args: object, **kwargs: object) -> None:
    raise AssertionError("training started although the output cannot be written")


@pytest.fixture(scope="module")
def old_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run directory, to copy wherever a test needs old results."""
    out = tmp_path_factory.mktemp("old") / "run"
    assert main(["train", "univariate_regression", *QUICK, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    return out


def test_train_into_a_read_only_directory_fails_before_training(tmp_path: Path, capsys, monkeypatch,
                                                                read_only, old_run: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    shutil.copytree(old_run, parent / "run")
    before = snapshot(parent)
    read_only(parent)
    monkeypatch.setattr(backprop.train.loop, "train", _no_training)
    for out in (parent / "run", parent / "new"):
        code, stdout, err = run(capsys, "train", "univariate_regression", *QUICK, "--out", str(out))
        assert_refused(code, err, f"cannot write --out {out}")
        assert "training" not in stdout
    assert snapshot(parent) == before and sorted(p.name for p in parent.iterdir()) == ["run"]


def test_gradflow_into_a_read_only_directory_fails_before_computing(tmp_path: Path, capsys, monkeypatch,
                                                                    read_only) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    read_only(parent)
    import backprop.train.gradflow

    monkeypatch.setattr(backprop.train.gradflow, "norms_at_init", _no_training)
    code, _, err = run(capsys, "gradflow", "two_layer_sigmoid", "--out", str(parent / "sub" / "g.png"))
    assert_refused(code, err, "cannot write --out")
    assert list(parent.iterdir()) == []


def test_a_failure_midway_leaves_the_old_run_intact(tmp_path: Path, monkeypatch, capsys, old_run: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(old_run, out)
    before = snapshot(out)
    real_write = backprop.train.loop.write_atomic
    written: list[str] = []

    def fail_second(path: Path, data: object) -> None:
        written.append(Path(path).name)
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(backprop.train.loop, "write_atomic", fail_second)
    assert main(["train", "univariate_regression", *QUICK, "--seed", "5", "--out", str(out)]) == 2
    assert capsys.readouterr().err == "backprop: error: No space left on device\n"  # one line, no traceback
    assert written == ["history.csv", "loss.png"]
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging directory left behind


def test_an_interrupt_leaves_the_old_run_intact_and_no_directories(tmp_path: Path, monkeypatch, capsys,
                                                                   old_run: Path) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(backprop.train.loop, "train", interrupted)
    out = tmp_path / "run"
    shutil.copytree(old_run, out)
    before = snapshot(out)
    assert main(["train", "univariate_regression", *QUICK, "--out", str(out)]) == 130
    assert capsys.readouterr().err == "backprop: interrupted\n"  # one line, no traceback
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # a new run in new directories: none of them is left
    assert main(["train", "univariate_regression", *QUICK, "--out", str(tmp_path / "a" / "b" / "run")]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_sigterm_during_training_removes_the_staging_directory(tmp_path: Path, old_run: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(old_run, out)
    before = snapshot(out)
    p = subprocess.Popen([*CLI, "train", "mlp_softmax", "--epochs", "100000", "--quiet", "--dims", "m=64,h=4",
                          "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while p.stdout is not None and "training" not in p.stdout.readline():
            assert time.monotonic() < deadline and p.poll() is None, p.stderr.read() if p.stderr else ""
        assert len(list(tmp_path.iterdir())) == 2  # the run and its staging directory
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if p.poll() is None:
            p.kill()
    assert snapshot(out) == before and sorted(q.name for q in tmp_path.iterdir()) == ["run"]


def test_train_replaces_its_own_run_and_keeps_the_gradflow_chart(tmp_path: Path, capsys, old_run: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(old_run, out)
    assert run(capsys, "gradflow", "univariate_regression", "--out", str(out / "gradflow_init.png"))[0] == 0
    chart = snapshot(out / "gradflow_init.png")
    code, stdout, _ = run(capsys, "train", "univariate_regression", *QUICK, "--seed", "9", "--out", str(out))
    assert code == 0 and f"wrote {out / 'history.csv'}" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([*RUN_FILES, "gradflow_init.png"])
    assert (out / "params.npz").read_bytes() != (old_run / "params.npz").read_bytes()
    assert snapshot(out / "gradflow_init.png") == chart
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_train_refuses_a_directory_holding_other_files(tmp_path: Path, capsys, monkeypatch, old_run: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(old_run, out)
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    before = snapshot(out)
    monkeypatch.setattr(backprop.train.loop, "train", _no_training)
    code, _, err = run(capsys, "train", "univariate_regression", *QUICK, "--out", str(out))
    assert_refused(code, err, "it holds notes.txt, which backprop did not write")
    code, _, err = run(capsys, "train", "univariate_regression", *QUICK, "--out", str(tmp_path))
    assert_refused(code, err, "refusing to replace --out")
    data = out / "data.npz"  # the data file inside the run directory it would replace
    data.write_bytes(save_npz({"x": np.ones((1, 8)), "y": np.ones((1, 8))}))
    code, _, err = run(capsys, "train", "univariate_regression", "--data", str(data), "--out", str(out))
    assert_refused(code, err, "it holds the input")
    assert snapshot(out) == {**before, **snapshot(data)}


@pytest.mark.parametrize("name", ["history.csv", "params.npz", "loss.png", "gradflow.png", "gradflow_init.png"])
@pytest.mark.parametrize("how", ["user's own", "edited"])
def test_train_judges_run_files_by_content_not_name(tmp_path: Path, capsys, monkeypatch, old_run: Path,
                                                     name: str, how: str) -> None:
    """A file with a run file's name is replaced only if backprop wrote it there and it is unchanged."""
    out = tmp_path / "run"
    if how == "edited":
        shutil.copytree(old_run, out)
        assert run(capsys, "gradflow", "univariate_regression", "--out", str(out / "gradflow_init.png"))[0] == 0
        with open(out / name, "ab") as f:
            f.write(b"\n")  # one byte more: no longer what backprop wrote
    else:
        out.mkdir()
        (out / name).write_bytes(b"\x89PNG\r\n\x1a\n my own" if name.endswith(".png") else b"epoch,loss\n1,2\n")
    before = snapshot(out)
    monkeypatch.setattr(backprop.train.loop, "train", _no_training)
    code, _, err = run(capsys, "train", "univariate_regression", *QUICK, "--out", str(out))
    assert_refused(code, err, f"it holds {name}, which backprop did not write or which were changed since")
    assert snapshot(out) == before


def test_a_forged_manifest_does_not_make_a_file_ours(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.csv").write_text("my,data\n", encoding="utf-8")
    (out / ".backprop-run.json").write_text('{"generated_by": "written by backprop", "files": {"history.csv": "0"}}')
    monkeypatch.setattr(backprop.train.loop, "train", _no_training)
    code, _, err = run(capsys, "train", "univariate_regression", *QUICK, "--out", str(out))
    assert_refused(code, err, "it holds history.csv")


def test_gradflow_marks_its_chart_and_refuses_foreign_files(tmp_path: Path, capsys) -> None:
    out = tmp_path / "g.png"
    assert run(capsys, "gradflow", "two_layer_sigmoid", "--out", str(out))[0] == 0
    assert png_status(out.read_bytes()) == "generated"
    import matplotlib.image

    assert matplotlib.image.imread(io.BytesIO(out.read_bytes()), format="png").ndim == 3  # still a valid PNG
    assert run(capsys, "gradflow", "deep_relu", "--out", str(out))[0] == 0  # ours: replaced
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"my holiday")
    before = snapshot(photo)
    code, _, err = run(capsys, "gradflow", "two_layer_sigmoid", "--out", str(photo))
    assert_refused(code, err, "it was not written by backprop")
    assert snapshot(photo) == before


# ---------------------------------------------------------------------------
# --dims: huge, malformed, past the machine's memory
# ---------------------------------------------------------------------------


HUGE_DIMS = {
    "20 digits": ("n=99999999999999999999", "--dims: n=99999999999999999999 is too large"),
    "5,000 digits": ("n=" + "9" * 5000, "(5000 characters) is too large"),
    "non-ASCII digits": ("n=٣", "--dims: n must be a positive integer"),
    "past memory": ("m=100000000000", "more than the"),
}


@pytest.mark.parametrize("command", ["check", "train", "gradflow"])
@pytest.mark.parametrize("case", list(HUGE_DIMS))
def test_huge_dims_exit_2(tmp_path: Path, capsys, command: str, case: str) -> None:
    dims, message = HUGE_DIMS[case]
    extra = ["--out", str(tmp_path / "out")] if command != "check" else []
    code, _, err = run(capsys, command, "two_layer_sigmoid", "--dims", dims, *extra)
    assert_refused(code, err, message)
    assert len(err) < 300  # a 5,000-digit number is named, not echoed
    assert list(tmp_path.iterdir()) == []


def test_check_estimates_memory_before_allocating(capsys, monkeypatch) -> None:
    """``check --dims m=100000000``: about 41 GB of arrays; refused on a machine with 8 GB, naming m."""
    monkeypatch.setattr(backprop.codegen.dims, "available_memory", lambda: 8 * 10**9)
    code, _, err = run(capsys, "check", "two_layer_sigmoid", "--dims", "m=100000000")
    assert_refused(code, err, "--dims m=100000000: the network's arrays would take about",
                   "GB, more than the 8.0 GB of memory available")


# ---------------------------------------------------------------------------
# --data: non-archives, lying headers, empty data sets
# ---------------------------------------------------------------------------


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _lying_npz() -> bytes:
    """X's .npy header claims 100000×100000 float64 (75 GB); the member holds 80 bytes."""
    real = _npy(np.ones((1, 10)))
    header = {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    fake = buf.getvalue() + real[-80:]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("x.npy", fake)
        z.writestr("y.npy", _npy(np.ones((1, 10))))
    return out.getvalue()


def _size_lying_npz() -> bytes:
    """A zip whose directory claims a member of 75 GB, stored in a few bytes."""
    raw = bytearray(save_npz({"x": np.ones((1, 10)), "y": np.ones((1, 10))}))
    i = raw.rfind(b"PK\x01\x02")  # the last central-directory entry: y.npy
    raw[i + 24 : i + 28] = struct.pack("<I", 0xFFFFFFF0)  # its uncompressed size
    return bytes(raw)


def _npz_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return out.getvalue()


def _bad_header() -> bytes:
    """X's header is not a Python literal (an unclosed parenthesis: numpy's parser raises TokenError)."""
    raw = _npy(np.ones((1, 10))).replace(b"'shape': (1, 10)", b"'shape': (1, 10 ")
    return _npz_of({"x.npy": raw, "y.npy": _npy(np.ones((1, 10)))})


def _pickled() -> bytes:
    out = io.BytesIO()
    np.savez(out, x=np.array([[object()] * 4], dtype=object), y=np.ones((1, 4)))
    return out.getvalue()


BAD_DATA = {
    ".npy named .npz": (_npy(np.ones((1, 10))), "a single NumPy .npy array, not an .npz archive"),
    "random bytes": (np.random.default_rng(0).bytes(4096), "not a NumPy .npz archive (not a zip file)"),
    "text": (b"x,y\n1,2\n3,4\n", "not a NumPy .npz archive"),
    "empty file": (b"", "not a NumPy .npz archive"),
    "truncated zip": (save_npz({"x": np.ones((1, 10)), "y": np.ones((1, 10))})[:150], "not a readable NumPy .npz"),
    "header claims 75 GB": (_lying_npz(), "array 'x': its header claims shape (100000, 100000) (80.0 GB)"),
    "zip claims 75 GB": (_size_lying_npz(), "a damaged or forged file"),
    "malformed header": (_bad_header(), "array 'x' is not a NumPy array (its header: "),
    # both sizes round to 3.2 kB: the message gives them exactly rather than contradict itself
    "8 bytes short": (_npz_of({"x.npy": _npy(np.ones((20, 20)))[:-8], "y.npy": _npy(np.ones((1, 10)))}),
                      "its header claims shape (20, 20) (3,200 bytes), but the archive holds 3,192 bytes for it"),
    "pickled objects": (_pickled(), "array 'x' holds object values; expected numbers"),
    "no examples": (save_npz({"x": np.ones((1, 0)), "y": np.ones((1, 0))}),
                    "array 'x' has shape (1, 0): no examples (m = 0): an empty data set"),
}


@pytest.mark.parametrize("command", ["train", "gradflow"])
@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_exits_2_in_one_line(tmp_path: Path, capsys, command: str, case: str) -> None:
    content, message = BAD_DATA[case]
    data = tmp_path / "data.npz"
    data.write_bytes(content)
    before = snapshot(tmp_path)
    out = tmp_path / ("out.png" if command == "gradflow" else "out")
    code, _, err = run(capsys, command, "univariate_regression", "--data", str(data), "--out", str(out))
    assert_refused(code, err, f"backprop: error: {data}: ", message)
    assert "--val" not in err
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]


def test_an_empty_feature_dim_is_named(tmp_path: Path, capsys) -> None:
    data = tmp_path / "d.npz"
    data.write_bytes(save_npz({"X": np.ones((0, 20)), "y": np.ones((1, 20))}))
    code, _, err = run(capsys, "train", "multivariate_regression", "--data", str(data), "--out", str(tmp_path / "o"))
    assert_refused(code, err, "array 'X' has shape (0, 20): it is empty (n = 0)")
    assert "--val" not in err


def test_bad_data_in_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data.npz"
    data.write_bytes(_lying_npz())
    r = subprocess.run([*CLI, "train", "univariate_regression", "--data", str(data), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert_refused(r.returncode, r.stderr, "a damaged or forged file")


# ---------------------------------------------------------------------------
# Generated modules: non-numeric arrays
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    np.array([["a"] * 5] * 3), np.full((3, 5), None, dtype=object), [["a"] * 5] * 3, None, "abc",
], ids=["strings", "objects", "list of strings", "None", "str"])
def test_generated_module_refuses_non_numbers_naming_the_argument(bad: object) -> None:
    mod = codegen.load_module("two_layer_sigmoid")
    params = mod.init_params({"n": 3, "k": 4}, seed=0)
    good = {"X": np.ones((3, 5)), "y": np.ones((1, 5))}
    mod.loss_and_grads(params, good)  # the shapes are now accepted (cached): a string array of them is not
    with pytest.raises(ValueError, match=r"^X: expected numbers, got "):
        mod.loss_and_grads(params, {**good, "X": bad})
    with pytest.raises(ValueError, match=r"^b2: expected numbers"):
        mod.loss_and_grads({**params, "b2": bad}, good)
    assert np.isfinite(mod.loss_and_grads(params, {**good, "X": np.ones((3, 5), dtype=np.float32)})[0])


@pytest.mark.parametrize("numbers", [[[1.0] * 5] * 3, ((1,) * 5,) * 3], ids=["list", "tuple"])
def test_generated_module_refuses_a_list_of_numbers_naming_the_argument(numbers: object) -> None:
    """A list has no ``.T`` or ``@``: the module says so up front, not with an AttributeError inside backward."""
    mod = codegen.load_module("two_layer_sigmoid")
    params = mod.init_params({"n": 3, "k": 4}, seed=0)
    with pytest.raises(ValueError, match=r"^X: expected a NumPy array or a number, got a (list|tuple) of numbers; "
                                         r"pass np\.asarray\(X\)$"):
        mod.loss_and_grads(params, {"X": numbers, "y": np.ones((1, 5))})
    assert np.isfinite(mod.loss_and_grads(params, {"X": np.asarray(numbers, dtype=float), "y": np.ones((1, 5))})[0])
