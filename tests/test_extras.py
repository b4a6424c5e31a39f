"""Optional dependencies and the version: a missing extra is one line and exit 2, ``--version`` works.

The missing modules are simulated: ``sys.modules[name] = None`` makes both
``import name`` and ``importlib.util.find_spec(name)`` fail as if it were not
installed -- in this process (monkeypatch) or, for the installed ``backprop``
command, in a child through a ``sitecustomize`` on its ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest

import backprop.support.version
from backprop.cli import main
from backprop.support.extras import MissingExtraError, missing, require

ROOT = Path(__file__).resolve().parent.parent
BACKPROP = Path(sys.executable).parent / "backprop"  # the installed command of this environment


def block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(("argv", "blocked", "message"), [
    (["train", "two_layer_sigmoid", "--synthetic"], ("matplotlib", "tqdm"),
     "backprop: error: 'backprop train' needs matplotlib and tqdm: pip install 'backprop-toolkit[train]'"),
    (["train", "two_layer_sigmoid", "--synthetic"], ("tqdm",),
     "backprop: error: 'backprop train' needs tqdm: pip install 'backprop-toolkit[train]'"),
    (["train", "two_layer_sigmoid", "-q"], ("matplotlib", "tqdm"),  # no bar: tqdm not needed
     "backprop: error: 'backprop train' needs matplotlib: pip install 'backprop-toolkit[train]'"),
    (["gradflow", "deep_relu"], ("matplotlib",),
     "backprop: error: 'backprop gradflow' needs matplotlib: pip install 'backprop-toolkit[train]'"),
])
def test_missing_extra_is_one_line_exit_2_nothing_written(
    argv: list[str], blocked: tuple[str, ...], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if missing("matplotlib", "tqdm") and "matplotlib" not in blocked:
        pytest.skip("needs matplotlib installed (the [train] extra) to block tqdm alone")
    monkeypatch.chdir(tmp_path)
    block(monkeypatch, *blocked)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err == message + "\n" and out == ""  # checked before anything is printed or computed
    assert list(tmp_path.iterdir()) == []


def test_installed_command_without_matplotlib_and_tqdm(tmp_path: Path) -> None:
    """The real entry point in a fresh process where the modules cannot be found: no traceback, nothing written;
    the commands that need no extra still work."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\nsys.modules['tqdm'] = None\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(shim)}
    cmd = [str(BACKPROP)] if BACKPROP.exists() else [sys.executable, "-m", "backprop"]

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, *argv], capture_output=True, text=True, cwd=work, env=env, timeout=300)

    for argv, what, needs in ((["train", "two_layer_sigmoid", "--synthetic"], "train", "matplotlib and tqdm"),
                              (["gradflow", "deep_relu"], "gradflow", "matplotlib")):
        r = run(*argv)
        assert r.returncode == 2, r.stderr
        assert r.stderr == f"backprop: error: 'backprop {what}' needs {needs}: pip install 'backprop-toolkit[train]'\n"
        assert "Traceback" not in r.stderr and r.stdout == ""
        assert list(work.iterdir()) == []
    r = run("codegen", "logistic_regression")
    assert r.returncode == 0 and "def loss_and_grads" in r.stdout, r.stderr


def test_python_api_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From Python the same message is an ImportError, raised before any work or file."""
    from backprop import codegen
    from backprop.train.loop import History, train, write_outputs

    block(monkeypatch, "matplotlib", "tqdm")
    module = codegen.load_module("logistic_regression")
    with pytest.raises(MissingExtraError, match=r"needs tqdm: pip install 'backprop-toolkit\[train\]'"):
        train(module, {}, {}, progress=True)
    h = History("x", "sgd", 0.1, 1, ("w",), 1)
    with pytest.raises(ImportError, match=r"write_outputs needs matplotlib: pip install 'backprop-toolkit\[train\]'"):
        write_outputs(tmp_path / "run", h, {}, "x")
    assert not (tmp_path / "run").exists()
    import backprop.train.plots  # noqa: F401  (importable without matplotlib: it is imported when a figure is made)


def test_require_and_missing() -> None:
    assert missing("json", "no_such_module_xyz", "no_such_parent_xyz.child") == ["no_such_module_xyz",
                                                                                  "no_such_parent_xyz.child"]
    require("x", "json")  # present: nothing happens
    with pytest.raises(MissingExtraError) as e:
        require("'backprop x'", "no_such_module_xyz", "tqdm", "no_such_b")
    assert str(e.value).startswith("'backprop x' needs ")
    assert e.value.name == "no_such_module_xyz"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"backprop {dist_version('backprop-toolkit')}\n"


def test_version_from_an_uninstalled_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(backprop.support.version, "_dist_version", not_installed)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert backprop.support.version.version() == pyproject["project"]["version"]


def test_python_m_backprop_version_and_help() -> None:
    r = subprocess.run([sys.executable, "-m", "backprop", "--version"], capture_output=True, text=True, timeout=300)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"backprop {dist_version('backprop-toolkit')}\n", "")
    r = subprocess.run([sys.executable, "-m", "backprop", "train", "--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("usage: backprop train")
