"""``backprop verify SPEC CLAIM... [--claims FILE] [--format text|json]``.

Exit status: 0 when every claim is correct, 1 when any is wrong, 2 when the
spec or a claim cannot be used. A claim that cannot be read is reported on stderr,
compiler-style, and as "unusable" in the report; the others are judged all the same.
A claim whose shapes do not fit is wrong, with the mismatch as its diagnosis.
"""

from __future__ import annotations

import argparse
import sys

from backprop.cli.options import path
from backprop.support.errors import UsageError
from backprop.support.reading import read_user_text
from backprop.verification.claims import ClaimSource, claim_sources
from backprop.verification.forms import parse_aliases
from backprop.verification.numeric import TOL
from backprop.verification.verify import CHAINS, check_claims

HELP = {
    "verify": "check hand-derived gradients (claims such as 'dW1 = dZ @ X.T') and say what is wrong with them",
}
EXAMPLES = {"verify": (
    'backprop verify two_layer_sigmoid "dW1 = (dA * A * (1 - A)) @ X.T" "db1 = sum(dZ, axis=1)"',
    "backprop verify net.spec --claims answers.txt --format json",
)}

EPILOG = """\
a claim reads dNAME = EXPR: the gradient of the loss with respect to a param or an
intermediate NAME, in the spec language, with dOTHER for another variable's gradient
(the true one; with --chain own, the claimant's own earlier answer for it).
(E > 0) is the indicator [E > 0] and ones(r, c) a matrix of ones. Answers may also be
written in LaTeX (\frac{1}{m} dZ X^T), NumPy (np.dot(dZ, X.T)) or as the derivation
prints them (∂L/∂W₁ = ∂L/∂Z Xᵀ); the reading is shown beside the verdict.

exit status: 0 all correct, 1 some claim wrong, 2 unusable spec or claim (the
other claims are still judged and reported)
"""


USAGE = ("backprop verify [-h] [--claims FILE] [--format {text,json}] [--chain {true,own,closed}] "
         "[--tol TOL] [--alias COURSE=SPEC] SPEC [CLAIM ...]")


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--claims", dest="claims_file", type=path, metavar="FILE",
                   help="read claims from FILE, one a line ('#' comments and blank lines allowed; '-' for stdin)")
    p.add_argument("--format", choices=("text", "json"), help="output format (default: text)")
    p.add_argument("--chain", choices=CHAINS,
                   help="what dOTHER stands for: the true gradient (default), the claimant's own earlier answer "
                        "for OTHER (the chain graded as written), or nothing (closed forms required)")
    p.add_argument("--tol", type=_tolerance, metavar="TOL",
                   help="a claim is correct when its relative error is at most TOL at every point (default 1e-7), "
                        "whether or not the exact check runs; 'exact': only when proved exactly where it can run")
    p.add_argument("--alias", action="append", metavar="COURSE=SPEC[,...]",
                   help="read a course's names as the spec's, e.g. --alias A=p,Y=y (dA reads as dp)")


def _tolerance(text: str) -> float | str:
    if text == "exact":
        return text
    try:
        tol = float(text)
    except ValueError:
        tol = -1.0
    if not 0 < tol < 1:
        raise argparse.ArgumentTypeError(f"expected a relative tolerance between 0 and 1 (e.g. 1e-6) or 'exact', got '{text}'")
    return tol


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.usage = USAGE
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("spec", metavar="SPEC", help="spec file or bundled example name")
    # Claims and options may be mixed after SPEC; argparse cannot interleave a '*' positional with
    # options under a subcommand, so the rest is parsed by _rest() with intermixed parsing.
    p.add_argument("rest", metavar="CLAIM", nargs=argparse.REMAINDER, help="a claim 'dNAME = EXPR' (quote it)")
    _options(p)


def _rest(args: argparse.Namespace) -> argparse.Namespace:
    """Claims and options given after SPEC, in any order."""
    p = argparse.ArgumentParser(prog="backprop verify", add_help=False, usage=USAGE)
    p.add_argument("claims", metavar="CLAIM", nargs="*")
    _options(p)
    rest = p.parse_intermixed_args(args.rest)
    rest.claims_file = rest.claims_file if rest.claims_file is not None else args.claims_file
    rest.format = rest.format or args.format or "text"
    rest.chain = rest.chain or args.chain or "true"
    rest.alias = (args.alias or []) + (rest.alias or [])
    rest.tol = rest.tol if rest.tol is not None else args.tol if args.tol is not None else TOL
    rest.spec = args.spec
    return rest


def _file_sources(path: str) -> list[ClaimSource]:
    if path == "-":
        data, shown = sys.stdin.read(), "<stdin>"
    else:
        data = read_user_text(path, "claims file")
        shown = path
    if data.startswith("\ufeff"):
        data = data[1:]
    return [ClaimSource(t, shown, i) for i, t in enumerate(data.splitlines(), 1) if t.split("#", 1)[0].strip()]


def run(args: argparse.Namespace) -> int:
    args = _rest(args)
    sources = claim_sources(list(args.claims))
    if args.claims_file is not None:
        sources += _file_sources(args.claims_file)
    if not sources:
        raise UsageError("no claims: give one or more 'dNAME = EXPR' arguments, or --claims FILE")
    try:
        aliases = {k: v for text in args.alias for k, v in parse_aliases(text).items()}
    except ValueError as e:
        raise UsageError(f"--alias: {e}") from None
    report, errors = check_claims(args.spec, sources, chain=args.chain, aliases=aliases, tol=args.tol)
    for e in errors:  # located, compiler-style; the other claims are judged all the same
        print(e.format(), file=sys.stderr)
    sys.stdout.write(report.to_json() if args.format == "json" else report.text())
    return 2 if errors else 0 if report.all_correct else 1
