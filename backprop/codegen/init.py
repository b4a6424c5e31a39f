"""How ``init_params`` scales each param, decided from where the param is used.

A weight (a factor of a matrix product) is drawn from a normal distribution
whose scale depends on the activation its product feeds, found by following
the product up through bias additions and named pre-activations:

- ReLU / leaky ReLU / softplus: He, std = sqrt(2 / fan_in) -- keeps the
  variance of rectified units steady across layers;
- sigmoid, tanh, softmax or a linear output: Glorot, std = sqrt(2 / (fan_in + fan_out)).

A param contracted only with one-hot inputs is an embedding table: each product
picks one of its columns, so the fan-in is 1 and it starts N(0, 1), as
``torch.nn.Embedding`` does (a 1/sqrt(V) scale would shrink every embedding).
An elementwise product summed along an axis where the param varies,
``sum(w ⊙ A, axis=0)``, is a matrix product written out: a weight whose fan-in is the summed axes.
A param only ever added (a bias) starts at zero; a leaky-ReLU slope at 0.01; a
gain (a param only ever multiplied, entry by entry and broadcast, into a computed
value: a layer norm's g) at one, as ``nn.LayerNorm`` starts, so the value passes
through unscaled; anything else is treated as a weight on its own shape (Glorot).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.chain import ACTIVATIONS
from backprop.engine.derivation import Shown
from backprop.expr import ir
from backprop.expr.ir import OpNode
from backprop.expr.ops_row import axes_of

HE = frozenset({"relu", "leaky_relu", "softplus"})
ADDITIVE = frozenset({"add", "sub", "broadcast"})


@dataclass(frozen=True)
class Init:
    """One param's initial values: ``scheme`` is "he", "glorot", "embedding", "zeros", "ones" or "slope"."""

    scheme: str
    fan_in: sympy.Expr = sympy.Integer(1)
    fan_out: sympy.Expr = sympy.Integer(1)
    reason: str = ""


def _parents(d: Shown) -> list[tuple[Basic, OpNode | None, int, str]]:
    """(node, parent, operand index, equation name) for every node of every forward equation."""
    out: list[tuple[Basic, OpNode | None, int, str]] = []

    def walk(e: Basic, parent: OpNode | None, i: int, eq: str) -> None:
        out.append((e, parent, i, eq))
        if isinstance(e, OpNode):
            for j, c in enumerate(e.children):
                walk(c, e, j, eq)

    for eq in d.every_equation:
        walk(eq.expr, None, 0, eq.name)
    return out


def _consumer(node: Basic, eq: str, parent_of: dict, named_uses: dict) -> str:
    """The activation a product's value feeds: up through additions and named pre-activations."""
    seen: set[str] = set()
    while True:
        parent = parent_of.get((id(node), eq))
        while parent is not None and parent.op.name in ADDITIVE:
            node, parent = parent, parent_of.get((id(parent), eq))
        if parent is not None:
            return parent.op.name if parent.op.name in ACTIVATIONS else "linear"
        if eq in seen:  # pragma: no cover - equations form a DAG
            return "linear"
        seen.add(eq)
        uses = named_uses.get(eq, [])
        if not uses:
            return "linear"
        node, eq = uses[0]


def _summed_product(par: OpNode, eq: str, param: Basic, parent_of: dict) -> tuple[OpNode, tuple[int, ...]] | None:
    """``sum(w ⊙ A, axis=0)`` with w[h, 1]: an elementwise product summed along an axis where the param
    varies is a matrix product written out (a readout), so the param is a weight. The reduction and
    the param's axes it sums, if so."""
    if par.op.name != "mul":
        return None
    up = parent_of.get((id(par), eq))
    while up is not None and up.op.name in ADDITIVE | {"neg"}:
        up = parent_of.get((id(up), eq))
    if up is None or up.op.name not in ("sum", "mean"):
        return None
    shape = ir.shape_of(param)  # a scalar param (1×1) stretches over a value of any rank
    summed = tuple(ax for ax in axes_of(up) if ax < len(shape) and shape[ax] != 1)
    return (up, summed) if summed else None


def _gain_use(parent: OpNode, i: int, param: Basic, given: set[Basic]) -> bool:
    """``g ⊙ U``: an elementwise product that stretches ``param`` over a value computed in the network
    (not over an input or another param: ``w x`` is a weight)."""
    if parent.op.name != "mul" or ir.shape_of(param) == ir.shape_of(parent):
        return False
    other = parent.children[1 - i]
    return not ir.is_scalar(other) and not (isinstance(other, MatrixSymbol) and other in given)


def init_schemes(d: Shown) -> dict[str, Init]:
    """Param name -> how to initialize it (see the module docstring)."""
    nodes = _parents(d)
    # Indexed once, so a deep network is not scanned once per param (time linear in depth).
    parent_of = {(id(n), q): par for n, par, _, q in nodes}
    uses_of: dict[Basic, list] = {}
    named_uses: dict[str, list] = {}
    for n, par, i, eq in nodes:
        if par is not None:
            uses_of.setdefault(n, []).append((par, i, eq, n))
            if isinstance(n, MatrixSymbol):
                named_uses.setdefault(n.name, []).append((n, eq))
    out: dict[str, Init] = {}
    given = {x.symbol for x in d.model.decls.values()}
    for p in d.model.params:
        shape = p.shape
        uses = uses_of.get(p.symbol, [])
        products = [(par, i, eq) for par, i, eq, _ in uses if par.op.contracts is not None]
        onehot = {x.name for x in d.model.inputs if x.domain == "onehot"}
        readouts = [(r, eq) for par, _, eq, _ in uses if (r := _summed_product(par, eq, p.symbol, parent_of))]
        # only ever looked up by a one-hot input (a table also used as E.T, tied to the output, is a weight)
        if uses and all(par.op.name == "gather" and i == 0 for par, i, _, _ in uses):  # take(E, x, axis=k)
            out[p.name] = Init("embedding", reason="embedding table: each index looks up one slice")
        elif products and len(products) == len(uses) and all(
                isinstance(c, MatrixSymbol) and c.name in onehot
                for par, i, _ in products for j, c in enumerate(par.children) if j != i):
            out[p.name] = Init("embedding", reason="embedding table: a one-hot input picks one column")
        elif products:
            par, i, eq = products[0]
            inner = par.op.contracts(par, i)
            fan_in = sympy.Mul(*(d for ax, d in enumerate(shape) if ax in inner))
            fan_out = sympy.Mul(*(d for ax, d in enumerate(shape) if ax not in inner))
            act = _consumer(par, eq, parent_of, named_uses)
            scheme = "he" if act in HE else "glorot"
            where = f"feeds {act}" if act != "linear" else "no activation follows"
            out[p.name] = Init(scheme, fan_in, fan_out, where)
        elif readouts:
            (red, inner), eq = readouts[0]
            fan_in = sympy.Mul(*(d for ax, d in enumerate(shape) if ax in inner))
            fan_out = sympy.Mul(*(d for ax, d in enumerate(shape) if ax not in inner))
            act = _consumer(red, eq, parent_of, named_uses)
            where = f"summed product, feeds {act}" if act != "linear" else "summed product, no activation follows"
            out[p.name] = Init("he" if act in HE else "glorot", fan_in, fan_out, where)
        elif uses and all(par.op.name in ADDITIVE for par, _, _, _ in uses):
            out[p.name] = Init("zeros", reason="bias")
        elif uses and all(_gain_use(par, i, p.symbol, given) for par, i, _, _ in uses):
            out[p.name] = Init("ones", reason="gain: scales a computed value, starts at 1")
        elif uses and all(par.op.name == "leaky_relu" and i == 1 for par, i, _, _ in uses):
            out[p.name] = Init("slope", reason="leaky-ReLU slope")
        else:  # a matrix's fan-in is its columns; a tensor's, every axis after the first
            out[p.name] = Init("glorot", sympy.Mul(*shape[1:]), shape[0], "elementwise factor, on its own shape")
    return out
