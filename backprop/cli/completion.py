"""``backprop completion bash|zsh``: a shell completion script, generated from the parser.

The script is static (shtab writes it from the argparse parser): a TAB runs no Python, which
matters for a command that imports SymPy. shtab is the optional ``[completion]`` extra; without
it the command says so in one line. SPEC completes to the bundled examples' names and files.
"""

from __future__ import annotations

import argparse
import sys

from backprop.support.bundled import example_names
from backprop.support.extras import require

HELP = {"completion": "print a bash or zsh completion script for backprop (needs the [completion] extra)"}
EXAMPLES = {"completion": (
    "backprop completion bash > ~/.local/share/bash-completion/completions/backprop",
    "backprop completion zsh > ~/.zfunc/_backprop    # a directory on $fpath",
)}
SHELLS = ("bash", "zsh")

#: What each kind of argument completes to (shtab's spellings; set on the parser's actions).
SPEC = {"bash": "_backprop_spec", "zsh": "_backprop_spec"}
FILE = {"bash": "_shtab_compgen_files", "zsh": "_files"}
DIR = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/"}
#: Metavars other than FILE... that name files to read.
FILE_METAVARS = frozenset({"ANSWERS"})


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=SHELLS, help="the shell to complete for")


def mark_completions(parser: argparse.ArgumentParser) -> None:
    """Say what each argument completes to: SPEC an example name or a file, FILE a file, DIR a directory."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                mark_completions(sub)
        elif action.metavar == "SPEC":
            action.complete = SPEC  # type: ignore[attr-defined]
        elif action.metavar == "DIR":
            action.complete = DIR  # type: ignore[attr-defined]
        elif isinstance(action.metavar, str) and (action.metavar.startswith("FILE") or action.metavar in FILE_METAVARS):
            action.complete = FILE  # type: ignore[attr-defined]


def _preamble() -> dict[str, str]:
    names = " ".join(example_names())
    return {
        "bash": f'_backprop_spec() {{\n  compgen -W "{names}" -- "$1"\n  _shtab_compgen_files "$1"\n}}\n',
        "zsh": f"_backprop_spec() {{\n  _alternative 'examples:bundled example:({names})' 'files:spec file:_files'\n}}\n",
    }


def run(args: argparse.Namespace) -> int:
    require("'backprop completion'", "shtab")
    import shtab

    sys.stdout.write(shtab.complete(args._parser, shell=args.shell, preamble=_preamble()))
    return 0
