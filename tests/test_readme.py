"""README.md is true: every code block runs as written, top to bottom, as a new reader would.

Shell blocks run in one temporary directory (bundled examples by name, files the README saved there
before), and the output the README shows is compared, in order (``...`` skips lines; a progress
bar's rate and a number from another BLAS build's run may differ); Python blocks run in order in
one interpreter, as a notebook's cells would. Two commands cannot run inside the suite as written
and run as their cheapest faithful form instead: ``pip install .[EXTRAS]`` checks that the extras
exist (this environment is the install), and ``python -m pytest ...`` collects the tests it would
run (running them would run this test again); ``python -m bench`` shows its options (a benchmark
run takes minutes and is never part of the suite).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from readme_blocks import Step, assert_shown, commands, expected_status, extras_of, steps

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

_KERNEL = """\
import sys, traceback
ns = {"__name__": "__main__"}
for line in sys.stdin:
    path = line.rstrip("\\n")
    try:
        with open(path, encoding="utf-8") as f:
            exec(compile(f.read(), path, "exec"), ns)
        status = "ok"
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        status = "failed"
    print("\\0" + status, flush=True)
"""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", **(extra or {})}


class Notebook:
    """One Python interpreter that runs the README's cells in order, sharing their names."""

    def __init__(self, cwd: Path) -> None:
        (cwd / "_kernel.py").write_text(_KERNEL, encoding="utf-8")
        self.cwd = cwd
        self.proc = subprocess.Popen([sys.executable, str(cwd / "_kernel.py")], cwd=cwd, env=_env(), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def run(self, step: Step) -> str:
        cell = self.cwd / f"readme_cell_{step.line}.py"
        cell.write_text(step.text, encoding="utf-8")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{cell}\n")
        self.proc.stdin.flush()
        out = []
        for line in self.proc.stdout:
            if line.startswith("\0"):
                assert line.strip("\0\n") == "ok", f"README.md:{step.line}: the Python block fails:\n{''.join(out)}"
                return "".join(out)
            out.append(line)
        raise AssertionError(f"README.md:{step.line}: the interpreter died:\n{''.join(out)}")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _collected(output: str) -> int:
    per_file = re.findall(r"^\S+\.py: (\d+)$", output, flags=re.M)
    if per_file:
        return sum(int(n) for n in per_file)
    m = re.search(r"(\d+) tests? collected", output)
    return int(m.group(1)) if m else 0


def run_shell(step: Step, cwd: Path) -> None:
    where = f"README.md:{step.line}"
    cmds = commands(step.text)
    assert cmds, f"{where}: no command"
    output = ""
    for k, (env, words, target) in enumerate(cmds):
        last = k == len(cmds) - 1
        if words[:2] == ["pip", "install"]:
            for spec in words[2:]:
                m = re.fullmatch(r"\.(?:\[([a-z,_-]+)\])?", spec)
                assert m, f"{where}: pip installs {spec!r}, not this checkout"
                unknown = set((m.group(1) or "").split(",")) - {""} - extras_of(ROOT / "pyproject.toml")
                assert not unknown, f"{where}: no such extra in pyproject.toml: {sorted(unknown)}"
            continue
        if words[0] == "backprop":
            argv, at = [sys.executable, "-m", "backprop", *words[1:]], cwd
        elif words[:3] == ["python", "-m", "pytest"]:  # collect, do not run: this test is among them
            argv, at = [sys.executable, "-m", "pytest", *words[3:], "--collect-only", "-p", "no:cacheprovider"], ROOT
        elif words[:3] == ["python", "-m", "bench"]:
            argv, at = [sys.executable, "-m", "bench", "--help"], ROOT
        elif words[:2] == ["python", "-c"]:
            argv, at = [sys.executable, *words[1:]], cwd
        else:
            raise AssertionError(f"{where}: a command this test does not know how to run: {words}")
        # one stream, as a terminal shows them interleaved; apart only when standard output goes to a file
        r = subprocess.run(argv, cwd=at, env=_env(env), text=True, timeout=900, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE if target else subprocess.STDOUT)
        want = expected_status(words[0], step.shown) if last else 0
        output = (r.stdout + (r.stderr or "")).replace(f"{cwd}{os.sep}", "")
        assert r.returncode == want, f"{where}: {' '.join(words)} exited {r.returncode}, not {want}:\n{output[-3000:]}"
        if target:
            (cwd / target).write_text(r.stdout, encoding="utf-8")
        if words[:3] == ["python", "-m", "pytest"]:
            n = _collected(r.stdout)
            assert n >= int(env.get("BACKPROP_FUZZ_SEEDS", 1)), f"{where}: collected {n} tests"
    if step.shown is not None:
        if "✓" in "".join(step.shown) or "✗" in "".join(step.shown):  # a verify report: exactly that
            assert output.splitlines() == step.shown, f"{where}: output differs:\n{output}"
        assert_shown(step.shown, output, where)


def test_every_block_is_a_step() -> None:
    """Each block has a way to run; the first two are the main and the test command .ci/run reads."""
    all_steps = steps(README)
    assert [s.kind for s in all_steps[:2]] == ["shell", "shell"]
    assert all_steps[0].text.strip() == "pip install . && backprop derive two_layer_sigmoid"
    assert all_steps[1].text.strip() == "pip install '.[test,train]' && python -m pytest"
    assert {s.kind for s in all_steps} == {"file", "shell", "cell", "package-map"}


def test_readme_top_to_bottom(tmp_path: Path) -> None:
    notebook: Notebook | None = None
    try:
        for step in steps(README):
            if step.kind == "file":
                (tmp_path / step.name).write_text(step.text, encoding="utf-8")
            elif step.kind == "shell":
                run_shell(step, tmp_path)
            elif step.kind == "cell":
                notebook = notebook or Notebook(tmp_path)
                notebook.run(step)
            else:  # the package map: tests/test_layout.py checks the imports; here, that each folder is there
                for line in step.text.splitlines():
                    assert (ROOT / line.split()[0]).is_dir(), f"README.md:{step.line}: {line.split()[0]} is not a folder"
    finally:
        if notebook is not None:
            notebook.close()


def test_api_and_paths_named_in_the_text_exist() -> None:
    """`backprop.present.text.to_text` and its like work after a plain `import backprop`; every
    `backprop/...` file or folder the README names is there."""
    names = sorted(set(re.findall(r"`(backprop(?:\.[A-Za-z_]\w*)+)", README)))
    assert len(names) >= 5
    code = "import backprop, functools\n" + "".join(
        f"functools.reduce(getattr, {n.split('.')[1:]!r}, backprop)\n" for n in names)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT.parent)
    assert r.returncode == 0, r.stderr
    paths = [p for p in set(re.findall(r"`(backprop/[\w/.*]*)`", README)) if not re.search(r"[A-Z]{3,}|\*", p)]
    assert len(paths) >= 5  # placeholders (backprop/cli/NAME.py, ops_*.py) aside
    for p in paths:
        assert (ROOT / p).exists(), p


@pytest.mark.parametrize("text, shown, status", [
    ("backprop derive rows.spec", ["rows.spec:4:8: error: shape mismatch"], 2),
    ("backprop verify x 'dW = 0'", ["✗ dW = 0  wrong"], 1),
    ("backprop derive x", ["  ∂L/∂W = ..."], 0),
])
def test_expected_status_follows_what_is_shown(text: str, shown: list[str], status: int) -> None:
    assert expected_status(commands(text)[0][1][0], shown) == status


def test_network_comment_shows_latexify_output(tmp_path: Path) -> None:
    """The comment beside ``mlp.latex()`` in "Networks as Python functions" is its real output."""
    cell = next(s for s in steps(README) if s.kind == "cell" and "@backprop.network(inputs=" in s.text)
    shown = cell.text.split("A_{1} = ", 1)[1].split(" ...", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(cell.text + "\nprint(mlp.latex())\n", encoding="utf-8")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    plain = r.stdout
    for wrapper, bare in ((r"\mathopen{}", ""), (r"\mathclose{}", ""), (r"\left(", "("), (r"\right)", ")")):
        plain = plain.replace(wrapper, bare)
    assert ("A_{1} = " + shown).replace(" ", "") in plain.replace(" ", "")
