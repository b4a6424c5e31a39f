"""``backprop codegen SPEC [-o FILE] [--force] [--latex] [--optimizer NAME] [--backend numpy|jax]``."""

from __future__ import annotations

import argparse
import sys

from backprop.cli.options import add_backend, path, require_backend
from backprop.codegen.safe_write import UnsafeWriteError, write_generated
from backprop.support.errors import UsageError
from backprop.support.files import spec_files

HELP = {
    "codegen": "generate a NumPy (or JAX) module with the forward and backward pass (or, with --latex, "
    "its forward and backward functions as LaTeX)",
}
EXAMPLES = {"codegen": (
    "backprop codegen mlp_softmax -o mlp.py",
    "backprop codegen mlp_softmax --backend jax -o mlp_jax.py",
)}


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file or bundled example name")
    p.add_argument("-o", "--output", type=path, metavar="FILE",
                   help="write to FILE atomically (default: stdout); refuses to overwrite the spec, a file "
                   "backprop did not generate, or one edited since; a symbolic link is followed")
    p.add_argument("--force", action="store_true", help="overwrite FILE even if it was not generated or was edited")
    p.add_argument("--latex", action="store_true",
                   help="render the generated forward and backward functions as LaTeX (latexify, algorithmic style)")
    from backprop.engine.optim import OPTIMIZERS

    p.add_argument("--optimizer", choices=list(OPTIMIZERS),
                   help="also generate init_state(params) and step(params, grads, state, lr, ...) for this optimizer "
                   "(in place for NumPy; a pure step returning the new params and state for JAX)")
    add_backend(p, "the array library the module computes with: numpy (default), or jax (jax.numpy, "
                "loss_and_grads compiled with jax.jit; needs the jax extra)")


def run(args: argparse.Namespace) -> int:
    if args.force and not args.output:
        raise UsageError("--force only applies with -o FILE")
    output = args.output or None
    if args.latex and args.optimizer:
        raise UsageError("--optimizer applies to the generated module, not to --latex")
    if args.backend != "numpy" and args.latex:
        raise UsageError("--backend applies to the generated module, not to --latex")
    require_backend(f"'backprop codegen --backend {args.backend}'", args.backend)
    if args.latex:
        from backprop.codegen.latex import latex_document

        text = latex_document(args.spec, output=output, label=args.spec)
    else:
        from backprop.codegen.emit import generate

        text = generate(args.spec, output=output, label=args.spec, optimizer=args.optimizer, backend=args.backend)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        changed = write_generated(output, text, force=args.force, inputs=spec_files(args.spec))
    except UnsafeWriteError as e:
        raise UsageError(str(e)) from None
    print(f"backprop: {'wrote' if changed else 'up to date:'} {output}", file=sys.stderr)
    return 0
