"""Every row of the operation registry, checked against finite differences.

``CASES`` holds one case generator per registered operation. The test cases
are generated from it, so an operation added to ``backprop.expr.ops.REGISTRY``
without a generator here fails ``test_every_registered_op_has_cases``. For each
case and each differentiable operand, the engine's own pullback (the registry's
VJP plus the engine's broadcasting/unbroadcasting) must match the central
finite differences of ``sum(G ⊙ f(x))`` for a random cotangent ``G``; and the
operation's NumPy evaluation must agree with its exact SymPy form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import pytest
import sympy
from helpers import rational
from sympy import Basic
from sympy.core.symbol import Str

from backprop.engine.chain import _Pullback
from backprop.engine.derivation import Equation
from backprop.expr import ir
from backprop.expr.evaluate import evaluate, evaluate_exact
from backprop.expr.ops import REGISTRY

R, C, K = 2, 3, 4  # distinct sizes, so a transposed gradient cannot pass
SCALAR, COLUMN, ROW, FULL = (1, 1), (R, 1), (1, C), (R, C)
SHAPES = {"scalar": SCALAR, "column": COLUMN, "row": ROW, "full": FULL}
NAMES = ("A", "B", "C")
#: Tensors of rank 3 and 4: each axis of length 1 in turn, so every way a value broadcasts is met.
TENSORS = {"t3": (2, 3, 4), "t3-unit0": (1, 3, 4), "t3-unit1": (2, 1, 4), "t3-unit2": (2, 3, 1), "t3-ones": (1, 1, 1)}
RANK4 = {"t4": (2, 3, 1, 2), "t4-unit": (1, 3, 2, 1)}


@dataclass(frozen=True)
class Var:
    """A variable operand: its shape and the domain its random values come from."""

    shape: tuple[int, ...]
    #: real | positive | away (|x| >= 0.5: clear of kinks and poles) | mask (0 or 1) | low (< -2) | high (> 2)
    #: | square (2I + a small non-symmetric part: invertible, det > 0, and A ≠ Aᵀ so a transpose cannot pass)
    #: | labelsN (whole numbers 0..N−1: class labels, indices)
    domain: str = "real"


@dataclass(frozen=True)
class Case:
    """One application of an operation to concrete operands."""

    op: str
    operands: tuple[Var | Basic, ...]  # Var, or a SymPy constant
    attrs: tuple[Basic, ...] = ()
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.op}-{self.label}"

    def build(self) -> tuple[Basic, dict[str, Var]]:
        """The node, and its variable operands by name."""
        children: list[Basic] = []
        vars_: dict[str, Var] = {}
        for name, o in zip(NAMES, self.operands):
            if isinstance(o, Var):
                children.append(ir.symbol(name, tuple(sympy.Integer(d) for d in o.shape)))
                vars_[name] = o
            else:
                children.append(o)
        return ir.node(self.op, *children, *self.attrs), vars_


def draw(v: Var, rng: np.random.Generator) -> np.ndarray:
    if v.domain == "positive":
        return rng.uniform(0.5, 2.0, size=v.shape)
    if v.domain == "mask":
        return rng.integers(0, 2, size=v.shape).astype(float)
    if v.domain in ("low", "high"):
        return (1 if v.domain == "high" else -1) * rng.uniform(2.0, 3.0, size=v.shape)
    if v.domain == "square":
        return 2.0 * np.eye(v.shape[0]) + rng.uniform(-0.5, 0.5, size=v.shape) / v.shape[0]
    if v.domain.startswith("labels"):  # class indices 0..n−1, as floats (evaluation holds every value so)
        return rng.integers(0, int(v.domain[len("labels"):]), size=v.shape).astype(float)
    if v.domain == "away":
        return rng.choice([-1.0, 1.0], size=v.shape) * rng.uniform(0.5, 2.0, size=v.shape)
    return rng.normal(size=v.shape)


# ---------------------------------------------------------------------------
# Case generators: one per operation
# ---------------------------------------------------------------------------

Gen = Callable[[str], Iterator[Case]]


def unary(domain: str = "real", ranks: tuple[int, ...] = (2, 3, 4)) -> Gen:
    """Every operand shape: scalar, column, row, full; tensors of rank 3 and 4 with unit axes."""

    def gen(op: str) -> Iterator[Case]:
        for label, s in {**SHAPES, **TENSORS, **RANK4}.items():
            if len(s) not in ranks:
                continue
            yield Case(op, (Var(s, domain),), label=label)

    return gen


def binary(left: str = "real", right: str = "real", constants: tuple[Basic, ...] = (sympy.Integer(3),)) -> Gen:
    """Both operands in every shape (all broadcasting combinations), plus constant operands."""

    def gen(op: str) -> Iterator[Case]:
        for (la, sa), (lb, sb) in product(SHAPES.items(), repeat=2):
            yield Case(op, (Var(sa, left), Var(sb, right)), label=f"{la}-{lb}")
        for (la, sa), (lb, sb) in product({"scalar": SCALAR, **TENSORS}.items(), repeat=2):
            if la != "scalar" or lb != "scalar":
                yield Case(op, (Var(sa, left), Var(sb, right)), label=f"{la}-{lb}")
        yield Case(op, (Var(RANK4["t4"], left), Var(RANK4["t4-unit"], right)), label="t4-t4-unit")
        for k in constants:
            yield Case(op, (k, Var(FULL, right)), label=f"const{k}-full")
            yield Case(op, (Var(FULL, left), k), label=f"full-const{k}")
            yield Case(op, (Var(TENSORS["t3"], left), k), label=f"t3-const{k}")

    return gen


def power_cases(op: str) -> Iterator[Case]:
    """Constant exponents on any base; a variable exponent on a positive base."""
    for label, s in SHAPES.items():
        yield Case(op, (Var(s), sympy.Integer(3)), label=f"{label}-cube")
        yield Case(op, (Var(s, "away"), sympy.Integer(-2)), label=f"{label}-inverse-square")
        yield Case(op, (Var(s, "positive"), sympy.Rational(1, 2)), label=f"{label}-half")
        yield Case(op, (sympy.Integer(2), Var(s)), label=f"two-to-{label}")
    for (la, sa), (lb, sb) in product(SHAPES.items(), repeat=2):
        yield Case(op, (Var(sa, "positive"), Var(sb)), label=f"{la}-{lb}")


def leaky_cases(op: str) -> Iterator[Case]:
    """A scalar slope, learnable (a variable) or fixed (a constant)."""
    for label, s in SHAPES.items():
        yield Case(op, (Var(s, "away"), Var(SCALAR)), label=f"{label}-slope-var")
        yield Case(op, (Var(s, "away"), sympy.Rational(1, 10)), label=f"{label}-slope-const")


def matmul_cases(op: str) -> Iterator[Case]:
    pairs = {
        "full": ((R, C), (C, K)),
        "row-left": ((1, C), (C, K)),
        "column-right": ((R, C), (C, 1)),
        "inner-product": ((1, C), (C, 1)),
        "outer-product": ((R, 1), (1, K)),
        "scalar-left": ((1, 1), (1, K)),
        "square": ((C, C), (C, C)),
    }
    for label, (sa, sb) in pairs.items():
        yield Case(op, (Var(sa), Var(sb)), label=label)


def reduce_cases(op: str) -> Iterator[Case]:
    """Each axis (and both) over full, column and row operands; every axis and pair of a tensor's."""
    for (label, s), axis in product([("full", FULL), ("column", COLUMN), ("row", ROW)], (None, 0, 1)):
        yield Case(op, (Var(s),), (ir.axes_attr(axis),), label=f"{label}-axis{axis}")
    for (label, s), axes in product([("t3", TENSORS["t3"]), ("t3-unit1", TENSORS["t3-unit1"])],
                                    [None, (0,), (1,), (2,), (0, 2), (1, 2)]):
        yield Case(op, (Var(s),), (ir.axes_attr(axes, 3),), label=f"{label}-axis{axes}")
    yield Case(op, (Var(RANK4["t4"]),), (ir.axes_attr((1, 3)),), label="t4-axis(1,3)")


def softmax_cases(op: str) -> Iterator[Case]:
    for (label, s), axis in product([("full", FULL), ("column", COLUMN), ("row", ROW), ("square", (C, C))], (0, 1)):
        yield Case(op, (Var(s),), (ir.axes_attr(axis),), label=f"{label}-axis{axis}")
    for axis in (0, 1, 2):
        yield Case(op, (Var(TENSORS["t3"]),), (ir.axes_attr(axis),), label=f"t3-axis{axis}")


def broadcast_cases(op: str) -> Iterator[Case]:
    targets = {"scalar-full": (SCALAR, FULL), "column-full": (COLUMN, FULL), "row-full": (ROW, FULL),
               "scalar-column": (SCALAR, COLUMN), "scalar-row": (SCALAR, ROW), "scalar-t3": (SCALAR, TENSORS["t3"]),
               "t3-unit1-t3": (TENSORS["t3-unit1"], TENSORS["t3"]), "t3-ones-t3": (TENSORS["t3-ones"], TENSORS["t3"])}
    for label, (src, dst) in targets.items():
        yield Case(op, (Var(src),), (sympy.Tuple(*dst),), label=label)


def einsum_cases(op: str) -> Iterator[Case]:
    """Products, contractions within one operand, full contractions, three operands, ranks 1 to 4."""
    specs = {
        "matmul": ("fc,cm->fm", (2, 3), (3, 4)),
        "batched": ("fc,ctm->ftm", (2, 3), (3, 4, 2)),
        "scores": ("dtm,dsm->tsm", (2, 3, 2), (2, 4, 2)),
        "rowsum": ("ij->i", (2, 3)),
        "within": ("ijk,j->ik", (2, 3, 4), (3,)),
        "dot": ("ij,ij->", (2, 3), (2, 3)),
        "permutation": ("ijk->kij", (2, 3, 4)),
        "chain": ("ab,bc,cd->ad", (2, 3), (3, 4), (4, 2)),
        "outer": ("i,jk->ijk", (2,), (3, 4)),
        "rank4": ("abcd,cd->ab", (2, 3, 2, 2), (2, 2)),
    }
    for label, (spec, *shapes) in specs.items():
        yield Case(op, tuple(Var(s) for s in shapes), (Str(spec),), label=label)


def reshape_cases(op: str) -> Iterator[Case]:
    for label, (src, dst) in {"flatten": ((2, 3, 4), (6, 4)), "unflatten": ((6, 4), (2, 3, 4)),
                              "column": ((2, 3), (6, 1)), "rank4": ((2, 3, 1, 2), (3, 4))}.items():
        yield Case(op, (Var(src),), (sympy.Tuple(*dst),), label=label)


def permute_cases(op: str) -> Iterator[Case]:
    for label, (shape, perm) in {"t3": ((2, 3, 4), (2, 0, 1)), "t3-swap": ((2, 3, 4), (0, 2, 1)),
                                 "t4": ((2, 3, 1, 2), (3, 1, 0, 2))}.items():
        yield Case(op, (Var(shape),), (sympy.Tuple(*perm),), label=label)


def flip_cases(op: str) -> Iterator[Case]:
    for label, (shape, axes) in {"rows": ((3, 2), (0,)), "both": ((3, 2), (0, 1)), "filters": ((2, 3, 3, 2), (2, 3)),
                                 "t3-last": ((2, 3, 4), (2,))}.items():
        yield Case(op, (Var(shape),), (sympy.Tuple(*axes),), label=label)


def dilate_cases(op: str) -> Iterator[Case]:
    """Dilation and its adjoint: a stride-2 and a stride-3 conv's δ in both layouts, a 1-d one, one axis
    of a matrix. A subsample's operand has (n − 1)·s + 1 entries along its axes, as dilation makes."""
    for label, (shape, s, axes) in {"images": ((2, 3, 2, 2), 2, (1, 2)), "first": ((2, 2, 3, 2), 3, (2, 3)),
                                    "seq": ((2, 3, 2), 2, (1,)), "rows": ((3, 2), 3, (0,))}.items():
        if op == "subsample":
            shape = tuple((n - 1) * s + 1 if k in axes else n for k, n in enumerate(shape))
        yield Case(op, (Var(shape),), (sympy.Integer(s), sympy.Tuple(*axes)), label=label)


def concat_cases(op: str) -> Iterator[Case]:
    for label, (axis, *shapes) in {"rows": (0, (2, 3), (1, 3)), "columns": (1, (2, 3), (2, 2), (2, 1)),
                                   "t3-axis2": (2, (2, 3, 1), (2, 3, 2)), "t3-axis0": (0, (1, 3, 2), (2, 3, 2))}.items():
        yield Case(op, tuple(Var(s) for s in shapes), (ir.axes_attr(axis),), label=label)


def _index(*entries: tuple[int, ...]) -> sympy.Tuple:
    return sympy.Tuple(*(sympy.Tuple(*e) for e in entries))


#: (operand shape, index) for slicing, and the slice's shape for embedding
SLICES = {"rows": ((4, 3), _index((1, 3), (0, 3))), "one-row": ((4, 3), _index((2,), (0, 3))),
          "t3": ((2, 3, 4), _index((0, 2), (1,), (1, 3))), "entry": ((4, 3), _index((1,), (2,))),
          "corner": ((4, 3), _index((3, 4), (2, 3)))}


def slice_cases(op: str) -> Iterator[Case]:
    for label, (shape, index) in SLICES.items():
        yield Case(op, (Var(shape),), (index,), label=label)


def embed_cases(op: str) -> Iterator[Case]:
    for label, (shape, index) in SLICES.items():
        inner = ir.node("slice", ir.symbol("probe", tuple(sympy.Integer(d) for d in shape)), index)
        small = tuple(int(d) for d in ir.shape_of(inner))
        yield Case(op, (Var(small),), (sympy.Tuple(*shape), index), label=label)


def where_cases(op: str) -> Iterator[Case]:
    """A 0/1 condition and both branches, each broadcasting in turn; a constant branch."""
    combos = {"full": (FULL, FULL, FULL), "mask-column": (COLUMN, FULL, FULL), "a-row": (FULL, ROW, FULL),
              "b-scalar": (FULL, FULL, SCALAR), "all-broadcast": (COLUMN, ROW, SCALAR),
              "t3": (TENSORS["t3-unit1"], TENSORS["t3"], TENSORS["t3-unit0"])}
    for label, (sc, sa, sb) in combos.items():
        yield Case(op, (Var(sc, "mask"), Var(sa), Var(sb)), label=label)
    yield Case(op, (Var(FULL, "mask"), Var(FULL), sympy.Rational(1, 10)), label="b-const")


def clip_cases(op: str) -> Iterator[Case]:
    """Constant bounds over every shape; variable bounds (lo < hi, clear of each other) broadcasting."""
    for label, s in {**SHAPES, **TENSORS}.items():
        yield Case(op, (Var(s), sympy.Rational(-1, 2), sympy.Rational(1, 2)), label=f"{label}-const")
    for label, (sx, sl, sh) in {"scalar-bounds": (FULL, SCALAR, SCALAR), "column-row": (FULL, COLUMN, ROW),
                                "t3": (TENSORS["t3"], TENSORS["t3-unit1"], SCALAR)}.items():
        for dx in ("low", "real", "high"):
            yield Case(op, (Var(sx, dx), Var(sl, "real" if dx == "low" else "low"),
                            Var(sh, "real" if dx == "high" else "high")), label=f"{label}-{dx}")


def square_cases(op: str) -> Iterator[Case]:
    """A square matrix, 3×3 and 2×2, invertible with det > 0 and not symmetric."""
    for n in (C, R):
        yield Case(op, (Var((n, n), "square"),), label=f"{n}x{n}")


def solve_cases(op: str) -> Iterator[Case]:
    """A⁻¹ B for B a matrix, a column, and a square matrix."""
    for label, k in {"matrix": K, "column": 1, "square": C}.items():
        yield Case(op, (Var((C, C), "square"), Var((C, k))), label=label)


def eye_cases(op: str) -> Iterator[Case]:
    for n in (1, 3):
        yield Case(op, (), (sympy.Integer(n),), label=f"n{n}")


def fill_cases(op: str) -> Iterator[Case]:
    for label, s in {"full": FULL, "column": COLUMN, "scalar": SCALAR, "t3": TENSORS["t3"]}.items():
        yield Case(op, (), (sympy.Tuple(*s),), label=label)


def _ax(k: int, rank: int = 2) -> sympy.Tuple:
    return ir.axes_attr(k, rank)


def onehot_cases(op: str) -> Iterator[Case]:
    """Labels along each axis of a matrix and along the middle axis of a tensor."""
    yield Case(op, (Var((1, C), f"labels{K}"),), (sympy.Integer(K), _ax(0)), label="columns")
    yield Case(op, (Var((R, 1), f"labels{K}"),), (sympy.Integer(K), _ax(1)), label="rows")
    yield Case(op, (Var((2, 1, 4), f"labels{C}"),), (sympy.Integer(C), _ax(1, 3)), label="t3")


def gather_cases(op: str) -> Iterator[Case]:
    """Columns of a table by a row of indices, by a matrix of them (a rank-3 result), rows of a
    table, and the middle axis of a tensor: indices repeat, so the scatter-add must sum."""
    yield Case(op, (Var((R, K)), Var((1, 2 * K), f"labels{K}")), (_ax(1),), label="columns")
    yield Case(op, (Var((R, K)), Var((R, C), f"labels{K}")), (_ax(1),), label="columns-t3")
    yield Case(op, (Var((K, C)), Var((R, C), f"labels{K}")), (_ax(0),), label="rows")
    yield Case(op, (Var((2, 4, 3)), Var((1, 5), "labels4")), (_ax(1, 3),), label="t3")


def scatter_cases(op: str) -> Iterator[Case]:
    yield Case(op, (Var((R, 1, 2 * K)), Var((1, 2 * K), f"labels{C}")), (sympy.Integer(C), _ax(1)), label="columns")
    yield Case(op, (Var((R, C, 2)), Var((R, C), f"labels{K}")), (sympy.Integer(K), _ax(0, 3)), label="rows")


def pick_cases(op: str) -> Iterator[Case]:
    yield Case(op, (Var((K, C)), Var((1, C), f"labels{K}")), (_ax(0),), label="columns")
    yield Case(op, (Var((R, K)), Var((R, 1), f"labels{K}")), (_ax(1),), label="rows")
    yield Case(op, (Var((2, 3, 4)), Var((2, 1, 4), "labels3")), (_ax(1, 3),), label="t3")


def add_at_cases(op: str) -> Iterator[Case]:
    yield Case(op, (Var((K, C)), Var((1, C), f"labels{K}"), Var(SCALAR)), (_ax(0),), label="columns")
    yield Case(op, (Var((R, K)), Var((R, 1), f"labels{K}"), sympy.Integer(-1)), (_ax(1),), label="rows-const")


def _ints(*values: int) -> tuple[Basic, ...]:
    return tuple(sympy.Integer(v) for v in values)


#: (X, W, stride, padding, examples axis) for conv1d and conv2d: examples last and first, strides,
#: padding, and odd sizes so a transposed window cannot pass.
CONVS = {
    1: [((2, 7, 3), (3, 2, 3), 1, 0, 2), ((2, 7, 3), (3, 2, 3), 2, 1, 2), ((3, 2, 6), (2, 2, 2), 2, 0, 0)],
    2: [((2, 5, 4, 2), (3, 2, 3, 2), 1, 0, 3), ((2, 5, 4, 2), (3, 2, 3, 2), 2, 1, 3),
        ((2, 2, 5, 4), (3, 2, 2, 3), 1, 1, 0), ((1, 6, 6, 1), (2, 1, 3, 3), 3, 0, 3)],
}


def _conv_out(x: tuple[int, ...], w: tuple[int, ...], stride: int, pad: int, batch: int) -> tuple[int, ...]:
    spatial = x[2:] if batch == 0 else x[1:-1]
    out = tuple((s + 2 * pad - k) // stride + 1 for s, k in zip(spatial, w[2:]))
    return (x[0], w[0], *out) if batch == 0 else (w[0], *out, x[-1])


def conv_cases(op: str) -> Iterator[Case]:
    nd = int(op[4])
    for x, w, stride, pad, batch in CONVS[nd]:
        label = f"x{'x'.join(map(str, x))}-s{stride}-p{pad}-b{batch}"
        g = _conv_out(x, w, stride, pad, batch)
        if op.endswith("_input"):
            yield Case(op, (Var(g), Var(w)), _ints(stride, pad, batch), label=label)
        elif op.endswith("_filter"):
            yield Case(op, (Var(x), Var(g)), _ints(stride, pad, batch), label=label)
        else:
            yield Case(op, (Var(x), Var(w)), _ints(stride, pad, batch), label=label)


def windows_cases(op: str) -> Iterator[Case]:
    """The generated-code-only rows of ops_cols, on every convolution case of either rank."""
    for x, w, stride, pad, batch in CONVS[1] + CONVS[2]:
        label = f"x{'x'.join(map(str, x))}-s{stride}-p{pad}-b{batch}"
        g = _conv_out(x, w, stride, pad, batch)
        spatial, nd = (g[2:] if batch == 0 else g[1:-1]), len(w) - 2
        cols = (x[1] if batch == 0 else x[0], *w[2:], *spatial, x[0] if batch == 0 else x[-1])
        if op == "im2col":
            yield Case(op, (Var(x),), _ints(stride, pad, batch, *w[2:]), label=label)
        else:
            yield Case(op, (Var(cols), Var(w if op == "conv_windows" else g)), _ints(batch), label=f"{label}-{nd}d")


#: (X, window size, stride, examples axis): tiling windows, overlapping ones, examples first.
POOLS = [((2, 4, 6, 2), 2, 2, 3), ((2, 4, 5, 1), 3, 1, 3), ((2, 2, 4, 6), 2, 2, 0), ((1, 5, 5, 2), 3, 2, 3)]


def pool_cases(op: str) -> Iterator[Case]:
    for x, size, stride, batch in POOLS:
        spatial = x[2:] if batch == 0 else x[1:-1]
        out = tuple((s - size) // stride + 1 for s in spatial)
        g = (x[0], x[1], *out) if batch == 0 else (x[0], *out, x[-1])
        label = f"x{'x'.join(map(str, x))}-k{size}-s{stride}-b{batch}"
        if op == "max_pool2d_route":
            yield Case(op, (Var(g), Var(x)), _ints(size, stride, batch), label=label)
        elif op == "max_pool2d_route_at":
            yield Case(op, (Var(g), Var(x), Var(g)), _ints(size, stride, batch), label=label)
        elif op == "avg_pool2d_spread":
            yield Case(op, (Var(g),), _ints(size, stride, batch), label=label)
        else:
            yield Case(op, (Var(x),), _ints(size, stride, batch), label=label)


CASES: dict[str, Gen] = {
    "add": binary(),
    "sub": binary(),
    "mul": binary(),
    "div": binary(right="away"),
    "pow": power_cases,
    "neg": unary(),
    "sigmoid": unary(),
    "tanh": unary(),
    "step": unary("away"),
    "relu": unary("away"),
    "leaky_step": binary(left="away", constants=(sympy.Rational(1, 10),)),
    "leaky_relu": leaky_cases,
    "softplus": unary(),
    "exp": unary(),
    "log": unary("positive"),
    "sqrt": unary("positive"),
    "sign": unary("away"),
    "abs": unary("away"),
    "matmul": matmul_cases,
    "transpose": unary(ranks=(2,)),  # .T is a matrix's; a tensor's axes are permuted ("permute")
    "sum": reduce_cases,
    "mean": reduce_cases,
    "broadcast": broadcast_cases,
    "softmax": softmax_cases,
    "log_softmax": softmax_cases,
    "einsum": einsum_cases,
    "reshape": reshape_cases,
    "permute": permute_cases,
    "flip": flip_cases,
    "dilate": dilate_cases,
    "subsample": dilate_cases,
    "concat": concat_cases,
    "slice": slice_cases,
    "embed": embed_cases,
    "erf": unary(),
    "sin": unary(),
    "cos": unary(),
    "log1p": unary("positive"),
    "expm1": unary(),
    "max": reduce_cases,
    "min": reduce_cases,
    "logsumexp": reduce_cases,
    "gt": binary(),
    "ge": binary(),
    "lt": binary(),
    "le": binary(),
    "half_step": unary("away"),
    "where": where_cases,
    "maximum": binary(),
    "minimum": binary(),
    "clip": clip_cases,
    "stop_gradient": unary(),
    "eye": eye_cases,
    "ones": fill_cases,
    "zeros": fill_cases,
    "trace": square_cases,
    "inv": square_cases,
    "det": square_cases,
    "logdet": square_cases,
    "solve": solve_cases,
    "onehot": onehot_cases,
    "gather": gather_cases,
    "scatter": scatter_cases,
    "pick": pick_cases,
    "add_at": add_at_cases,
    **{name: conv_cases for name in ("conv1d", "conv1d_input", "conv1d_filter", "conv2d", "conv2d_input",
                                     "conv2d_filter")},
    **{name: pool_cases for name in ("max_pool2d", "max_pool2d_route", "max_pool2d_route_at", "avg_pool2d",
                                     "avg_pool2d_spread")},
    **{name: windows_cases for name in ("im2col", "conv_windows", "corr_windows")},
}

ALL_CASES = [c for name in sorted(CASES) for c in CASES[name](name)]
GRAD_CASES = [
    (c, i) for c in ALL_CASES for i, o in enumerate(c.operands)
    if isinstance(o, Var) and REGISTRY[c.op].operand_vjp(i) is not None
]


def test_every_registered_op_has_cases() -> None:
    """Adding an operation to the registry means adding its row here."""
    assert set(CASES) == set(REGISTRY), (
        f"missing: {sorted(set(REGISTRY) - set(CASES))}, unknown: {sorted(set(CASES) - set(REGISTRY))}"
    )


def test_every_differentiable_operand_is_exercised() -> None:
    """Each op with a VJP for operand i has at least one case that differentiates operand i."""
    covered = {(c.op, i) for c, i in GRAD_CASES}
    wanted = {(name, i) for name, op in REGISTRY.items() for i, v in enumerate(op.vjps) if v is not None}
    assert wanted <= covered, f"operands without a gradient case: {sorted(wanted - covered)}"


# ---------------------------------------------------------------------------
# VJP against finite differences
# ---------------------------------------------------------------------------


def _seed(case: Case, extra: int = 0) -> np.random.Generator:
    return np.random.default_rng([sum(map(ord, case.id)), len(case.id), extra])


def _pullbacks(node: Basic, g: Basic) -> dict[str, Basic]:
    """What the engine sends back to each operand, through its own pullback of one equation."""
    out = ir.symbol("OUT", ir.shape_of(node))
    found = _Pullback(Equation("OUT", node, out), set(NAMES)).run(g)
    names = [name for name, _, _ in found]
    assert len(names) == len(set(names)), f"one contribution per operand expected, got {names}"
    return {name: contrib for name, contrib, _ in found}


@pytest.mark.parametrize("case,index", GRAD_CASES, ids=[f"{c.id}-d{NAMES[i]}" for c, i in GRAD_CASES])
def test_vjp_matches_finite_differences(case: Case, index: int) -> None:
    rng = _seed(case, index)
    node, vars_ = case.build()
    name = NAMES[index]
    env: dict[str, Any] = {n: draw(v, rng) for n, v in vars_.items()}
    out_shape = tuple(int(d) for d in ir.shape_of(node))
    g = rng.normal(size=out_shape)
    gsym = ir.symbol("G", tuple(sympy.Integer(d) for d in out_shape))

    contrib = _pullbacks(node, gsym)[name]
    assert ir.shape_of(contrib) == tuple(sympy.Integer(d) for d in vars_[name].shape), (
        f"the gradient of {name} has shape {ir.fmt_shape(ir.shape_of(contrib))}, its operand {vars_[name].shape}"
    )
    derived = evaluate(contrib, {**env, "G": g, "OUT": evaluate(node, env)})
    assert derived.shape == vars_[name].shape

    def objective(x: np.ndarray) -> float:
        return float(np.sum(g * evaluate(node, {**env, name: x})))

    h = 1e-6
    fd = np.zeros(vars_[name].shape)
    for idx in np.ndindex(*fd.shape):
        plus, minus = env[name].copy(), env[name].copy()
        plus[idx] += h
        minus[idx] -= h
        fd[idx] = (objective(plus) - objective(minus)) / (2 * h)
    scale = max(np.max(np.abs(fd)), 1e-6)
    err = np.max(np.abs(derived - fd)) / scale
    assert err < 1e-6, f"{case.id}: ∂/∂{name} relative error {err:.3g}\nderived\n{derived}\nfinite differences\n{fd}"


# ---------------------------------------------------------------------------
# The two forms of one definition: np_eval and exact / sym_eval
# ---------------------------------------------------------------------------


def _exact_value(x: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda v: rational(v, 16), otypes=[object])(x)


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_numpy_and_exact_forms_agree(case: Case) -> None:
    rng = _seed(case, 99)
    node, vars_ = case.build()
    exact_env = {n: _exact_value(draw(v, rng)) for n, v in vars_.items()}
    float_env = {n: np.array(m, dtype=float) for n, m in exact_env.items()}
    op = REGISTRY[case.op]
    assert (op.exact is not None) if op.elementwise else (op.sym_eval is not None or case.op == "broadcast")
    numeric = evaluate(node, float_env)
    exact = evaluate_exact(node, exact_env)
    assert numeric.shape == exact.shape == tuple(int(d) for d in ir.shape_of(node))
    want = np.vectorize(lambda v: float(sympy.sympify(v).evalf(30)))(exact)
    np.testing.assert_allclose(numeric, want, rtol=1e-12, atol=1e-12, err_msg=case.id)
