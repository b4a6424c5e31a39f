"""The README's "Training" and "Networks as Python functions" sections show real behaviour."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backprop.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    s = README.split(f"\n## {title}\n", 1)[1]
    return s.split("\n## ", 1)[0]


def shell_block(text: str, command: str) -> tuple[list[str], list[str]]:
    """(argv after ``backprop``, the lines shown) of the ```` ``` ```` block starting ``$ backprop COMMAND``."""
    block = text.split(f"```\n$ backprop {command} ", 1)[1].split("\n```", 1)[0]
    argv, *shown = block.splitlines()
    return [command, *argv.split()], shown


def python_blocks(text: str) -> list[str]:
    return [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]


def assert_in_order(shown: list[str], out: str) -> None:
    lines = out.splitlines()
    at = 0
    for want in (ln for ln in shown if ln.strip() and ln.strip() != "..."):
        assert want in lines[at:], f"README line not in the output (in order): {want!r}"
        at = lines.index(want, at) + 1


def test_derive_optimizer_excerpt(capsys: pytest.CaptureFixture[str]) -> None:
    argv, shown = shell_block(section("Training"), "derive")
    assert main(argv) == 0
    assert_in_order(shown, capsys.readouterr().out)


def test_gradflow_excerpt(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv, shown = shell_block(section("Training"), "gradflow")
    assert main(argv) == 0
    assert_in_order(shown, capsys.readouterr().out)
    assert (tmp_path / "runs" / "deep_relu" / "gradflow_init.png").is_file()


def test_train_excerpt(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run shown: its setup lines exactly; the loss line's numbers within rounding of other BLAS builds."""
    monkeypatch.chdir(tmp_path)
    argv, shown = shell_block(section("Training"), "train")
    assert main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert_in_order([ln for ln in shown if ln.startswith(("training ", "  X ", "  y ", "wrote "))], out)
    (want,) = [ln for ln in shown if ln.startswith("loss ")]
    (got,) = [ln for ln in out.splitlines() if ln.startswith("loss ")]
    w, g = want.split(), got.split()
    assert float(g[1]) == pytest.approx(float(w[1]), rel=1e-5)
    assert float(g[3]) == pytest.approx(float(w[3]), rel=1e-2)
    assert g[5:] == w[5:]
    assert any(ln.startswith("two_layer_sigmoid · adam: 100%|") for ln in shown)  # the bar, as a terminal shows it


def test_step_loop_runs(tmp_path: Path) -> None:
    loop = next(b for b in python_blocks(section("Training")) if "import mlp" in b)
    assert main(["codegen", "mlp_softmax", "--optimizer", "adam", "-o", str(tmp_path / "mlp.py")]) == 0
    script = tmp_path / "loop.py"
    script.write_text(
        "import numpy as np\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((784, 64))\n"
        "Y = np.eye(10)[:, rng.integers(0, 10, 64)]\n"
        "batches = [(X[:, i:i + 16], Y[:, i:i + 16]) for i in range(0, 64, 16)] * 5\n"
        + loop
        + "print(mlp.loss_and_grads(params, {'X': X, 'Y': Y})[0])\n",
        encoding="utf-8",
    )
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.split()[-1]) < 1.0  # 20 Adam steps fit 64 random labels well below log(10)


def test_python_function_example(tmp_path: Path) -> None:
    text = section("Networks as Python functions")
    example, net = python_blocks(text)[:2]
    script = tmp_path / "example.py"
    script.write_text(
        example + "\nprint(mlp.model.describe())\nprint(mlp.latex())\n", encoding="utf-8"
    )
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "loss  loss             1×1  = −Σ(Y ⊙ log_softmax(W₂ A₁ + b₂))/m" in r.stdout
    shown = example.split("A_{1} = ", 1)[1].split(" ...", 1)[0]
    plain = r.stdout.replace(r"\mathopen{}", "").replace(r"\mathclose{}", "").replace(r"\left(", "(").replace(r"\right)", ")")
    assert shown.replace(" ", "") in plain.replace(" ", "")

    (tmp_path / "net.py").write_text(net, encoding="utf-8")
    r = subprocess.run([sys.executable, "-c", "import net"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    error = text.split("importing it raises\n\n```\n", 1)[1].split("\n```", 1)[0]
    assert r.returncode == 1
    assert r.stderr.rstrip().endswith(error.replace("net.py:", str(tmp_path / "net.py") + ":"))
