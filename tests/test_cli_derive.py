"""``backprop derive``: formats, options, atomic -o, errors (exit 2, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backprop.cli import main
from backprop.present.layout import T_BACKWARD, T_EXPANDED, T_FORWARD, T_INDEX

MALFORMED = "input X[n, m]\nparam W1[k, n]\nZ = W1 @ X +\nloss = sum(Z)\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_default_is_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "derive", "two_layer_sigmoid")
    assert code == 0 and err == ""
    assert out.startswith("Backpropagation through two_layer_sigmoid\n")
    assert f"\n{T_FORWARD}\n" in out and f"\n{T_BACKWARD}\n" in out
    assert "  ∂L/∂W₁ = ∂L/∂Z Xᵀ" in out


@pytest.mark.parametrize("fmt", ["text", "latex", "markdown", "json"])
def test_each_format(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    code, out, err = run(capsys, "derive", "mlp_softmax", "--format", fmt)
    assert code == 0 and err == "" and out
    if fmt == "json":
        assert json.loads(out)["spec"] == "mlp_softmax"
    elif fmt == "latex":
        assert r"\begin{align*}" in out and r"\documentclass" not in out
    elif fmt == "markdown":
        assert out.startswith("# Backpropagation through `mlp_softmax`")


def test_standalone(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "derive", "logistic_regression", "--format", "latex", "--standalone")
    assert code == 0 and out.startswith("%") and r"\documentclass" in out and out.rstrip().endswith(r"\end{document}")


def test_standalone_needs_latex(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "derive", "logistic_regression", "--standalone")
    assert code == 2 and out == "" and "--standalone applies to --format latex" in err


def test_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "derive", "two_layer_sigmoid", "--param", "W1", "--expanded", "--index")
    assert code == 0
    assert T_EXPANDED in out and T_INDEX in out
    assert "∂L/∂W₁[i,j] = Σₜ ∂L/∂Z[i,t] X[j,t]" in out
    assert "∂L/∂b₁" not in out and "∂L/∂w₂" not in out  # only the steps W1 needs


def test_optimizer_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "derive", "logistic_regression", "--optimizer", "momentum")
    assert code == 0 and "Update (gradient descent with momentum, learning rate α)" in out
    assert "For every parameter θ (w, b), each with its own averages: v_dθ ← β · v_dθ + (1 − β) · ∂L/∂θ" in " ".join(out.split())
    assert "v_dw" not in out  # once, for θ: not once per param
    code, out, _ = run(capsys, "derive", "logistic_regression", "--optimizer", "momentum", "--per-param-updates")
    assert code == 0 and "  w    ← w − α · v_dw\n\n  v_db ← β · v_db + (1 − β) · ∂L/∂b\n" in out
    assert "θ" not in out
    with pytest.raises(SystemExit) as e:
        main(["derive", "logistic_regression", "--optimizer", "adagrad"])
    assert e.value.code == 2


def test_unknown_param_exits_2_naming_the_params(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    code, out, err = run(capsys, "derive", "two_layer_sigmoid", "--param", "W3", "-o", str(target))
    assert code == 2 and out == ""
    assert err.startswith("backprop: error: --param W3") and "W1, b1, w2, b2" in err
    assert not target.exists()


def test_output_file_written_atomically(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "notes.tex"
    assert run(capsys, "derive", "logistic_regression", "-o", str(target))[0] == 0  # ours: may be replaced
    code, out, _ = run(capsys, "derive", "two_layer_sigmoid", "--format", "latex", "--standalone", "-o", str(target))
    assert code == 0 and out == ""
    _, expected, _ = run(capsys, "derive", "two_layer_sigmoid", "--format", "latex", "--standalone")
    mark, _, rest = target.read_text(encoding="utf-8").partition("\n")
    assert rest == expected and mark.startswith("% written by backprop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.tex"]  # no temp file left behind


def test_output_format_follows_suffix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for name, check in (("d.json", lambda s: json.loads(s)["spec"] == "two_layer_sigmoid"),
                        ("d.md", lambda s: s.splitlines()[1].startswith("# Backpropagation")),
                        ("d.tex", lambda s: r"\begin{align*}" in s),
                        ("d", lambda s: s.splitlines()[1].startswith("Backpropagation through"))):
        assert run(capsys, "derive", "two_layer_sigmoid", "-o", str(tmp_path / name))[0] == 0
        assert check((tmp_path / name).read_text(encoding="utf-8")), name


def test_malformed_spec_exits_2_and_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "bad.spec"
    spec.write_text(MALFORMED)
    fresh = tmp_path / "fresh.md"
    code, out, err = run(capsys, "derive", str(spec), "--format", "markdown", "-o", str(fresh))
    assert code == 2 and out == ""
    assert err.startswith(f"{spec}:3:"), err
    assert ": error: " in err.splitlines()[0] and "Traceback" not in err
    assert not fresh.exists()
    existing = tmp_path / "kept.md"
    existing.write_text("keep me\n")
    assert run(capsys, "derive", str(spec), "-o", str(existing))[0] == 2
    assert existing.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.spec", "kept.md"]


def test_missing_spec_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "derive", "no_such_network")
    assert code == 2 and out == "" and "no such file or bundled example" in err


def test_output_into_a_missing_directory_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "derive", "two_layer_sigmoid", "-o", str(tmp_path / "nope" / "d.txt"))
    assert code == 2 and out == "" and err.startswith("backprop: error: -o ") and "no such directory" in err


def test_output_to_a_directory_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "derive", "two_layer_sigmoid", "-o", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_readme_main_command_entry_point() -> None:
    """The installed ``backprop`` script prints the derivation (as the README promises)."""
    exe = Path(sys.executable).with_name("backprop")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "backprop.cli"]
    run_ = subprocess.run([*cmd, "derive", "two_layer_sigmoid"], capture_output=True, text=True, timeout=120)
    assert run_.returncode == 0, run_.stderr
    assert "  ∂L/∂Z = ∂L/∂A ∂A/∂Z " in run_.stdout
    assert "\n      ∂L/∂Z = ∂L/∂A ⊙ A ⊙ (1 − A)   by logistic function\n" in run_.stdout
