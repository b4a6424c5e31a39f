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
    wheel = next(tmp_path.glob("backprop-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for spec in (ROOT / "examples").glob("*.spec"):
        assert f"backprop_examples/{spec.name}" in names
    for tpl in (ROOT / "templates").glob("*.j2"):
        assert f"backprop_templates/{tpl.name}" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import derive, derive.parse as p; "
        f"assert str(p.examples_dir()).startswith({str(site)!r}), p.examples_dir(); "
        "print(derive.load('two_layer_sigmoid').describe())"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "σ(Z)" in out.stdout


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("\n", 1)[1].strip() for b in text.split("```")[1::2] if b.startswith("sh")]
    assert blocks[0] == "pip install . && backprop derive two_layer_sigmoid"
    assert blocks[1] == "pip install '.[test,train]' && python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test-command -->" in ci  # CI runs exactly the README's test command


def test_main_command_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "derive.cli", "derive", "two_layer_sigmoid"], capture_output=True,
                         text=True, check=True)
    assert "∂L/∂W₁" in out.stdout
