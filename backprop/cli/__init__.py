"""The ``backprop`` command line.

Each subcommand lives in its own module exposing ``HELP``, ``EXAMPLES``,
``add_arguments(name, parser)`` and ``run(args) -> int``; this file only lists them
(by module path: a command line imports the one module its subcommand needs, see
:func:`build_parser`) and turns user errors -- and a missing optional dependency (``backprop.support.extras``) --
into compiler-style messages with exit status 2; a bug of ours is one line saying so, exit 70
(``BACKPROP_TRACEBACK=1`` shows its traceback).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import textwrap
from collections.abc import Sequence
from types import ModuleType

from backprop.support.errors import SpecError, UsageError, os_error
from backprop.support.escape import visible
from backprop.support.extras import MissingExtraError
from backprop.support.gcpause import cyclic_gc_paused
from backprop.support.version import version

#: subcommand -> the module implementing it, imported when that subcommand runs (or the whole
#: parser is built): ``backprop verify`` then never imports code generation, training or grading.
COMMANDS: dict[str, str] = {
    "derive": "backprop.cli.derive",
    "examples": "backprop.cli.show",
    "show": "backprop.cli.show",
    "verify": "backprop.cli.verify",
    "grade": "backprop.cli.grade",
    "codegen": "backprop.cli.codegen",
    "check": "backprop.cli.check",
    "train": "backprop.cli.train",
    "gradflow": "backprop.cli.gradflow",
    "completion": "backprop.cli.completion",
}


def command(name: str) -> ModuleType:
    """The module implementing subcommand ``name`` (imported now if it was not)."""
    return importlib.import_module(COMMANDS[name])


class _VersionAction(argparse._VersionAction):  # shtab knows this class: --version ends an option list
    """``--version``, reading the version only when asked (the package metadata is slow to reach)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        self.version = f"backprop {version()}"
        super().__call__(parser, namespace, values, option_string)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: every subcommand, or with ``only`` that one subcommand alone.

    A parser with one subcommand parses that subcommand's command lines exactly as the whole one
    does (everything after the subcommand's name is its parser's), and imports one module instead
    of all of them: the top-level help, errors before a subcommand and ``backprop completion``
    need the whole parser, see :func:`main`.
    """
    parser = argparse.ArgumentParser(
        prog="backprop",
        description="Neural networks as symbolic forward equations: derivations, NumPy code, checks.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print backprop's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        module = command(name)
        helps = getattr(module, "HELP", {})
        examples = "\n".join(f"  {e}" for e in module.EXAMPLES[name])
        p = sub.add_parser(name, help=helps.get(name, ""), description=textwrap.fill(helps.get(name, ""), 79),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(name, p)
        p.epilog = (p.epilog.rstrip() + "\n\n" if p.epilog else "") + f"examples:\n{examples}"  # always last
        p.set_defaults(_module=module)
    if only is None:
        command("completion").mark_completions(parser)
        parser.set_defaults(_parser=parser)  # what `backprop completion` writes its script from
    return parser


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser ``argv`` needs: one subcommand's when argv starts with its name (the top-level
    options take no values, so nothing else can come first), else the whole parser."""
    first = argv[0] if argv else None
    return build_parser(first if first in COMMANDS and first != "completion" else None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (None: this process's own, ``sys.argv[1:]``); its exit status."""
    program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    with cyclic_gc_paused():  # importing the subcommand's stages (SymPy, NumPy) makes no garbage to collect
        parser = _parser_for(argv)
    if program:
        # The process ends with this command: what the imports built (about 60,000 objects) lives
        # until then, so the cyclic collector stops walking it -- in every full collection of the
        # run and in the one at exit (together about 90 ms of a 0.5 s `backprop verify`). Not for
        # a caller that goes on after main() (tests): it would freeze its own objects too.
        gc.freeze()
    args = parser.parse_args(argv)
    try:
        # The subcommand runs on the main thread, where signals arrive and handlers that clean up
        # temp files can be installed; the symbolic stages it calls run on the deep stack themselves.
        return int(args._module.run(args) or 0)
    except SpecError as e:
        print(e.format(), file=sys.stderr)
        return 2
    except (UsageError, MissingExtraError) as e:  # a missing extra: which one to install, not a traceback
        print(f"backprop: error: {visible(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `backprop derive ... | head`
        return 0
    except OSError as e:  # a path the user named that the system refuses (too long, no permission, disk full)
        print(f"backprop: error: {os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: files are left as they were (writes are atomic), no traceback
        print("backprop: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("backprop: error: out of memory (smaller --dims, or a smaller spec)", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a bug of ours: say so in one line, as compilers do
        if os.environ.get("BACKPROP_TRACEBACK"):
            raise
        print(f"backprop: internal error: {type(e).__name__}: {visible(str(e))[:500]}\n"
              f"backprop: this is a bug in backprop {version()}, not in your input; nothing was written. "
              "Please report it with the command and the spec (BACKPROP_TRACEBACK=1 shows the traceback).",
              file=sys.stderr)
        return 70  # EX_SOFTWARE

