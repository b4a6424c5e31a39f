"""The ``backprop`` command line.

Each subcommand lives in its own module exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; this file only lists them
and turns user errors -- and a missing optional dependency (``backprop.support.extras``) --
into compiler-style messages with exit status 2; a bug of ours is one line saying so, exit 70
(``BACKPROP_TRACEBACK=1`` shows its traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from types import ModuleType

from backprop.cli import check, codegen, completion, derive, grade, gradflow, show, train, verify
from backprop.support.errors import SpecError, UsageError, os_error
from backprop.support.escape import visible
from backprop.support.extras import MissingExtraError
from backprop.support.version import version

#: subcommand -> module implementing it
COMMANDS: dict[str, ModuleType] = {
    "derive": derive,
    "examples": show,
    "show": show,
    "verify": verify,
    "grade": grade,
    "codegen": codegen,
    "check": check,
    "train": train,
    "gradflow": gradflow,
    "completion": completion,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backprop",
        description="Neural networks as symbolic forward equations: derivations, NumPy code, checks.",
    )
    parser.add_argument("--version", action="version", version=f"backprop {version()}",
                        help="print backprop's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        helps = getattr(module, "HELP", {})
        examples = "\n".join(f"  {e}" for e in module.EXAMPLES[name])
        p = sub.add_parser(name, help=helps.get(name, ""), description=textwrap.fill(helps.get(name, ""), 79),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(name, p)
        p.epilog = (p.epilog.rstrip() + "\n\n" if p.epilog else "") + f"examples:\n{examples}"  # always last
        p.set_defaults(_module=module)
    completion.mark_completions(parser)
    parser.set_defaults(_parser=parser)  # what `backprop completion` writes its script from
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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

