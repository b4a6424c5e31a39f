"""``backprop check SPEC [--dims n=3,m=5] [--seed S] [--tol T] [--dtype float32] [--backend jax]``:
gradients vs finite differences.

Exit status: 0 when no gradient is wrong, 1 when one is (or the loss differs
from the reference evaluator), 2 on bad options. A param the finite differences
are too noisy to check here exits 0, with a warning on stderr: exit 1 is
evidence of a wrong gradient, and a measurement that cannot tell is no evidence;
failing on it would be the false alarm this verdict exists to avoid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backprop.cli.options import add_backend, add_seed, require_backend
from backprop.codegen.dims import check_known_dims, check_sizes, parse_dims
from backprop.codegen.gradcheck import DIM_RANGE, MAX_ENTRIES, SCALES, TOLERANCES, NotFiniteError
from backprop.support.errors import UsageError

HELP = {
    "check": "generate the NumPy module and check every gradient against central finite differences "
    "(float64); exit status 1 for a wrong gradient, 0 with a warning where they are too noisy to tell",
}
EXAMPLES = {"check": (
    "backprop check mlp_softmax --dims h=16",
    "backprop check two_layer_sigmoid --student hw3_alice.py --timeout 10",
)}


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file, bundled example name, or a generated .py module")
    p.add_argument("--dims", default="", metavar="n=3,m=5,...",
                   help="fix some dimension sizes; the others are drawn at random from the seed")
    add_seed(p, help="random seed for sizes, params and inputs (default 0)")
    p.add_argument("--tol", type=float, default=None,
                   help="largest acceptable relative error, max|grad − fd| / max(|grad|, |fd|) "
                   f"(default {TOLERANCES['float64']:g}; {TOLERANCES['float32']:g} with --dtype float32)")
    p.add_argument("--entries", type=int, default=MAX_ENTRIES, metavar="N",
                   help=f"check a larger param on N of its entries, drawn from the seed (default {MAX_ENTRIES}; "
                   "0 checks every entry: four losses each)")
    p.add_argument("--scale", choices=SCALES, default="init",
                   help="params' spread: init, the module's initializer's (at most 1; default), or unit, "
                   "standard normal (harder points: saturated units, large losses)")
    p.add_argument("--dtype", choices=tuple(TOLERANCES), default="float64",
                   help="precision the gradients are computed in (the differences are always float64)")
    add_backend(p, "check the module generated for this array library: numpy (default) or jax (run with "
                "jax_enable_x64, so float64 is float64; needs the jax extra)")
    p.add_argument("--student", metavar="FILE.py",
                   help="check a student's own loss_and_grads(params, inputs) -> (loss, grads) in FILE.py against "
                        "the spec's true gradient instead (run in a separate process with a time limit)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="with --student: how long the student's code may run (default 20)")


def _reference(path: str):
    """The derivation of the spec a generated file's header names, when that spec can be read."""
    from backprop.codegen.emit import derivation_of
    from backprop.codegen.header import spec_of
    from backprop.support.errors import SpecError

    spec = spec_of(Path(path).read_text(encoding="utf-8", errors="replace"))
    if spec is None:
        return None
    try:
        return derivation_of(spec)
    except SpecError:
        return None


def run(args: argparse.Namespace) -> int:
    from backprop.codegen.emit import load_module
    from backprop.codegen.gradcheck import gradcheck

    dims = parse_dims(args.dims)
    if args.student is not None:
        if args.backend != "numpy":
            raise UsageError("--student runs the student's own code; --backend applies to generated modules")
        return _student(args, dims)
    if args.timeout is not None:
        raise UsageError("--timeout goes with --student (the student's code is what it limits)")
    if args.entries < 0:
        raise UsageError(f"--entries must be 0 (every entry) or a positive number, got {args.entries}")
    if args.tol is not None and not 0 < args.tol < float("inf"):
        raise UsageError(f"--tol must be a positive finite number, got {args.tol:g}")
    target = args.spec
    reference = None
    if args.backend != "numpy" and target.endswith(".py"):
        raise UsageError("--backend picks the module generated from a spec; a .py module is checked as it is")
    require_backend(f"'backprop check --backend {args.backend}'", args.backend)
    if target.endswith(".py"):
        try:
            target = load_module(target)
        except (OSError, ImportError, SyntaxError) as e:
            raise UsageError(f"cannot import {args.spec}: {e}") from None
        if not all(hasattr(target, a) for a in ("forward", "loss_and_grads", "SHAPES", "DIMS")):
            raise UsageError(f"{args.spec} is not a module generated by backprop")
        known = list(target.DIMS)
        reference = _reference(args.spec)
    else:
        from backprop.codegen.emit import derivation_of

        d = derivation_of(target)  # SpecError -> exit 2
        known = list(d.model.dims)
        target = d if args.backend == "numpy" else load_module(d, backend=args.backend)
        reference = None if args.backend == "numpy" else d
    if "jax" in sys.modules and getattr(target, "jax", None) is sys.modules["jax"]:  # a JAX module: float64 as asked
        sys.modules["jax"].config.update("jax_enable_x64", True)
    check_known_dims(dims, known)
    check_sizes(target, dims, DIM_RANGE[1] - 1)  # before allocating: undrawn dims at their largest
    try:
        report = gradcheck(target, dims=dims, seed=args.seed, tol=args.tol, reference=reference, dtype=args.dtype,
                           scale=args.scale, entries=args.entries)
    except NotFiniteError as e:
        raise UsageError(str(e)) from None
    print(report.format())
    if report.ok and report.noisy:
        print(f"backprop: warning: finite differences too noisy to check {', '.join(report.noisy)} "
              f"to {report.tol:g} (no gradient found wrong); try another --seed", file=sys.stderr)
    return 0 if report.ok else 1


def _student(args: argparse.Namespace, dims: dict[str, int]) -> int:
    """``--student FILE.py``: exit 0 all gradients right, 1 one is wrong, 2 the code could not be run."""
    from backprop.codegen.emit import derivation_of
    from backprop.codegen.student import TIMEOUT, check_student

    if args.spec.endswith(".py"):
        raise UsageError("--student checks against a spec: give the spec (or a bundled example's name), not a module")
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.tol is not None or args.dtype != "float64":
        raise UsageError("--tol and --dtype are for the finite-difference check; --student compares with the "
                         "spec's true gradient in float64")
    d = derivation_of(args.spec)  # SpecError -> exit 2
    check_known_dims(dims, list(d.model.dims))
    report = check_student(d, args.student, dims=dims, seed=args.seed, timeout=args.timeout or TIMEOUT)
    print(report.format())
    return 2 if report.problem else 0 if report.ok else 1
