"""The ``backprop`` command line.

Each subcommand lives in its own module exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; this file only lists them
and turns user errors into compiler-style messages with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .deepstack import deep_stack
from .errors import SpecError


class UsageError(Exception):
    """A bad option value or an unsafe request; printed as ``backprop: error: ...``."""


#: subcommand -> module implementing it
COMMANDS: dict[str, str] = {
    "derive": "derive.cmd_derive",
    "examples": "derive.cmd_show",
    "show": "derive.cmd_show",
    "verify": "derive.cmd_verify",
    "codegen": "codegen.cmd_codegen",
    "check": "codegen.cmd_check",
    "train": "codegen.cmd_train",
    "gradflow": "codegen.cmd_gradflow",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backprop",
        description="Neural networks as symbolic forward equations: derivations, NumPy code, checks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        helps = getattr(module, "HELP", {})
        p = sub.add_parser(name, help=helps.get(name, ""), description=helps.get(name, ""))
        module.add_arguments(name, p)
        p.set_defaults(_module=module)
    return parser


@deep_stack
def _run(args: argparse.Namespace) -> int:
    """The subcommand, on the deep stack: a 1,000-layer network is an ordinary spec."""
    return int(args._module.run(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except SpecError as e:
        print(e.format(), file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"backprop: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `backprop derive ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    # Run the imported module's main, so UsageError is the class the subcommands raise.
    from derive.cli import main as _main

    sys.exit(_main())
