"""Shell completion (``backprop completion bash|zsh``, written by shtab from the parser) and the two
examples that end every subcommand's ``--help``."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backprop.cli import COMMANDS, build_parser, command, main
from backprop.support.bundled import example_names


def _script(capsys: pytest.CaptureFixture[str], shell: str) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def test_bash_completes_commands_examples_and_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    script = tmp_path / "backprop.bash"
    script.write_text(_script(capsys, "bash"), encoding="utf-8")
    (tmp_path / "net.spec").write_text("", encoding="utf-8")
    probe = (
        f"source {shlex.quote(str(script))}\n"
        'f() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=();'
        ' _shtab_backprop; echo "${COMPREPLY[*]}"; }\n'
        "f backprop de\nf backprop derive two_l\nf backprop derive net.s\nf backprop derive x --per\n"
        "f backprop train x --optimizer r\nf backprop completion z\n"
    )
    bash = shutil.which("bash")
    assert bash is not None
    r = subprocess.run([bash, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["derive", "two_layer_sigmoid two_linear_layers", "net.spec",
                                     "--per-param-updates", "rmsprop", "zsh"]


def test_zsh_script_covers_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    script = _script(capsys, "zsh")
    assert script.startswith("#compdef backprop")
    assert "_backprop_spec() {" in script and all(n in script for n in example_names())
    assert all(f"{name}:" in script for name in COMMANDS) and "--per-param-updates" in script


def test_without_shtab_one_line_names_the_extra(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "shtab", None)  # as if not installed
    assert main(["completion", "bash"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("backprop: error: 'backprop completion' needs shtab: "
                                 "pip install 'backprop-toolkit[completion]'\n")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_ends_with_two_examples_that_parse(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    tail = capsys.readouterr().out.rstrip("\n").splitlines()[-3:]
    assert tail[0] == "examples:" and all(ln.startswith(f"  backprop {name}") for ln in tail[1:]), tail
    for line in tail[1:]:
        words = shlex.split(line, comments=True)
        for stop in ("|", "&&", ">"):
            words = words[: words.index(stop)] if stop in words else words
        args = build_parser().parse_args(words[1:])  # a real command line, not a sketch of one
        assert args.command == name


def test_grade_completes_specs_manifests_and_answers_files(capsys: pytest.CaptureFixture[str]) -> None:
    script = _script(capsys, "zsh")
    options = script.split("_shtab_backprop_grade_options=(", 1)[1].split("\n)", 1)[0]
    assert ":_backprop_spec\"" in options  # SPEC: a bundled name, a spec file or a manifest
    assert "one student\\'s .txt:_files\"" in options  # ANSWERS: files
    assert "--submission[" in options and ":DIR:_files -/\"" in options


@pytest.mark.parametrize("name", [n for n in COMMANDS if n != "completion"])
def test_one_subcommand_parser_is_the_whole_parsers(name: str) -> None:
    """A command line starting with a subcommand is parsed by a parser holding that subcommand alone
    (it imports one module, not all); its help and its parse of every example are the whole parser's."""
    def sub(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]

    whole, alone = build_parser(), build_parser(name)
    assert sub(alone).format_help() == sub(whole).format_help()
    for line in command(name).EXAMPLES[name]:
        words = shlex.split(line, comments=True)
        for stop in ("|", "&&", ">"):
            words = words[: words.index(stop)] if stop in words else words
        a, b = vars(alone.parse_args(words[1:])), vars(whole.parse_args(words[1:]))
        assert a.pop("_parser", None) is None and b.pop("_parser") is whole
        assert a == b
