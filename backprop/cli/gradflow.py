"""``backprop gradflow SPEC [--compare-activation ACT] [--out FILE.png] [--dims ...] [--seed S] [--data FILE.npz]``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backprop.cli.options import add_seed, path
from backprop.codegen.dims import check_known_dims, check_memory, network_shapes, parse_dims
from backprop.engine.pipeline import get_model
from backprop.language.model import Model
from backprop.support.errors import UsageError
from backprop.support.escape import path_word, shell_join
from backprop.support.extras import require
from backprop.support.files import UnsafeWriteError, check_target, cleanup_on_signals, probe, safe_write, spec_files, stamp_png
from backprop.train.gradflow import CHOICES
from backprop.verification.numeric import concrete

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
    spec_model = get_model(args.spec)  # parsed once: a loop is shown through time, anything else as layers
    if spec_model.loops:
        return _through_time(args, spec_model, given)
    d = derivation_of(spec_model)
    model = d.model
    check_known_dims(given, list(model.dims))
    sources = spec_files(args.spec) + ([args.data] if args.data else [])
    out = _target(args, Path("runs") / model.name / "gradflow_init.png", sources)
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
    _write(args, out, chart, sources)
    print(f"wrote {out}")
    return 0


def _target(args: argparse.Namespace, default: Path, sources: list[str]) -> Path:
    """Where the chart goes, checked before the work: it can be written, and nobody else's file is in the way."""
    out = Path(args.out) if args.out else default
    try:
        check_target(out, inputs=sources, force=args.force, png=True, option="--out", make_parents=True)
        probe(out.parent, out)
    except UnsafeWriteError as e:
        raise UsageError(str(e)) from None
    return out


def _write(args: argparse.Namespace, out: Path, chart: bytes, sources: list[str]) -> None:
    """The chart written (and any directory made for it, removed again if the write fails)."""
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


#: The most bytes the steps of a loop may take in the reference evaluator (it keeps every step's values).
_TIME_BUDGET = 1 << 30


def _through_time(args: argparse.Namespace, model: Model, given: dict[str, int]) -> int:
    """``gradflow`` for a spec with a loop: ‖∂L/∂Hₜ‖ against t for each state, as a table and a line chart."""
    from backprop.train.plots import gradflow_over_time, png
    from backprop.train.through_time import (
        Flow,
        default_sizes,
        fade,
        norms_over_time,
        point_at_init,
        state_activations,
        time_table,
        with_state_activation,
    )

    check_known_dims(given, list(model.dims))
    if args.data:
        raise UsageError("--data: a spec with a loop is shown on synthetic data for now (its generated module, "
                         "which reads data, is not built yet)")
    states = state_activations(model)
    if args.compare_activation and not states:
        raise UsageError(f"--compare-activation: no state of {model.name}'s loop is H[t] = activation(...)")
    sizes = default_sizes(model, given)
    entries = sum(int(np.prod(concrete(a.shape, {model.dims[k]: v for k, v in sizes.items()})))
                  for r in model.loops for a in r.body) * max(sizes[str(r.length)] for r in model.loops)
    if 8 * entries * 3 > _TIME_BUDGET:
        raise UsageError(f"--dims: the loop's steps would take about {8 * entries * 3 >> 20} MB here; "
                         "choose fewer steps, examples or hidden units")
    sources = spec_files(args.spec)
    out = _target(args, Path("runs") / model.name / "gradflow_time.png", sources)
    env = point_at_init(model, sizes, args.seed)
    acts = sorted({a for _, a in states})
    flows = [Flow("/".join(acts) + " (as written)" if acts else "as written", norms_over_time(model, env))]
    for act in dict.fromkeys(args.compare_activation):
        if acts != [act]:
            flows.append(Flow(act, norms_over_time(with_state_activation(model, act), env)))
    steps = max(sizes[str(r.length)] for r in model.loops)
    shown = ", ".join(f"{k}={v}" for k, v in sizes.items())
    print(f"gradient norms through time at initialization: {model.name}; dims {shown}; seed {args.seed}; synthetic data")
    print(time_table(flows, max(1, steps // 10)))
    for f in flows:
        for state, norms in f.norms.items():
            print(f"{f.label}: ‖∂L/∂{state}₁‖ / ‖∂L/∂{state}_T‖ = {fade(norms):.3g}")
    title = f"{model.name}: gradient norms through time at initialization"
    chart = stamp_png(png(gradflow_over_time({f.label: f.norms for f in flows}, title)), _command(args))
    _write(args, out, chart, sources)
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
