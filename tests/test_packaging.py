"""The wheel ships templates and examples, and works from outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_examples_and_templates_and_runs_outside_checkout(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True, cwd=tmp_path,
    )
    wheel = next(tmp_path.glob("backprop_toolkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for spec in (ROOT / "backprop" / "examples").glob("*.spec"):
        assert f"backprop/examples/{spec.name}" in names
    for tpl in (ROOT / "backprop" / "templates").glob("*.j2"):
        assert f"backprop/templates/{tpl.name}" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    # The wheel claims one import name: nothing but backprop/ (and its metadata) at the top.
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"backprop"}
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import backprop, backprop.support.bundled as b; "
        f"assert str(b.examples_dir()).startswith({str(site)!r}), b.examples_dir(); "
        "print(backprop.load('two_layer_sigmoid').describe())"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "σ(Z)" in out.stdout


def test_foreign_derive_and_codegen_modules_do_not_shadow_the_toolkit(tmp_path: Path) -> None:
    """Unrelated packages named ``derive`` and ``codegen`` (both exist on the package index) first on sys.path."""
    foreign = tmp_path / "foreign"
    (foreign / "codegen").mkdir(parents=True)
    (foreign / "codegen" / "__init__.py").write_text("raise ImportError('the foreign codegen package')\n")
    (foreign / "derive.py").write_text("raise ImportError('the foreign derive module')\n")
    (foreign / "support.py").write_text("raise ImportError('a foreign top-level support module')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(foreign), str(ROOT)])}
    code = (
        "import backprop; "
        "m = backprop.load_module('logistic_regression'); "
        "print(backprop.get_derivation('two_layer_sigmoid')._repr_markdown_()[:1] != '', callable(m.loss_and_grads))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert (out.returncode, out.stdout, out.stderr) == (0, "True True\n", "")
    cli = subprocess.run([sys.executable, "-m", "backprop", "derive", "two_layer_sigmoid"], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert cli.returncode == 0 and "∂L/∂W₁" in cli.stdout, cli.stderr


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("\n", 1)[1].strip() for b in text.split("```")[1::2] if b.startswith("sh")]
    assert blocks[0] == "pip install . && backprop derive two_layer_sigmoid"
    assert blocks[1] == "pip install '.[test,train]' && python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test-command -->" in ci  # CI runs exactly the README's test command


def test_main_command_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "backprop", "derive", "two_layer_sigmoid"], capture_output=True,
                         text=True, check=True)
    assert "∂L/∂W₁" in out.stdout
