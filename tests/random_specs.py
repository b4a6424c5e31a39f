"""Random small networks as spec text, for FD-checking the chain rule on shapes nobody wrote by hand.

A spec is grown from a target shape: each expression is a leaf (a param or
input of that shape, or of a shape that broadcasts to it), an elementwise
function or arithmetic (operands broadcast: scalar, column, row), a matrix
product through a fresh inner dimension, a transpose, a reduction with keepdims,
or softmax / log_softmax. Logs, square roots, divisions and variable powers get
positive arguments by construction. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

Shape = tuple[str, str]
DIMS = ("n", "m", "k")


@dataclass
class SpecGen:
    rng: random.Random
    decls: dict[str, str] = field(default_factory=dict)  # name -> declaration line
    lines: list[str] = field(default_factory=list)
    n_params: int = 0
    n_vars: int = 0

    # --- leaves ---------------------------------------------------------------
    def var(self, shape: Shape, kind: str | None = None, positive: bool = False) -> str:
        kind = kind or ("param" if self.rng.random() < 0.6 else "input")
        if positive:
            kind = "input"
        name = f"{'P' if kind == 'param' else 'I'}{len(self.decls)}"
        dims = "" if shape == ("1", "1") else f"[{shape[0]}, {shape[1]}]"
        self.decls[name] = f"{kind} {name}{dims}" + (" positive" if positive else "")
        return name

    def smaller(self, shape: Shape) -> Shape:
        """A shape that broadcasts to ``shape``: itself, a column, a row or a scalar."""
        r, c = shape
        return self.rng.choice([(r, c), (r, c), (r, "1"), ("1", c), ("1", "1")])

    # --- expressions ----------------------------------------------------------
    def expr(self, shape: Shape, depth: int, loose: bool = False) -> str:
        """An expression of ``shape`` (``loose``: or of a shape that broadcasts to it)."""
        if depth <= 0 or self.rng.random() < 0.2:
            return self.var(self.smaller(shape) if loose and self.rng.random() < 0.3 else shape)
        kind = self.rng.choice(
            ["unary", "unary", "binary", "binary", "matmul", "transpose", "reduce", "softmax", "special", "name"]
        )
        if kind in ("unary", "binary"):
            return getattr(self, kind)(shape, depth - 1, loose)
        return getattr(self, kind)(shape, depth - 1)

    def positive(self, shape: Shape, depth: int, loose: bool = False) -> str:
        """An expression whose value is > 0 everywhere."""
        choice = self.rng.choice(["input", "softplus", "exp", "sq"])
        if choice == "input":
            return self.var(self.smaller(shape) if loose else shape, positive=True)
        inner = self.expr(shape, depth)
        return {"softplus": f"softplus({inner})", "exp": f"exp(tanh({inner}))", "sq": f"(1 + ({inner})**2)"}[choice]

    def unary(self, shape: Shape, depth: int, loose: bool = False) -> str:
        inner = self.expr(shape, depth, loose)
        f = self.rng.choice(["sigmoid", "tanh", "relu", "softplus", "abs", "neg", "leaky", "leaky_param"])
        if f == "neg":
            return f"-({inner})"
        if f == "leaky":
            return f"leaky_relu({inner}, 0.1)"
        if f == "leaky_param":
            return f"leaky_relu({inner}, {self.var(('1', '1'), 'param')})"
        return f"{f}({inner})"

    def binary(self, shape: Shape, depth: int, loose: bool = False) -> str:
        op = self.rng.choice(["+", "-", "*", "/", "**"])
        if op == "**" and self.rng.random() < 0.5:  # a variable exponent needs a positive base
            return f"({self.positive(shape, depth, loose)}) ** ({self.expr(self.smaller(shape), depth, loose=True)})"
        a = self.expr(shape, depth, loose)
        if op == "/":
            return f"({a}) / ({self.positive(self.smaller(shape), depth, loose=True)})"
        if op == "**":
            return f"({a}) ** {self.rng.choice(['2', '3'])}"
        b = self.expr(self.smaller(shape), depth, loose=True)
        if self.rng.random() < 0.5:
            a, b = b, a
        return f"({a}) {op} ({b})"

    def matmul(self, shape: Shape, depth: int) -> str:
        inner = self.rng.choice(DIMS + ("1",))
        return f"({self.expr((shape[0], inner), depth)}) @ ({self.expr((inner, shape[1]), depth)})"

    def transpose(self, shape: Shape, depth: int) -> str:
        return f"({self.expr((shape[1], shape[0]), depth)}).T"

    def reduce(self, shape: Shape, depth: int) -> str:
        f = self.rng.choice(["sum", "mean"])
        r, c = shape
        if r == "1" and c == "1":
            return f"{f}({self.expr((self.rng.choice(DIMS), self.rng.choice(DIMS)), depth)})"
        if r == "1":
            return f"{f}({self.expr((self.rng.choice(DIMS), c), depth)}, axis=0)"
        if c == "1":
            return f"{f}({self.expr((r, self.rng.choice(DIMS)), depth)}, axis=1)"
        return self.unary(shape, depth)

    def softmax(self, shape: Shape, depth: int) -> str:
        """Along an axis of more than one entry (softmax over one entry is the constant 1)."""
        axes = [ax for ax in (0, 1) if shape[ax] != "1"]
        if not axes:
            return self.unary(shape, depth)
        f = self.rng.choice(["softmax", "log_softmax"])
        return f"{f}({self.expr(shape, depth)}, axis={self.rng.choice(axes)})"

    def special(self, shape: Shape, depth: int) -> str:
        f = self.rng.choice(["log", "sqrt", "exp"])
        if f == "exp":
            return f"exp(tanh({self.expr(shape, depth)}))"
        return f"{f}({self.positive(shape, depth)})"

    def name(self, shape: Shape, depth: int) -> str:
        """Name an intermediate value (a later line may use it more than once)."""
        value = self.expr(shape, depth)
        name = f"V{self.n_vars}"
        self.n_vars += 1
        self.lines.append(f"{name} = {value}")
        uses = self.rng.choice([1, 1, 2])
        return name if uses == 1 else f"({name} * {name} + {name})"


def random_spec(seed: int, depth: int = 3) -> str:
    """Spec text for one random network; the loss is a sum or mean of a random matrix expression."""
    rng = random.Random(seed)
    gen = SpecGen(rng)
    shape = (rng.choice(DIMS + ("1",)), rng.choice(DIMS + ("1",)))
    body = gen.expr(shape, depth)
    red = rng.choice(["sum", "mean"])
    if not any(line.startswith("param") for line in gen.decls.values()):
        body = f"({body}) * {gen.var(('1', '1'), 'param')}"
    lines = list(gen.decls.values()) + gen.lines + [f"loss = {red}({body})"]
    return "\n".join(lines) + "\n"
