"""``backprop train SPEC [--data FILE.npz | --synthetic] [--optimizer NAME] [--lr LR] [--epochs N] ...``.

Also ``[--batch-size B] [--val FRACTION] [--seed S] [--dims n=8,...] [--dtype float32] [--out DIR] [--quiet]``
and ``[--backend jax [--devices N] [--coordinator HOST:PORT --num-processes P --process-id I]]``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from backprop.cli.options import add_backend, add_seed, path, require_backend
from backprop.codegen.dims import check_known_dims, check_memory, network_shapes, parse_dims
from backprop.engine.optim import OPTIMIZERS, get_optimizer
from backprop.expr.ir import fmt_shape
from backprop.support.errors import SpecError, UsageError
from backprop.support.extras import require
from backprop.support.files import UnsafeWriteError, spec_files
from backprop.support.rundir import RunDir
from backprop.train.loop import DEFAULT_BATCH, DEFAULT_EPOCHS, DEFAULT_OPTIMIZER

if TYPE_CHECKING:  # pragma: no cover
    from backprop.language.model import Model
    from backprop.train.loop import History

HELP = {
    "train": "train the network with its generated NumPy (or JAX) module: mini-batches, a progress bar, "
    "history.csv, loss and gradient-flow plots, final params",
}
EXAMPLES = {"train": (
    "backprop train two_layer_sigmoid --synthetic --epochs 10",
    "backprop train mlp_softmax --data mnist.npz --optimizer adam --lr 1e-3 --val 0.1",
)}


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file or bundled example name")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=path, metavar="FILE.npz",
                     help="training data: an .npz archive with one array per input of the spec (examples are columns)")
    src.add_argument("--synthetic", action="store_true",
                     help="make up data that suits the spec: targets from a random teacher network (the default "
                     "without --data)")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default=DEFAULT_OPTIMIZER,
                   help=f"update rule (default {DEFAULT_OPTIMIZER})")
    p.add_argument("--lr", type=float, default=None, metavar="LR",
                   help="learning rate (default per optimizer: "
                   + ", ".join(f"{o.name} {o.lr.default:g}" for o in OPTIMIZERS.values()) + ")")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, metavar="N",
                   help=f"passes over the data (default {DEFAULT_EPOCHS})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="B",
                   help=f"examples per mini-batch (default {DEFAULT_BATCH}; at most the number of examples)")
    p.add_argument("--val", type=float, default=0.0, metavar="FRACTION",
                   help="hold out this fraction of the examples (chosen at random with --seed) and report their "
                   "loss every epoch (default 0: train on all)")
    add_seed(p, help="seed for params, synthetic data and shuffling (default 0)")
    p.add_argument("--dims", default="", metavar="n=8,m=512,...",
                   help="sizes of the dims the data does not fix "
                   "(default: 512 examples, 8 for the data's other dims, 32 for hidden ones)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="precision of params and data")
    p.add_argument("--out", type=path, metavar="DIR", default=None, help="where to write the results (default runs/NAME)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_backend(p, "numpy (default), or jax: the loss, gradient and update compiled as one step with jax.jit "
                "(needs the jax extra)")
    p.add_argument("--devices", type=int, default=1, metavar="N",
                   help="with --backend jax: split every batch along its examples axis over N devices "
                   "(params replicated; default 1)")
    p.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                   help="with --backend jax on several hosts: the address of process 0, for "
                   "jax.distributed.initialize (with --num-processes and --process-id)")
    p.add_argument("--num-processes", type=int, default=None, metavar="P", help="with --coordinator: how many hosts")
    p.add_argument("--process-id", type=int, default=None, metavar="I", help="with --coordinator: this host's number, 0..P-1")


def _check_numbers(args: argparse.Namespace) -> None:
    if args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr:g}")
    if not 0 <= args.val < 1:
        raise UsageError(f"--val must be a fraction in [0, 1), got {args.val:g}")
    if args.devices < 1:
        raise UsageError(f"--devices must be at least 1, got {args.devices}")
    if args.backend != "jax" and (args.devices != 1 or args.coordinator is not None):
        raise UsageError(f"{'--devices' if args.devices != 1 else '--coordinator'} runs JAX devices: add --backend jax")
    given = [o for o, v in (("--coordinator", args.coordinator), ("--num-processes", args.num_processes),
                            ("--process-id", args.process_id)) if v is not None]
    if given and len(given) != 3:
        missing = [o for o in ("--coordinator", "--num-processes", "--process-id") if o not in given]
        raise UsageError(f"{', '.join(given)} without {', '.join(missing)}: a run on several hosts needs all three")
    if given and not 0 <= args.process_id < args.num_processes:
        raise UsageError(f"--process-id must lie in 0..{args.num_processes - 1}, got {args.process_id}")


def _start_jax(args: argparse.Namespace) -> None:
    """Before any work: the hosts joined (with --coordinator), float64 as asked, the devices there."""
    import jax

    from backprop.train.jax_step import DeviceError, check_device_count

    if args.coordinator is not None:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    try:
        check_device_count(args.devices)
    except DeviceError as e:
        raise UsageError(str(e)) from None


#: Other backprop outputs a run directory may hold (kept when it is replaced): gradflow's default chart.
CARRIED = ("gradflow_init.png",)


def run(args: argparse.Namespace) -> int:
    # Before any work: the plots need matplotlib, the progress bar tqdm (both in the [train] extra).
    require("'backprop train'", "matplotlib", *(() if args.quiet else ("tqdm",)))
    _check_numbers(args)
    require_backend(f"'backprop train --backend {args.backend}'", args.backend)
    if args.backend == "numpy":
        return _run(args)
    _start_jax(args)
    import jax

    before = jax.config.read("jax_enable_x64")  # the flag is global: restored for whoever called main()
    jax.config.update("jax_enable_x64", args.dtype == "float64")
    try:
        return _run(args)
    finally:
        jax.config.update("jax_enable_x64", before)


def _run(args: argparse.Namespace) -> int:
    from backprop.codegen.emit import derivation_of, generate
    from backprop.codegen.loader import load_source
    from backprop.train.data import DataError, default_dims, example_dim, load_npz, synthetic
    from backprop.train.loop import RUN_FILES, write_outputs

    given = parse_dims(args.dims)
    d = derivation_of(args.spec)  # SpecError -> exit 2
    model = d.model
    check_known_dims(given, list(model.dims))
    out = Path(args.out) if args.out else Path("runs") / model.name
    sources = spec_files(args.spec) + ([args.data] if args.data else [])
    try:
        run_dir = RunDir(out, RUN_FILES, CARRIED, inputs=sources)
        run_dir.check()  # before the work: not after training
        module = load_source(generate(d, optimizer=args.optimizer), model.name)  # NumPy: reads and makes the data
        trained = module if args.backend == "numpy" else load_source(
            generate(d, optimizer=args.optimizer, backend=args.backend), f"{model.name}_{args.backend}")
        _refuse_per_example_params(model, example_dim(module))
        with run_dir as staging:  # created now: the probe that the place is writable
            if args.data:
                try:
                    inputs, dims = load_npz(args.data, module, given)
                except DataError as e:
                    raise UsageError(str(e)) from None
                check_memory(network_shapes(d), dims, given, itemsize=np.dtype(args.dtype).itemsize)
                how = {k: f"from {args.data}" for k in inputs}
            else:
                dims = default_dims(module, given)
                check_memory(network_shapes(d), dims, given, itemsize=np.dtype(args.dtype).itemsize)
                made = synthetic(model, d, module, dims, args.seed)
                inputs, how = made.inputs, made.how
            h, params, lr = _train(args, model.name, trained, inputs, dims, how)
            written = [out / p.name for p in write_outputs(staging, h, params, model.name)]
            run_dir.commit()
    except UnsafeWriteError as e:
        raise UsageError(str(e)) from None
    print(f"loss {h.first:.6g} -> {h.last:.6g} ({_verdict(h.first, h.last)}) after {len(h.epoch_loss) - 1} epochs")
    if h.val_examples:
        print(f"validation loss ({h.val_examples} held-out examples) {h.val_first:.6g} -> {h.val_last:.6g} "
              f"({_verdict(h.val_first, h.val_last)})")
    print(f"wrote {', '.join(str(p) for p in written)}")
    if h.stalled and not h.diverged:
        names = ", ".join(f"∂L/∂{p}" for p in h.stalled)
        print(f"backprop: warning: {names} {'was' if len(h.stalled) == 1 else 'were'} 0 at every step of the last "
              "epoch (not at the first): the units they feed no longer respond (dead ReLUs, saturated units) and "
              f"those params no longer learn; try a smaller --lr than {lr:g}", file=sys.stderr)
    if h.diverged:
        print(f"backprop: error: training diverged (the loss became {h.last}); try a smaller --lr than {lr:g}",
              file=sys.stderr)
        return 1
    return 0


def _refuse_per_example_params(model: Model, mdim: str | None) -> None:
    """A param with an axis of examples cannot be trained on mini-batches (nor used on new data): say so
    at its declaration, before any work, rather than fail inside the first batch."""
    for decl in model.params:
        if mdim is not None and any(str(s) == mdim for s in decl.shape):
            raise SpecError(f"param {decl.name!r} has shape {fmt_shape(decl.shape)}, one entry per example "
                            f"({mdim} counts the examples): train feeds mini-batches of examples, and a param "
                            "must be the same for each; give that axis size 1 to share it across examples, "
                            "or declare it an input", decl.line, 1, model.path).at(
                model.path, model.source.splitlines()[decl.line - 1] if decl.line else None)


def _train(args: argparse.Namespace, name: str, module: ModuleType, inputs: dict[str, Any], dims: dict[str, int],
           how: dict[str, str]) -> tuple[History, dict[str, Any], float]:
    """Print what is about to happen, then train: the history, the final params, the learning rate."""
    from backprop.train.jax_step import DeviceError
    from backprop.train.loop import SplitError, train

    opt = get_optimizer(args.optimizer)
    lr = opt.lr.default if args.lr is None else args.lr
    if args.backend == "jax":  # before the work: the devices share every batch evenly
        _check_split(args, module, dims)
    sizes = ", ".join(f"{k}={v}" for k, v in dims.items()) or "none"
    print(f"training {name}: dims {sizes}; {opt.title}, learning rate {lr:g}, "
          f"{args.epochs} epochs of batches of {args.batch_size}; seed {args.seed}{_where(args)}")
    for k, v in how.items():
        print(f"  {k:<8} {_shape(inputs[k])}: {v}")
    sys.stdout.flush()
    try:
        h, params = train(module, inputs, dims, optimizer=opt.name, lr=lr, epochs=args.epochs,
                          batch_size=args.batch_size, seed=args.seed, dtype=np.dtype(args.dtype).type,
                          progress=not args.quiet, name=name, val_fraction=args.val, devices=args.devices)
    except SplitError as e:  # the split leaves no example on one side
        raise UsageError(f"--val {args.val:g}: {e}") from None
    except DeviceError as e:  # the devices cannot share the batches evenly
        raise UsageError(str(e)) from None
    return h, params, lr


def _check_split(args: argparse.Namespace, module: ModuleType, dims: dict[str, int]) -> None:
    from backprop.train.data import example_dim
    from backprop.train.jax_step import DeviceError, check_devices

    mdim = example_dim(module)
    m = dims[mdim] if mdim and module.EXAMPLE_AXES else None
    if m is not None and args.val:
        m -= round(args.val * m)
    try:
        check_devices(args.devices, args.batch_size, m)
    except DeviceError as e:
        raise UsageError(str(e)) from None


def _where(args: argparse.Namespace) -> str:
    """'; JAX on 4 CPU devices' for --backend jax ('' for NumPy)."""
    if args.backend != "jax":
        return ""
    import jax

    platform = jax.devices()[0].platform.upper()
    hosts = f" on {jax.process_count()} hosts" if jax.process_count() > 1 else ""
    return f"; JAX on {args.devices} {platform} device{'s' if args.devices != 1 else ''}{hosts}"


def _verdict(first: float, last: float) -> str:
    if not math.isfinite(last):
        return "diverged"
    if last <= 0 or first <= 0:
        return f"changed by {last - first:+.3g}"
    ratio = first / last
    return f"{ratio:.3g}× lower" if ratio >= 1 else f"{1 / ratio:.3g}× HIGHER"


def _shape(v: object) -> str:
    s = np.shape(v)
    return "×".join(str(x) for x in s) if s else "scalar"
