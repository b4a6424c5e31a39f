"""Random valid specs over the whole spec language, for differential fuzzing of generated code.

Unlike :mod:`random_specs` (which checks the chain rule), this generator aims at the
code generator's blind spots: every function of the language (``backprop.expr.ops.FUNCTIONS``)
and every operator; operands broadcast as scalars, columns and rows; scalar and 1×1
params; params read on several paths; softmax and reductions over axes of length one;
constants and functions of dims (``/ m``, ``sqrt(k)``, ``sigmoid(k)``); and names drawn
from a pool of the generated module's own globals and locals (``_ACCEPTED``, ``_CACHE``,
``np``, ``grads`` ...) and builtins. Arguments of ``log``, ``sqrt``,
``/`` and variable powers are positive by construction, and ``exp`` sees bounded
arguments, so every draw has a finite loss. The matrix-calculus functions (``trace``, ``inv``,
``det``, ``logdet``, ``solve``) see I + tanh(E)/(2n), whose singular values lie in [1/2, 3/2] (so it
is invertible, well conditioned, and its determinant positive). Deterministic for a given seed.
"""

from __future__ import annotations

import keyword
import random
import re
from dataclasses import dataclass, field

from backprop.expr.ops import FUNCTIONS
from backprop.language.parse import parse_spec
from backprop.support.errors import SpecError

Shape = tuple[str, ...]
ONE = "1"
SCALAR: Shape = (ONE, ONE)
LETTERS = "abcdefghijkl"

#: Names a generated module could trip over: its own globals and helpers, its functions'
#: locals, NumPy, builtins, generated-looking names (t1, dW, Z1).
HOSTILE_NAMES = (
    "_ACCEPTED", "_CACHE", "_forward", "_check_shapes", "_expect_keys", "_like", "_normal",
    "_init_dims", "_fmt_shape", "_scalar", "_weak", "_sigmoid", "_sigmoid_", "_softmax",
    "_log_softmax", "np", "numpy", "dims", "grads", "cache", "params", "inputs", "loss", "rng",
    "dtype", "seed", "forward", "backward", "loss_and_grads", "init_params", "init_state",
    "SHAPES", "PARAMS", "INPUTS", "DOMAINS", "DIMS", "INIT", "len", "float", "dict", "zip",
    "getattr", "KeyError", "print", "type", "t1", "t2", "Z1", "dZ",
    "name", "value", "key", "self", "lr", "state", "buf", "g", "e", "x", "s",
    "exec", "object", "range", "max", "id", "Ellipsis", "__name__", "__builtins__", "class_", "lambda_", "None_",
)
#: Dimension names, some of them hostile too (a fixed size sometimes replaces one).
DIM_NAMES = ("n", "m", "k", "h", "rng", "seed", "dtype", "dims", "N", "size")

UNARY = ("sigmoid", "tanh", "relu", "softplus", "abs", "neg", "leaky_relu", "exp", "log", "sqrt", "erf", "sin", "cos",
         "log1p", "expm1", "sign", "stop_gradient")
#: The comparisons, each a 0/1 mask.
COMPARE = (">", ">=", "<", "<=")


@dataclass
class FuzzGen:
    rng: random.Random
    dims: tuple[str, str, str]
    names: list[str]
    decls: dict[str, tuple[str, Shape, str | None, str]] = field(default_factory=dict)  # name -> kind, shape, domain, line
    lines: list[str] = field(default_factory=list)

    # --- names and leaves -----------------------------------------------------
    def fresh_name(self, prefix: str) -> str:
        taken = set(self.decls) | {line.split(" = ")[0] for line in self.lines}
        while self.names:
            name = self.names.pop()
            # dNAME is reserved when NAME is declared, and the other way round
            if name not in taken and f"d{name}" not in taken and not (name.startswith("d") and name[1:] in taken):
                return name
        i = len(taken)
        while f"{prefix}{i}" in taken:
            i += 1
        return f"{prefix}{i}"

    def leaf(self, shape: Shape, kind: str | None = None, positive: bool = False) -> str:
        """A param or input of ``shape``: often one already declared (read on several paths)."""
        kind = kind or ("param" if self.rng.random() < 0.6 else "input")
        if positive:
            kind = "input"
        same = [
            n for n, (k, s, dom, _) in self.decls.items()
            if s == shape and k == kind and (dom in ("positive", "prob") if positive else dom is None)
        ]
        if same and self.rng.random() < 0.4:
            return self.rng.choice(same)
        name = self.fresh_name("P" if kind == "param" else "I")
        if shape == SCALAR and self.rng.random() < 0.6:
            dims = ""  # a scalar: a Python number, a 0-d or a 1×1 array
        else:
            dims = f"[{', '.join(shape)}]"
        domain = None
        if positive:
            domain = self.rng.choice(["positive", "positive", "prob"])
        elif kind == "input" and len(shape) == 2 and ONE not in shape and self.rng.random() < 0.15:
            domain = self.rng.choice(["onehot", "binary"])
        line = f"{kind} {name}{dims}" + (f" {domain}" if domain else "")
        self.decls[name] = (kind, shape, domain, line)
        return name

    def smaller(self, shape: Shape) -> Shape:
        """A shape that broadcasts to ``shape``: itself, a column, a row, any axes of length 1, a scalar."""
        pick = self.rng.random()
        if pick < 0.4:
            return shape
        if pick < 0.55:
            return SCALAR
        return tuple(ONE if self.rng.random() < 0.5 else d for d in shape)

    def wide(self) -> str:
        return self.rng.choice(self.dims + (ONE,))

    def random_shape(self, rank: int | None = None) -> Shape:
        rank = rank or self.rng.choice([1, 2, 2, 2, 3, 3, 4])
        return tuple(self.wide() for _ in range(rank))

    # --- constants --------------------------------------------------------------
    def constant(self, positive: bool = True) -> str:
        """A number, a dim, or a function of dims (evaluated by the generated code)."""
        d = self.rng.choice(self.dims)
        options = [
            "2", "3", "0.5", "0.01", d, f"{d} / 2", f"sqrt({d})", f"1 / sqrt({d})", f"exp(1 / {d})",
            f"sigmoid({d})", f"log({d} + 1)", f"softplus(1 - {d})", f"tanh({d})", f"abs(1 - {d}) + 1",
            f"relu({d})", f"leaky_relu({d}, 0.5)", f"mean({d})", f"sum({d})", f"softmax({d}, axis=0)",
            f"{d} ** 2", f"2 ** -{d}",
        ]
        if not positive:
            options += ["-1", f"-{d}", f"tanh(1 - {d})", f"abs(1 - {d})", f"log_softmax({d}, axis=1)"]
        return self.rng.choice(options)

    # --- expressions ------------------------------------------------------------
    def expr(self, shape: Shape, depth: int, loose: bool = False) -> str:
        """An expression of ``shape`` (``loose``: or of a shape that broadcasts to it)."""
        if depth <= 0 or self.rng.random() < 0.15:
            return self.leaf(self.smaller(shape) if loose and self.rng.random() < 0.3 else shape)
        kinds = ["unary", "unary", "unary", "binary", "binary", "binary", "reduce", "softmax", "scale", "name",
                 "einsum", "reshape", "permute", "flip", "concat", "take", "select", "select", "labels"]
        if len(shape) == 2:
            kinds += ["matmul", "transpose", "linalg", "linalg"]
        if len(shape) in (3, 4):  # images and sequences: convolutions and pooling (often, as rank 4 is rare)
            kinds += ["conv"] * (2 if len(shape) == 3 else 6) + ["dilate"]
        return getattr(self, self.rng.choice(kinds))(shape, depth - 1)

    def bounded(self, shape: Shape, depth: int) -> str:
        """An expression with values in (−1, 1) or so, for exp and exponents."""
        inner = self.expr(shape, depth)
        return f"{self.rng.choice(['tanh', 'sigmoid'])}({inner})"

    def positive(self, shape: Shape, depth: int) -> str:
        """An expression of ``shape`` > 0 everywhere, bounded away from 0."""
        choice = self.rng.choice(["input", "softplus", "exp", "sq", "sigmoid", "const"])
        if choice in ("input", "const") or depth <= 0:
            const = f"{self.constant()} + " if choice == "const" else ""
            return f"({const}{self.leaf(shape, positive=True)})"
        inner = self.expr(shape, depth - 1)
        return {
            "softplus": f"(softplus({inner}) + 0.5)", "exp": f"exp({self.bounded(shape, depth - 1)})",
            "sq": f"(1 + ({inner}) ** 2)", "sigmoid": f"(sigmoid({inner}) + 1)",
        }[choice]

    def unary(self, shape: Shape, depth: int) -> str:
        f = self.rng.choice(UNARY)
        if f == "log":
            return f"log({self.positive(shape, depth)})"
        if f == "sqrt":
            return f"sqrt({self.positive(shape, depth)})"
        if f in ("exp", "expm1"):
            return f"{f}({self.bounded(shape, depth)})"
        if f == "log1p":
            return f"log1p({self.positive(shape, depth)})"
        inner = self.expr(shape, depth)
        if f == "neg":
            return f"-({inner})"
        if f == "leaky_relu":
            slope = self.rng.choice(["0.1", "const", "leaf", "expr"])
            if slope == "const":
                slope = self.constant()
            elif slope == "leaf":
                slope = self.leaf(SCALAR)
            elif slope == "expr":
                slope = self.bounded(SCALAR, depth)
            return f"leaky_relu({inner}, {slope})"
        return f"{f}({inner})"

    def binary(self, shape: Shape, depth: int) -> str:
        op = self.rng.choice(["+", "-", "*", "/", "**", "**"])
        a = self.expr(shape, depth)
        if op == "/":
            return f"({a}) / ({self.positive(self.smaller(shape), depth)})"
        if op == "**":
            if self.rng.random() < 0.5:
                return f"({a}) ** {self.rng.choice(['2', '3', '1', '0'])}"
            base = self.positive(shape, depth)
            ex = self.rng.choice(["-1", "-2", "0.5", "1.5", "expr"])
            if ex == "expr":
                ex = f"({self.bounded(self.smaller(shape), depth)})"
            return f"({base}) ** {ex}"
        b = self.expr(self.smaller(shape), depth)
        if self.rng.random() < 0.5:
            a, b = b, a
        return f"({a}) {op} ({b})"

    def scale(self, shape: Shape, depth: int) -> str:
        """A constant times, over, plus or minus an expression: ``/ m``, ``* sqrt(k)``."""
        inner = self.expr(shape, depth)
        op = self.rng.choice(["*", "/", "+", "-", "rmul", "rsub"])
        c = self.constant(positive=op == "/")
        if op == "rmul":
            return f"{c} * ({inner})"
        if op == "rsub":
            return f"{c} - ({inner})"
        return f"({inner}) {op} ({c})"

    def matmul(self, shape: Shape, depth: int) -> str:
        inner = self.rng.choice(self.dims + (ONE,))
        eye = f" @ (eye({inner}) + ones({inner}, {inner}))" if self.rng.random() < 0.2 else ""
        return f"({self.expr((shape[0], inner), depth)}){eye} @ ({self.expr((inner, shape[1]), depth)})"

    def select(self, shape: Shape, depth: int) -> str:
        """maximum/minimum (a relu against 0 meets ties), clip, where over a comparison, a mask as a
        factor, or a constant array: the kinks follow PyTorch's conventions, ties included."""
        kind = self.rng.choice(["extreme", "extreme", "clip", "where", "mask", "fill"])
        a = self.expr(shape, depth)
        if kind == "extreme":
            f = self.rng.choice(["maximum", "minimum"])
            small = self.smaller(shape)
            other = self.rng.choice(["0", f"relu({self.expr(small, depth)})", self.expr(small, depth)])
            return f"{f}(relu({a}), {other})" if other == "0" and self.rng.random() < 0.5 else f"{f}({a}, {other})"
        if kind == "clip":
            lo, hi = self.rng.choice([("-0.5", "0.5"), ("0", "1"), (f"-{self.positive(SCALAR, 0)}", "1")])
            return f"clip({a}, {lo}, {hi})"
        bound = self.rng.choice(["0", self.leaf(SCALAR)])
        cond = f"({self.expr(self.smaller(shape), depth)}) {self.rng.choice(COMPARE)} ({bound})"
        if kind == "where":
            return f"where({cond}, {a}, {self.expr(self.smaller(shape), depth)})"
        if kind == "mask":
            return f"({cond}) * ({a})"
        return f"({a}) + {self.rng.choice(['ones', 'zeros'])}({', '.join(shape)})"

    def near_identity(self, n: str, depth: int) -> str:
        """An n×n value I + tanh(E)/(2n): the perturbation's norm is at most 1/2, so its singular values
        lie in [1/2, 3/2] (invertible, well conditioned) and its eigenvalues within 1/2 of 1 (det > 0)."""
        return f"(eye({n}) + tanh({self.expr((n, n), depth)}) / (2 * {n}))"

    def linalg(self, shape: Shape, depth: int) -> str:
        """A matrix ``shape`` (or a scalar) from the matrix-calculus functions: trace, det or logdet (alone
        or scaling an expression), an inverse (transposed or not), a solve (with A or Aᵀ), or a product by
        an inverse from either side -- the forms the code generator turns into solves or reuses."""
        rows, cols = shape
        forms = ["scalar", "scalar"] + (["solve", "left"] if rows != ONE else []) + (["right"] if cols != ONE else [])
        forms += ["inv"] if rows == cols != ONE else []
        form = self.rng.choice(forms)
        t = self.rng.choice(["", ".T"])
        if form == "scalar":
            n = self.rng.choice(self.dims)
            f = self.rng.choice(["trace", "trace", "det", "logdet"])
            value = f"{f}({self.near_identity(n, depth)})" if self.rng.random() < 0.8 else f"trace({self.expr((n, n), depth)})"
            return value if shape == SCALAR else f"{value} * ({self.expr(shape, depth)})"
        if form == "inv":
            return f"inv({self.near_identity(rows, depth)}){t}"
        if form == "solve":
            return f"solve({self.near_identity(rows, depth)}{t}, {self.expr(shape, depth)})"
        if form == "left":
            return f"inv({self.near_identity(rows, depth)}){t} @ ({self.expr(shape, depth)})"
        return f"({self.expr(shape, depth)}) @ inv({self.near_identity(cols, depth)}){t}"

    def transpose(self, shape: Shape, depth: int) -> str:
        return f"({self.expr((shape[1], shape[0]), depth)}).T"

    def reduce(self, shape: Shape, depth: int) -> str:
        """sum or mean down to ``shape``: of everything, along axes, or over axes of length 1."""
        f = self.rng.choice(["sum", "mean", "sum", "mean", "max", "min", "logsumexp"])
        if shape == SCALAR and self.rng.random() < 0.6:
            return f"{f}({self.expr(self.random_shape(), depth)})"
        ones = [ax for ax, d in enumerate(shape) if d == ONE]
        if not ones:  # a full shape: a reduction broadcast back against it
            axis = self.rng.randrange(len(shape))
            return f"({self.expr(shape, depth)}) - {f}({self.expr(shape, depth)}, axis={axis})"
        axes = sorted(self.rng.sample(ones, self.rng.randint(1, len(ones))))
        inner = tuple(self.wide() if ax in axes else d for ax, d in enumerate(shape))
        if len(axes) == len(shape):  # every axis: a scalar, given the rank of ``shape`` back
            total = f"{f}({self.expr(inner, depth)})"
            return total if len(shape) == 2 else f"reshape({total}, [{', '.join(shape)}])"
        written = str(axes[0]) if len(axes) == 1 and self.rng.random() < 0.5 else f"({', '.join(map(str, axes))},)"
        return f"{f}({self.expr(inner, depth)}, axis={written})"

    def softmax(self, shape: Shape, depth: int) -> str:
        """softmax or log_softmax along any axis, an axis of length 1 (a constant) included."""
        f = self.rng.choice(["softmax", "log_softmax"])
        return f"{f}({self.expr(shape, depth)}, axis={self.rng.randrange(len(shape))})"

    # --- tensor forms -------------------------------------------------------------
    def einsum(self, shape: Shape, depth: int) -> str:
        """A product of one to three operands whose result is ``shape``: output letters spread over
        the operands, contracted letters shared, batch letters in several."""
        target = () if shape == SCALAR else shape
        out = LETTERS[: len(target)]
        summed = LETTERS[len(target): len(target) + self.rng.randint(0 if target else 1, 2)]
        size = dict(zip(out, target)) | {ch: self.rng.choice(self.dims) for ch in summed}
        count = self.rng.choice([1, 2, 2, 3])
        parts: list[list[str]] = [[] for _ in range(count)]
        for ch in out + summed:
            for k in self.rng.sample(range(count), self.rng.randint(1, count)):
                parts[k].append(ch)
        for part in parts:
            self.rng.shuffle(part)
            if not part or (len(part) == 2 and all(size[ch] == ONE for ch in part)):
                return self.leaf(shape)  # an operand would be a scalar: einsum refuses those
        operands = [self.expr(tuple(size[ch] for ch in part), depth) for part in parts]
        spec = ",".join("".join(p) for p in parts) + "->" + out
        return f'einsum("{spec}", {", ".join(operands)})'

    def reshape(self, shape: Shape, depth: int) -> str:
        """The same dims in another order or rank (axes of length 1 added or dropped)."""
        dims = [d for d in shape if d != ONE]
        self.rng.shuffle(dims)
        dims += [ONE] * self.rng.randint(0 if dims else 1, 2)
        if len(dims) == 2 and all(d == ONE for d in dims):
            dims.append(ONE)
        return f"reshape({self.expr(tuple(dims), depth)}, [{', '.join(shape)}])"

    def permute(self, shape: Shape, depth: int) -> str:
        if shape == SCALAR:
            return self.leaf(shape)
        perm = list(range(len(shape)))
        self.rng.shuffle(perm)
        source = [ONE] * len(shape)
        for k, p in enumerate(perm):
            source[p] = shape[k]
        return f"transpose({self.expr(tuple(source), depth)}, [{', '.join(map(str, perm))}])"

    def flip(self, shape: Shape, depth: int) -> str:
        if shape == SCALAR:
            return self.leaf(shape)
        axes = sorted(self.rng.sample(range(len(shape)), self.rng.randint(1, len(shape))))
        return f"flip({self.expr(shape, depth)}, [{', '.join(map(str, axes))}])"

    def concat(self, shape: Shape, depth: int) -> str:
        """Two or three values joined along an axis, then sliced back to ``shape`` (or reduced
        along that axis when it has length 1)."""
        axis = self.rng.randrange(len(shape))
        lengths = [self.rng.choice(self.dims + (ONE, "2")) for _ in range(self.rng.choice([2, 3]))]
        if shape[axis] != ONE:
            lengths[0] = shape[axis]
        parts = [self.expr(tuple(n if ax == axis else d for ax, d in enumerate(shape)), depth) for n in lengths]
        joined = f"concat({', '.join(parts)}, axis={axis})"
        if shape[axis] == ONE:
            return f"sum({joined}, axis={axis})" if len(shape) > 1 else f"reshape(sum({joined}), [1])"
        index = [":"] * len(shape)
        index[axis] = f":{shape[axis]}"
        return f"({joined})[{', '.join(index)}]"

    def take(self, shape: Shape, depth: int) -> str:
        """One position of an extra axis (its first or last), or a whole axis by a slice."""
        if shape == SCALAR or self.rng.random() < 0.6:
            kept = [] if shape == SCALAR else list(shape)
            axis = self.rng.randint(0, len(kept))
            length = self.rng.choice(self.dims + ("2",))
            source = kept[:axis] + [length] + kept[axis:]
            if len(source) == 2 and all(d == ONE for d in source):
                return self.leaf(shape)
            index = [":"] * len(source)
            index[axis] = self.rng.choice(["0", f"{length} - 1", "-1"])
            return f"({self.expr(tuple(source), depth)})[{', '.join(index)}]"
        axis = self.rng.randrange(len(shape))
        index = [":"] * len(shape)
        index[axis] = self.rng.choice([f"0:{shape[axis]}", ":", "0:"])
        return f"({self.expr(shape, depth)})[{', '.join(index)}]"

    def conv(self, shape: Shape, depth: int) -> str:
        """A convolution to ``shape`` (channels, spatial…, examples): an odd kernel padded by half of it
        (any size fits, names too), or, for images, max or average pooling -- windows of 2 over sizes
        that are numbers (stride 1 or 2, so windows overlap or tile), of 1 over named sizes."""
        nd = len(shape) - 2
        kind = self.rng.choice(["conv", "conv", "max", "avg"]) if nd == 2 else "conv"
        if kind == "conv":
            c = self.rng.choice(self.dims + ("2",))
            k = self.rng.choice([1, 3])
            x = self.expr((c, *shape[1:]), depth)
            w = self.leaf((shape[0], c, *(str(k),) * nd), "param")
            return f"conv{nd}d({x}, {w}" + (f", padding={k // 2})" if k > 1 else ")")
        spatial = shape[1:-1]
        size, stride = (2, self.rng.choice([1, 2])) if all(d.isdigit() for d in spatial) else (1, 1)
        source = tuple(str(stride * (int(o) - 1) + size) if o.isdigit() else o for o in spatial)
        x = self.expr((shape[0], *source, shape[-1]), depth)
        return f"{kind}_pool2d({x}, size={size}" + (f", stride={stride})" if stride != size else ")")

    def dilate(self, shape: Shape, depth: int) -> str:
        """A value dilated along its spatial axes (a strided conv's δ as a claim writes it), by 2 or 3:
        from sizes that are numbers n of (n − 1)/s + 1, else sliced back to the first n entries."""
        spatial, s = shape[1:-1], self.rng.choice([2, 3])
        axes = list(range(1, len(shape) - 1))  # named: the fuzzed spec may put its examples first
        if all(d.isdigit() and (int(d) - 1) % s == 0 for d in spatial):
            x = self.expr((shape[0], *(str((int(d) - 1) // s + 1) for d in spatial), shape[-1]), depth)
            return f"dilate({x}, {s}, {axes})"
        index = [":"] + [f":{d}" for d in spatial] + [":"]
        return f"(dilate({self.expr(shape, depth)}, {s}, {axes}))[{', '.join(index)}]"

    def label_input(self, shape: Shape, classes: str) -> str:
        """An input of class labels 0..classes−1: often one already declared."""
        domain = f"labels({classes})"
        same = [n for n, (k, s, dom, _) in self.decls.items() if s == shape and dom == domain]
        if same and self.rng.random() < 0.4:
            return self.rng.choice(same)
        name = self.fresh_name("I")
        self.decls[name] = ("input", shape, domain, f"input {name}[{', '.join(shape)}] {domain}")
        return name

    def labels(self, shape: Shape, depth: int) -> str:
        """Integer labels: a one-hot form of them along an axis (times a value, as cross-entropy
        reads it, or alone), or a lookup ``take`` of a table's slices at them."""
        units = [k for k, d in enumerate(shape) if d == ONE]
        if units and len(shape) >= 2 and self.rng.random() < 0.3:  # each example's entry at its label (pick)
            k = self.rng.choice(units)
            c = self.rng.choice([d for d in self.dims if not d.isdigit()] or ["3"])
            y = self.label_input(shape, c)
            source = shape[:k] + (c,) + shape[k + 1:]
            return f"sum(onehot({y}, {c}, axis={k}) * ({self.expr(source, depth)}), axis={k})"
        axes = [k for k, d in enumerate(shape) if d != ONE]
        if not axes:
            return self.leaf(shape)
        k = self.rng.choice(axes)
        if self.rng.random() < 0.5:
            y = self.label_input(shape[:k] + (ONE,) + shape[k + 1:], shape[k])
            hot = f"onehot({y}, {shape[k]}" + (f", axis={k})" if k else ")")
            way = self.rng.random()
            if way < 0.25:
                return hot
            if way < 0.5:  # softmax minus the labels, as cross-entropy's gradient (add_at)
                return f"(({self.expr(shape, depth)}) - {hot})"
            return f"({hot} * ({self.expr(shape, depth)}))"
        starts = [j for j in range(len(shape) - 1) if shape[j:j + 2] != (ONE, ONE)] if len(shape) >= 3 else []
        if not starts:
            y = self.label_input(shape[:k] + (ONE,) + shape[k + 1:], shape[k])
            return f"onehot({y}, {shape[k]}" + (f", axis={k})" if k else ")")
        k = self.rng.choice(starts)  # the indices fill two axes of the result; the table has one there
        idx = shape[k:k + 2]
        size = self.rng.choice([d for d in self.dims if not d.isdigit()] or ["3"])
        table = shape[:k] + (size,) + shape[k + 2:]
        y = self.label_input(idx, size)
        return f"take({self.expr(table, depth)}, {y}, axis={k})"

    def name(self, shape: Shape, depth: int) -> str:
        """Name an intermediate value, read up to three times."""
        value = self.expr(shape, depth)
        name = self.fresh_name("V")
        self.lines.append(f"{name} = {value}")
        uses = self.rng.choice([1, 1, 2, 3])
        return " + ".join([name] * uses) if uses < 3 else f"({name} * {name} - {name})"


def fuzz_spec(seed: int, depth: int = 3) -> str:
    """Spec text for one random network; the loss is a scalar function of a random expression.

    A param the loss turns out not to depend on (one only under softmax over one entry, or
    raised to the power 0) is declared an input instead, as the language requires (and
    the loss is scaled by a new param when none is left).
    """
    text = _draw_spec(seed, depth)
    for _ in range(20):
        try:
            parse_spec(text, path="<fuzz>", name="fuzz")
            return text
        except SpecError as e:
            if "no params" in str(e):  # every param was unused: scale the loss by a new one
                *body, last = text.rstrip("\n").split("\n")
                name, value = last.split(" = ", 1)
                text = "\n".join(["param P_scale", *body, f"{name} = ({value}) * P_scale"]) + "\n"
                continue
            unused = re.search(r"param '(\w+)' (is declared but the loss \(.*?\) does not depend on it"
                               r"|reaches the loss only)", str(e))
            if not unused:
                raise
            text = re.sub(rf"^param {unused.group(1)}\b", f"input {unused.group(1)}", text, flags=re.M)
    raise AssertionError(f"seed {seed}: no param reaches the loss")  # pragma: no cover


def _draw_spec(seed: int, depth: int) -> str:
    rng = random.Random(seed)
    dims = tuple(rng.sample(DIM_NAMES, 3))
    if rng.random() < 0.2:  # a fixed size: W[3, n]
        dims = (rng.choice(["2", "3"]),) + dims[1:]
    names = [n for n in HOSTILE_NAMES if n not in dims and not keyword.issoftkeyword(n)
             and n not in FUNCTIONS]  # the parser refuses those
    rng.shuffle(names)
    gen = FuzzGen(rng, dims, names[: rng.randrange(0, 12)])  # type: ignore[arg-type]
    shape = gen.random_shape(rng.choice([2, 2, 2, 3, 4]))
    body = gen.expr(shape, depth)
    red = rng.choice(["sum", "mean", "sum"])
    loss = f"{red}({body})"
    if not any(kind == "param" for kind, *_ in gen.decls.values()):
        loss = f"({loss}) * {gen.leaf(SCALAR, 'param')}"
    if rng.random() < 0.3:  # a penalty on a param already used: a second path to it
        p = rng.choice([n for n, (kind, *_) in gen.decls.items() if kind == "param"])
        loss = f"{loss} + {gen.constant()} * sum({p} ** 2)"
    declared = {d for _, shape, _, _ in gen.decls.values() for d in shape}
    for d in dims:  # a dim only constants read is declared by an input nothing reads
        if d not in declared and not d.isdigit():
            gen.leaf((d, ONE), "input")
    loss_name = gen.fresh_name("L")
    lines = [d[3] for d in gen.decls.values()] + gen.lines + [f"{loss_name} = {loss}"]
    return "\n".join(lines) + "\n"
