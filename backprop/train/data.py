"""Data for training a generated module: read from an ``.npz`` file, or made up to suit the spec.

Examples are columns. The *example dimension* is the dim every example-carrying
input has as its columns (``m`` in ``X[n, m]``); a mini-batch slices it. Inputs
without it (a scalar ``lam``) are constants shared by every batch.

``--synthetic`` data comes from a *teacher*: the same network with other
random params. Features are drawn from their declared domains; each target is
what makes the teacher's own loss smallest -- for a real target the teacher's
output (plus a little noise), for a one-hot or binary target the teacher's
most likely class (its argmax / threshold), shifted so the classes are
balanced. The targets are found from the gradient of the loss with respect to
the target, taken with a module generated for the spec with its targets
turned into params, so this works for any spec, not only the bundled ones.
"""

from __future__ import annotations

import dataclasses
import io
import math
import tokenize
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from backprop.engine.derivation import Derivation
from backprop.engine.through_time import TimeDerivation
from backprop.expr import ir
from backprop.language.domains import classes, domain, sample, violation
from backprop.language.domains import parse as parse_domain
from backprop.language.model import Model, class_axis
from backprop.train.labels import teacher_labels

DEFAULT_EXAMPLES = 512
DEFAULT_SIZE = 8
DEFAULT_HIDDEN = 32  # hidden layers a little wider than the data: quick to train
NOISE = 0.1  # regression targets: noise std relative to the teacher output's std
CONSTANT_INPUT = 0.01  # a scalar input without a domain (a regularization weight, say)
TARGET_NAMES = frozenset({"y", "Y", "t", "T", "target", "targets", "label", "labels", "ytrue", "y_true"})


class DataError(ValueError):
    """A data file that cannot be trained on; the message names the file and the array."""


# ---------------------------------------------------------------------------
# Shapes and dims
# ---------------------------------------------------------------------------


def example_dim(module: ModuleType) -> str | None:
    """The dim that counts examples (the spec's ``examples m``, else the inputs' last axis)."""
    return module.EXAMPLES


def example_axis(module: ModuleType, name: str) -> int | None:
    """The axis of input ``name`` that runs over the examples (sliced into batches), or None."""
    return module.EXAMPLE_AXES.get(name)


def onehot_axis(module: ModuleType, name: str) -> int:
    """The axis a one-hot input's classes run along."""
    return class_axis(len(module.SHAPES[name]), example_axis(module, name))


def concrete_shape(shape: tuple, dims: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(dims[d] if isinstance(d, str) else int(d) for d in shape)


def fmt_decl(name: str, shape: tuple) -> str:
    return f"{name}[{', '.join(str(d) for d in shape)}]" if shape else f"{name} (a scalar)"


def default_size(module: ModuleType, dim: str) -> int:
    """DEFAULT_EXAMPLES examples; DEFAULT_SIZE for a dim of the data (features, classes); DEFAULT_HIDDEN for the rest."""
    if dim == example_dim(module):
        return DEFAULT_EXAMPLES
    in_data = any(dim in module.SHAPES[x] for x in module.INPUTS)
    # the classes of labels(c) (or the vocabulary of token ids) are the data's too
    in_data = in_data or any(module.DOMAINS.get(x) and parse_domain(module.DOMAINS[x])[1] == dim for x in module.INPUTS)
    return DEFAULT_SIZE if in_data else DEFAULT_HIDDEN


def default_dims(module: ModuleType, given: Mapping[str, int]) -> dict[str, int]:
    """Every dim: as given, else its :func:`default_size`."""
    return {d: int(given.get(d, default_size(module, d))) for d in module.DIMS}


# ---------------------------------------------------------------------------
# Reading a data file
# ---------------------------------------------------------------------------


def load_npz(path: str | Path, module: ModuleType, given: Mapping[str, int]) -> tuple[dict[str, Any], dict[str, int]]:
    """The inputs in ``path`` checked against the spec, and every dim (bound from the arrays, else given/default).

    Raises :class:`DataError` for a missing or unreadable file, a file that is
    not an .npz archive (a bare .npy, text, random bytes), an array whose
    header does not match the bytes stored for it or that would not fit in
    memory, a missing array, a shape that disagrees with the spec or with
    another array, an empty array, non-numeric or non-finite entries, and
    values outside an input's declared domain. Only the spec's inputs are
    read, each only after its header was checked; pickles are never loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    arrays = read_npz(path, module.INPUTS)
    missing = [n for n in module.INPUTS if n not in arrays]
    if missing:
        have = ", ".join(sorted(arrays)) or "no arrays"
        raise DataError(
            f"{path}: missing array{'s' * (len(missing) > 1)} {', '.join(repr(n) for n in missing)} "
            f"(the spec's inputs: {', '.join(module.INPUTS)}; the file has {have})"
        )
    dims: dict[str, int] = {}
    source: dict[str, str] = {}
    data: dict[str, Any] = {}
    for name in module.INPUTS:
        data[name] = _check_array(path, name, arrays[name], module, dims, source)
    for d, size in given.items():
        if d in dims and dims[d] != size:
            raise DataError(f"{path}: --dims {d}={size}, but array '{source[d]}' has {d}={dims[d]}")
    for d in module.DIMS:
        dims.setdefault(d, int(given.get(d, default_size(module, d))))
    for name in module.INPUTS:
        _check_domain(path, name, data[name], module.DOMAINS.get(name), onehot_axis(module, name), dims)
        if domain(module.DOMAINS.get(name)).argument:  # labels checked whole: indices from here on
            data[name] = np.asarray(data[name]).astype(np.int64)
    return data, {d: dims[d] for d in module.DIMS}


#: Deflate compresses at most about 1032:1; a member claiming more is lying about its size.
_MAX_RATIO = 1100
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def read_npz(path: Path, wanted: Sequence[str]) -> dict[str, Any]:
    """The arrays of an .npz archive named in ``wanted`` (the others listed as None), each header
    checked against the bytes the archive stores for it before the array is allocated."""
    from backprop.codegen.dims import available_memory

    hint = "save one with np.savez(FILE, X=..., y=...)"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
    if head.startswith(_NPY_MAGIC):
        raise DataError(f"{path}: a single NumPy .npy array, not an .npz archive of named arrays; {hint}")
    if not head.startswith(_ZIP_MAGICS):
        raise DataError(f"{path}: not a NumPy .npz archive (not a zip file); {hint}")
    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as z:
            members = {}
            for info in z.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                members[name] = info
                out[name] = None
            budget = available_memory()
            for name in wanted:
                if name in members:
                    out[name] = _read_member(path, z, name, members[name], budget)
                    budget -= out[name].nbytes
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError, zlib.error) as e:
        raise DataError(f"{path}: not a readable NumPy .npz archive ({_reason(e)}); {hint}") from None
    return out


def _read_member(path: Path, z: zipfile.ZipFile, name: str, info: zipfile.ZipInfo, budget: int) -> np.ndarray:
    from backprop.codegen.dims import fmt_bytes

    fmt = np.lib.format
    if info.file_size > max(info.compress_size, 1) * _MAX_RATIO + 4096:
        raise DataError(f"{path}: array '{name}': the archive claims {fmt_bytes(info.file_size)} for it, stored in "
                        f"{fmt_bytes(info.compress_size)}: a damaged or forged file")
    with z.open(info) as f:
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, SyntaxError, tokenize.TokenError) as e:  # the header is a Python literal NumPy parses
            raise DataError(f"{path}: array '{name}' is not a NumPy array (its header: {_reason(e)})") from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise DataError(f"{path}: array '{name}' holds {dtype} values; expected numbers")
        header = f.tell()
        claimed = math.prod(shape) * dtype.itemsize
        if header + claimed != info.file_size:
            held = max(info.file_size - header, 0)
            said, has = fmt_bytes(claimed), fmt_bytes(held)
            if said == has:  # rounded alike: say the exact sizes, or the message contradicts itself
                said, has = f"{claimed:,} bytes", f"{held:,} bytes"
            raise DataError(f"{path}: array '{name}': its header claims shape {shape} ({said}), but the "
                            f"archive holds {has} for it: a damaged or forged file")
        if claimed * 2 > budget:  # the array, and its float64 copy
            raise DataError(f"{path}: array '{name}' has shape {shape} ({fmt_bytes(claimed)}): more than the "
                            f"{fmt_bytes(max(budget, 0))} of memory available")
    with z.open(info) as f:  # read_array reads the header again: from the start
        return np.asarray(fmt.read_array(f, allow_pickle=False))


def _reason(e: BaseException) -> str:
    text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)  # TokenError's str is a tuple
    return text.splitlines()[0] if text else type(e).__name__


def _check_array(path: Path, name: str, a: np.ndarray, module: ModuleType, dims: dict[str, int],
                 source: dict[str, str]) -> Any:
    want = module.SHAPES[name]
    if a.dtype.kind not in "biuf":
        raise DataError(f"{path}: array '{name}' holds {a.dtype} values; expected numbers")
    a = a.astype(np.float64)
    if a.size == 0:
        raise DataError(f"{path}: array '{name}' has shape {a.shape}: {_empty(want, a.shape, example_dim(module))}")
    if want in ((), (1, 1)):
        if a.size != 1:
            raise DataError(f"{path}: array '{name}' has shape {a.shape}, but the spec declares {fmt_decl(name, want)}")
        value = float(a.reshape(()))
        if not np.isfinite(value):
            raise DataError(f"{path}: array '{name}' is {value}; expected a finite number")
        return value
    if a.ndim != len(want):
        raise DataError(
            f"{path}: array '{name}' has shape {a.shape}, but the spec declares {fmt_decl(name, want)} "
            f"(a {len(want)}-D array; {_examples_along(module, name, len(want))})"
        )
    for axis, (d, size) in enumerate(zip(want, a.shape)):
        if isinstance(d, str):
            if d in dims and dims[d] != size:
                raise DataError(
                    f"{path}: array '{name}' has shape {a.shape}, but {fmt_decl(name, want)} needs {d}={dims[d]} "
                    f"(from array '{source[d]}')" + _layout(module, name, a.shape, dims, source)
                )
            dims.setdefault(d, size)
            source.setdefault(d, name)
        elif size != int(d):
            what = ("rows" if axis == 0 else "columns") if a.ndim == 2 else f"entries along axis {axis}"
            raise DataError(f"{path}: array '{name}' has shape {a.shape}, but the spec declares {fmt_decl(name, want)} "
                            f"({int(d)} {what})" + _layout(module, name, a.shape, dims, source))
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(a[where]) else "infinite"
        raise DataError(
            f"{path}: array '{name}' has {int(bad.sum())} NaN or infinite entries (the first, {kind}, at {list(where)})"
        )
    return a


def _examples_along(module: ModuleType, name: str, rank: int) -> str:
    """Where the spec puts an input's examples, in words: columns and rows for a matrix, else the axis."""
    axis = module.EXAMPLE_AXES.get(name)
    if axis is None:
        return "the same for every example"
    if rank == 2:
        return "examples are columns" if axis == 1 else "examples are rows"
    return f"examples along axis {axis}"


def _layout(module: ModuleType, name: str, shape: tuple[int, ...], dims: dict[str, int], source: dict[str, str]) -> str:
    """". X looks transposed: ...; save X.T" when the array's axes in another order fit: the generated
    module's own hint (a shape error from it and from --data read the same), or ''."""
    hint = module._layout_hint(name, shape, {d: dims[d] for d in dims if source[d] != name}, "save")
    return f". {hint}" if hint else ""


def _empty(want: tuple, got: tuple[int, ...], mdim: str | None) -> str:
    """Why an array with no entries cannot be trained on, in the spec's terms."""
    if len(want) == len(got):
        zero = [d for d, size in zip(want, got) if size == 0]
        if mdim in zero:
            return f"no examples ({mdim} = 0): an empty data set"
        if zero:
            return f"it is empty ({zero[0]} = 0)"
    return "it is empty"


def _check_domain(path: Path, name: str, a: Any, domain: str | None, axis: int = 0,
                  sizes: Mapping[str, int] | None = None) -> None:
    wrong = violation(domain, a, axis, sizes)
    if wrong:
        raise DataError(f"{path}: array '{name}' is declared {domain}, but {wrong}")


# ---------------------------------------------------------------------------
# Synthetic data from a teacher network
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Synthetic:
    """A made-up data set, and how each input was made (printed by ``backprop train``)."""

    inputs: dict[str, Any]
    how: dict[str, str]


def _lines(d: Derivation | TimeDerivation) -> list[tuple[str, set[str]]]:
    """Each value the forward pass computes, in order, with the names it reads; a loop is one line per
    sequence, reading everything its step reads from outside it (a shared weight, ``X`` of ``X[:, t]``,
    a state's first value)."""
    lines = [(eq.name, {s.name for s in ir.variables(eq.expr)}) for eq in d.equations]
    if not isinstance(d, TimeDerivation):
        return lines
    for tt in reversed(d.loops):
        r = tt.loop
        local = {eq.name for eq in tt.equations} | set(r.sequence_of) | {sl.step.name for sl in r.slices}
        outside = {s.name for eq in tt.equations for s in ir.variables(eq.expr)} - local
        outside |= {sl.source.name for sl in r.slices} | {f"{s.name}[0]" for s in r.states}
        lines[d.at[tt.index]:d.at[tt.index]] = [(s.name, outside) for s in r.sequences]
    return lines


def targets_of(model: Model, d: Derivation | TimeDerivation) -> list[str]:
    """Which inputs are targets: inputs only the loss reads, inputs named like targets, and one-hot or
    binary inputs compared with the network's output; never an input a param is applied after.

    "Compared" follows the input through param-free lines (label smoothing ``S = 0.9*C + 0.1/c`` keeps
    C a target) and asks whether a param is applied afterwards: a one-hot input fed to an embedding, or
    a binary mask multiplied into a hidden layer, is a feature, since the network goes on from it."""
    params = {p.name for p in model.params}
    lines = _lines(d)
    reads = dict(lines)
    computed: set[str] = set()  # assignments that depend on a param
    for name, r in lines:
        if r & (computed | params):
            computed.add(name)
    body = [SimpleNamespace(name=name) for name, _ in lines[:-1]]
    last = d.equations[-1]
    used_before_loss = set().union(*(reads[eq.name] for eq in body))

    def reach(x: str) -> tuple[bool, bool]:
        """(met, fed): whether x, or a param-free line made from it, meets a computed value, and
        whether a param is applied to something made from it (then the network goes on from x)."""
        plain = {x}  # x and the param-free lines made from it
        met = False
        downstream: set[str] = set()  # param-free lines that combine x with a computed value
        for eq in body:
            r = reads[eq.name]
            if not r & (plain | downstream):
                continue
            if eq.name not in computed:
                plain.add(eq.name)
            elif r & params:
                return met, True
            else:
                met = True
                downstream.add(eq.name)
        for _, term in ir.signed_terms(last.expr):  # the loss, term by term: weight decay on a param is no application
            r = {s.name for s in ir.variables(term)}
            if r & (plain | downstream):
                if r & params:
                    return met, True
                met = met or bool(r & computed or downstream & r)
        return met, False

    out = []
    for x in model.inputs:
        if x.scalar or x.shape == (1, 1):
            continue
        met, fed = reach(x.name)
        if x.name not in used_before_loss or (not fed and (x.name in TARGET_NAMES or (met and domain(x.domain).label))):
            out.append(x.name)
    features = [x.name for x in model.inputs if not x.scalar and x.name not in out]
    return out if features else []


def _as_params(model: Model, names: list[str]) -> Model:
    decls = {n: dataclasses.replace(dc, kind="param") if n in names else dc for n, dc in model.decls.items()}
    return dataclasses.replace(model, decls=decls)


def _draw(domain: str | None, shape: tuple[int, ...], rng: np.random.Generator, axis: int = 0,
          sizes: Mapping[str, int] | None = None) -> Any:
    if shape == ():
        return CONSTANT_INPUT if domain is None else float(rng.uniform(0.5, 2.0) if domain == "positive" else 0.5)
    return sample(domain, shape, rng, axis, sizes)


def synthetic(model: Model, d: Derivation, module: ModuleType, dims: Mapping[str, int], seed: int) -> Synthetic:
    """Features from their domains, targets from a teacher network (see the module docstring)."""
    from backprop.codegen.emit import generate
    from backprop.codegen.loader import load_source

    rng = np.random.default_rng([seed, 1])
    targets = targets_of(model, d)
    inputs: dict[str, Any] = {}
    how: dict[str, str] = {}
    for x in model.inputs:
        shape = () if x.scalar else concrete_shape(module.SHAPES[x.name], dims)
        inputs[x.name] = _draw(x.domain, shape, rng, onehot_axis(module, x.name), dims)
        how[x.name] = ("constant " + repr(inputs[x.name])) if shape == () else f"random, {x.domain or 'standard normal'}"
    if not targets:
        for n in how:
            how[n] += " (no target found: no teacher)"
        return Synthetic(inputs, how)
    teacher = module.init_params(dict(dims), seed=seed + 1)
    for t in [t for t in targets if domain(module.DOMAINS.get(t)).argument]:  # labels: no gradient, ask the loss
        inputs[t], how[t] = teacher_labels(module, teacher, inputs, t, classes(module.DOMAINS[t], dims),
                                           dims[module.EXAMPLES], _balanced_argmin)
        targets.remove(t)
    if not targets:
        return Synthetic(inputs, how)
    teacher_module = load_source(generate(_as_params(model, targets)), f"{model.name}_teacher")
    for t in targets:
        value, note = _teacher_target(teacher_module, teacher, inputs, t, module.DOMAINS.get(t), rng,
                                      onehot_axis(module, t))
        inputs[t] = value
        how[t] = note
    return Synthetic(inputs, how)


def _gradient_at(mod: ModuleType, teacher: Mapping[str, Any], inputs: Mapping[str, Any], t: str, y: np.ndarray) -> np.ndarray:
    """The teacher's loss gradient in target ``t`` at ``y``; every other target (a param of the teacher
    module too) at its value in ``inputs``."""
    targets = set(mod.PARAMS) - set(teacher)
    params = {**teacher, **{u: inputs[u] for u in targets}, t: y}
    rest = {k: v for k, v in inputs.items() if k not in targets}
    _, grads = mod.loss_and_grads(params, rest)
    return np.asarray(grads[t], dtype=float)


def _teacher_target(mod: ModuleType, teacher: Mapping[str, Any], inputs: Mapping[str, Any], t: str,
                    domain: str | None, rng: np.random.Generator, axis: int = 0) -> tuple[np.ndarray, str]:
    """The value of target ``t`` that makes the teacher's loss smallest (see the module docstring)."""
    shape = np.shape(inputs[t])
    if domain == "onehot":
        g = _gradient_at(mod, teacher, inputs, t, np.full(shape, 1.0 / shape[axis]))
        classes_first = np.moveaxis(g, axis, 0)
        flat = classes_first.reshape(shape[axis], -1)  # one column per example (and position)
        out = np.zeros(flat.shape)
        out[_balanced_argmin(flat), np.arange(flat.shape[1])] = 1.0
        return np.moveaxis(out.reshape(classes_first.shape), 0, axis), (
            "one-hot: the teacher network's most likely class (its class biases shifted to balance the classes)")
    if domain == "binary":
        g = _gradient_at(mod, teacher, inputs, t, np.full(shape, 0.5))
        return (g < np.median(g)).astype(float), "binary: the teacher network's decision, thresholded at its median"
    g0 = _gradient_at(mod, teacher, inputs, t, np.zeros(shape))
    g1 = _gradient_at(mod, teacher, inputs, t, np.ones(shape))
    slope = g1 - g0
    if not (np.all(np.isfinite(slope)) and np.all(slope > 1e-12)):
        return inputs[t], "random (the loss is not quadratic in it: no teacher)"
    y = -g0 / slope  # where the loss's gradient in the target vanishes: the teacher's output
    y = y + NOISE * (float(np.std(y)) or 1.0) * rng.standard_normal(shape)
    if domain == "prob":
        y = np.clip(y, 0.0, 1.0)
    elif domain == "positive":
        y = np.abs(y) + 1e-3
    return y, f"the teacher network's output plus noise ({NOISE:g} of its standard deviation)"


def _balanced_argmin(g: np.ndarray, rounds: int = 300) -> np.ndarray:
    """argmin of each column of ``g`` after shifting each row (a class bias) so the classes come out about equally often."""
    c, m = g.shape
    shift = np.zeros((c, 1))
    scale = float(np.std(g)) or 1.0
    labels = np.argmin(g, axis=0)
    for i in range(rounds):
        labels = np.argmin(g + shift, axis=0)
        share = np.bincount(labels, minlength=c) / m
        if np.all(np.abs(share - 1 / c) <= 0.25 / c):
            break
        shift += (share - 1 / c).reshape(c, 1) * scale * (2.0 / (1 + i / 20))
    return labels


def save_npz(data: Mapping[str, Any]) -> bytes:
    """An .npz archive of ``data`` as bytes (for atomic writes), as ``np.savez`` writes it but with fixed
    timestamps, so the same arrays give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, value in data.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
    return buf.getvalue()

