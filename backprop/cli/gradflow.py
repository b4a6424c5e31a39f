"""``backprop gradflow SPEC [--compare-activation ACT] [--out FILE.png] [--dims ...] [--seed S] [--data FILE.npz]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from backprop.cli.options import add_seed, path
from backprop.codegen.dims import check_known_dims, check_memory, network_shapes, parse_dims
from backprop.support.errors import UsageError
from backprop.support.escape import path_word, shell_join
from backprop.support.extras import require
from backprop.support.files import UnsafeWriteError, check_target, cleanup_on_signals, probe, safe_write, spec_files, stamp_png
from backprop.train.gradflow import CHOICES

HELP = {
    "gradflow": "the gradient norm of every param at initialization, as a table and a bar chart; "
    "--compare-activation shows the same network with other hidden activations (vanishing gradients)",
}
EXAMPLES = {"gradflow": (
    "backprop gradflow deep_relu --compare-activation sigmoid",
    "backprop gradflow mlp_softmax --data mnist.npz --out grads.png",
)}


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file or bundled example name")
    p.add_argument("--compare-activation", metavar="ACT", action="append", choices=CHOICES, default=[],
                   help=f"also the network with every hidden activation replaced by ACT ({', '.join(CHOICES)}); "
                   "repeatable")
    p.add_argument("--out", type=path, metavar="FILE.png", default=None,
                   help="the bar chart (default runs/NAME/gradflow_init.png); refuses to overwrite a file backprop "
                   "did not write; a symbolic link is followed")
    p.add_argument("--force", action="store_true", help="overwrite --out even if backprop did not write it")
    p.add_argument("--dims", default="", metavar="n=8,m=512,...",
                   help="dim sizes (default: 512 examples, 8 for the data's other dims, 32 for hidden ones)")
    add_seed(p, help="seed for params and synthetic data (default 0)")
    p.add_argument("--data", type=path, metavar="FILE.npz",
                   help="data to take the gradient on (default: synthetic, as backprop train)")


def run(args: argparse.Namespace) -> int:
    require("'backprop gradflow'", "matplotlib")  # the bar chart; checked before any work
    from backprop.codegen.emit import derivation_of, generate
    from backprop.codegen.loader import load_source
    from backprop.train.data import DataError, default_dims, load_npz, synthetic
    from backprop.train.gradflow import (
        VANISHING,
        Variant,
        first_last_ratios,
        fmt_shape,
        hidden_activations,
        norms_at_init,
        table,
        weights,
        with_activation,
    )
    from backprop.train.plots import gradflow_bars, png, ratio_caption

    given = parse_dims(args.dims)
    d = derivation_of(args.spec)
    model = d.model
    check_known_dims(given, list(model.dims))
    out = Path(args.out) if args.out else Path("runs") / model.name / "gradflow_init.png"
    sources = spec_files(args.spec) + ([args.data] if args.data else [])
    try:  # before the work: the chart can be written, and nobody else's file is in the way
        check_target(out, inputs=sources, force=args.force, png=True, option="--out", make_parents=True)
        probe(out.parent, out)
    except UnsafeWriteError as e:
        raise UsageError(str(e)) from None
    hidden = hidden_activations(model)
    if args.compare_activation and not hidden:
        raise UsageError(f"--compare-activation: {model.name} has no hidden layer NAME = activation(...) "
                         "whose value feeds a matrix product")
    module = load_source(generate(d), model.name)
    if args.data:
        try:
            inputs, dims = load_npz(args.data, module, given)
        except DataError as e:
            raise UsageError(str(e)) from None
        source = args.data
        check_memory(network_shapes(d), dims, given)
    else:
        dims = default_dims(module, given)
        check_memory(network_shapes(d), dims, given)
        inputs = synthetic(model, d, module, dims, args.seed).inputs
        source = "synthetic data (as backprop train --synthetic)"
    acts = sorted({a for _, a in hidden})
    label = "/".join(acts) + " (as written)" if acts else "as written"
    variants = [Variant(label, norms_at_init(module, inputs, dims, args.seed))]
    for act in dict.fromkeys(args.compare_activation):
        if acts == [act]:
            continue
        other = load_source(generate(with_activation(model, act)), f"{model.name}_{act}")
        variants.append(Variant(act, norms_at_init(other, inputs, dims, args.seed)))
    w = weights(module)
    sizes = ", ".join(f"{k}={v}" for k, v in dims.items()) or "none"
    print(f"gradient norms at initialization: {model.name}; dims {sizes}; seed {args.seed}; {source}")
    shapes = {p: fmt_shape(module.SHAPES[p], dims) for p in module.PARAMS}
    first_last = (w[0], w[-1]) if len(w) > 1 else None
    print(table(variants, shapes, first_last))
    title = f"{model.name}: gradient norms at initialization" + (
        " — hidden activations compared" if len(variants) > 1 else "")
    # The chart carries the ratio the terminal printed, so a figure shown alone still says how much the gradient fades.
    caption = ratio_caption(*first_last, first_last_ratios(variants, first_last), VANISHING) if first_last else None
    chart = stamp_png(png(gradflow_bars({v.label: v.norms for v in variants}, title, caption)), _command(args))
    try:
        with cleanup_on_signals():
            made = _mkdirs(out.parent)
            try:
                safe_write(out, chart, inputs=sources, force=args.force, option="--out")
            except BaseException:
                for a in reversed(made):
                    a.rmdir()
                raise
    except (UnsafeWriteError, OSError) as e:
        raise UsageError(str(e)) from None
    print(f"wrote {out}")
    return 0


def _mkdirs(directory: Path) -> list[Path]:
    """Make ``directory`` and its missing parents; the ones made (outermost first)."""
    missing = [a for a in [directory, *directory.parents] if not a.exists()]
    for a in reversed(missing):
        a.mkdir()
    return list(reversed(missing))


def _command(args: argparse.Namespace) -> str:
    """The command that rewrites the chart, for its "written by backprop" mark (no paths but the spec's)."""
    words = ["backprop", "gradflow", path_word(args.spec)]
    for act in args.compare_activation:
        words += ["--compare-activation", act]
    words += ["--dims", args.dims] if args.dims else []
    words += ["--seed", str(args.seed)] if args.seed else []
    return shell_join(words)
