"""``backprop derive SPEC``: the derivation as lecture notes (text, LaTeX, Markdown, JSON)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backprop.cli.options import path
from backprop.engine.optim import OPTIMIZERS
from backprop.engine.pipeline import get_notes_derivation
from backprop.engine.through_time import TimeDerivation
from backprop.present.render import FORMATS, render
from backprop.support.errors import UsageError
from backprop.support.escape import path_word, shell_join
from backprop.support.files import UnsafeWriteError, check_target, safe_write, spec_files, stamp

HELP = {
    "derive": "print the chain-rule derivation: forward pass, backward steps, gradients, updates",
}
EXAMPLES = {"derive": (
    "backprop derive two_layer_sigmoid --param W1 --index",
    "backprop derive net.spec --format latex --standalone -o notes.tex && pdflatex notes.tex",
)}

#: ``-o FILE`` without ``--format``: the format follows the file's suffix.
SUFFIX_FORMATS = {".txt": "text", ".tex": "latex", ".md": "markdown", ".json": "json"}


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file or bundled example name (see `backprop examples`)")
    p.add_argument(
        "-f", "--format", choices=FORMATS, default=None,
        help="output format (default: text; with -o, from the file suffix .tex/.md/.json/.txt)",
    )
    p.add_argument("--standalone", action="store_true", help="LaTeX: a whole document that compiles with pdflatex")
    p.add_argument("-o", "--output", type=path, metavar="FILE",
                   help="write to FILE (atomically, only if everything succeeded); refuses to overwrite the spec, "
                   "a file backprop did not write, or one edited since; a symbolic link is followed")
    p.add_argument("--force", action="store_true", help="with -o: overwrite FILE even if backprop did not write it")
    p.add_argument("--param", metavar="NAME", help="only the steps the gradient of parameter NAME needs")
    p.add_argument("--expanded", action="store_true", help="also each gradient fully expanded (forward quantities only)")
    p.add_argument("--index", action="store_true", help="also each gradient entry by entry, in index notation")
    p.add_argument("--brief", action="store_true",
                   help="each backward step as its result and the rules' names, without the line-by-line working")
    p.add_argument(
        "--optimizer", choices=list(OPTIMIZERS), default="sgd",
        help="the update equations that end the derivation (default: sgd, plain gradient descent)",
    )
    p.add_argument("--per-param-updates", action="store_true",
                   help="the optimizer's equations written out for every param (default: once, for a generic θ)")
    p.add_argument("--unroll", type=_unroll, default=0, metavar="N",
                   help="a spec with a loop: also the recursion written out for N steps, t = 1, …, N (1 to 10)")


def _unroll(text: str) -> int:
    """``--unroll N``: a few steps written out (more would be pages of copies)."""
    if not text.isdigit() or not 1 <= int(text) <= 10:
        raise argparse.ArgumentTypeError(f"expected a whole number of steps from 1 to 10, got '{text}'")
    return int(text)


def _format(args: argparse.Namespace) -> str:
    """--format, else the -o suffix's; a suffix that names no format is refused rather than
    written as text (``-o notes.pdf`` would be a text file named .pdf)."""
    suffix = Path(args.output).suffix.lower() if args.output else ""
    if suffix == ".pdf" or (suffix and not args.format and suffix not in SUFFIX_FORMATS):
        where = f"-o {path_word(str(args.output))}: unknown output suffix '{suffix}'"
        known = ", ".join(sorted(SUFFIX_FORMATS))
        if suffix != ".pdf":
            raise UsageError(f"{where} (known: {known}; or name the format with --format)")
        tex = shell_join([path_word(str(Path(args.output).with_suffix(".tex")))])
        raise UsageError(f"{where} (known: {known}): for a PDF, write LaTeX and compile it: backprop derive "
                         f"{shell_join([path_word(args.spec)])} --format latex --standalone -o {tex} && pdflatex {tex}")
    if args.format:
        return str(args.format)
    return SUFFIX_FORMATS.get(suffix, "text")


def _command(args: argparse.Namespace, fmt: str) -> str:
    """The command that rewrites the file, for its "written by backprop" mark."""
    words = ["backprop", "derive", path_word(args.spec), "--format", fmt]
    words += ["--standalone"] * args.standalone + ["--expanded"] * args.expanded + ["--index"] * args.index
    words += ["--param", args.param] if args.param else []
    words += ["--optimizer", args.optimizer] if args.optimizer != "sgd" else []
    words += ["--per-param-updates"] * args.per_param_updates + ["--brief"] * args.brief
    words += ["--unroll", str(args.unroll)] if args.unroll else []
    return shell_join([*words, "-o", path_word(args.output)])


def run(args: argparse.Namespace) -> int:
    if args.force and not args.output:
        raise UsageError("--force only applies with -o FILE")
    inputs = spec_files(args.spec)
    if args.output:  # refuse before the work, and again (in safe_write) just before writing
        try:
            check_target(args.output, inputs=inputs, force=args.force)
        except UnsafeWriteError as e:  # first: "it is the input" says more than "unknown suffix .spec"
            raise UsageError(str(e)) from None
    fmt = _format(args)
    if args.standalone and fmt != "latex":
        raise UsageError(f"--standalone applies to --format latex, not {fmt}")
    d = get_notes_derivation(args.spec, optimizer=args.optimizer)
    loops = isinstance(d, TimeDerivation)
    for flag, given in (("--expanded", args.expanded), ("--index", args.index)):
        if given and loops:
            raise UsageError(f"{flag}: a spec with a loop is derived as one recursion at a general t, which has no "
                             f"{flag[2:]} form (try --unroll N for the steps written out)")
    if args.unroll and not loops:
        raise UsageError("--unroll applies to a spec with a loop ('for t in 1..T:'); this one has none")
    if args.param is not None and args.param not in d.params:
        raise UsageError(f"--param {args.param}: not a parameter of {d.model.name} (parameters: {', '.join(d.params)})")
    out = render(d, fmt, standalone=args.standalone, param=args.param, expanded=args.expanded, index=args.index,
                 per_param_updates=args.per_param_updates, brief=args.brief, unroll=args.unroll)
    if args.output:
        try:
            safe_write(args.output, stamp(out, fmt, _command(args, fmt)), inputs=inputs, force=args.force)
        except UnsafeWriteError as e:  # not ours, a missing directory, no permission: a message, not a traceback
            raise UsageError(str(e)) from None
    else:
        sys.stdout.write(out)
        sys.stdout.flush()
    return 0
