"""The spec language's comparisons and selections: ``A > B`` (a 0/1 mask), ``where(C, A, B)``,
``clip(E, lo, hi)``, the constant arrays ``eye(n)``, ``ones(r, c)``, ``zeros(r, c)``, and ``max``/``min``
written with two values.

Each reads its own arguments and says, as a compiler would, what is wrong with them: a chained or
an equality comparison, a condition that is not a mask, bounds in the wrong order, a size that is not
a dim. :class:`SelectCalls` is a mixin of :class:`~backprop.language.expression.ExprBuilder`; its
``call_<op>`` methods are found by name, as ``visit_<node>`` methods are.
"""

from __future__ import annotations

import ast
from collections.abc import Container, Mapping
from typing import TYPE_CHECKING, Any

import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ops_labels import onehot
from backprop.expr.ops_select import is_mask
from backprop.support.errors import ShapeError, SpecError

if TYPE_CHECKING:  # pragma: no cover
    _Base = Any
else:
    _Base = object

#: Python's comparison operators -> the registry's comparison rows.
COMPARISONS: dict[type, tuple[str, str]] = {
    ast.Gt: (">", "gt"), ast.GtE: (">=", "ge"), ast.Lt: ("<", "lt"), ast.LtE: ("<=", "le"),
}
_REFUSED = {ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


class SelectCalls(_Base):
    """``visit_Compare`` and ``call_<op name>(node)`` for selections and constant arrays."""

    #: names holding a 0/1 mask (assigned a comparison, or a binary input): where's condition may be one
    masks: Container[str] = frozenset()

    def visit_Compare(self, node: ast.Compare) -> Basic:  # noqa: N802
        if len(node.ops) != 1:
            raise self.fail(node, "chained comparisons are not supported: write a product of masks, "
                                  "(A < B) * (B < C)")
        op = node.ops[0]
        if type(op) not in COMPARISONS:
            sym = _REFUSED.get(type(op), "?")
            raise self.fail(node, f"'{sym}' is not supported: the comparisons are >, >=, <, <= "
                                  "(equality is the mask (A >= B) * (A <= B))")
        _, name = COMPARISONS[type(op)]
        left, right = self.visit(node.left), self.visit(node.comparators[0])
        try:
            return ir.node(name, left, right)
        except ShapeError as e:
            raise SpecError(f"shape mismatch: {e}", 0, self._operator_col(node)) from None

    def _operator_col(self, node: ast.Compare) -> int:
        """The column of a comparison's operator, where a binary operator's shape mismatch is reported."""
        raw = self.text.encode("utf-8")
        start, stop = node.left.end_col_offset or 0, node.comparators[0].col_offset
        gap = raw[start:stop].decode("utf-8", "ignore")
        return self.col0 + len(raw[:start].decode("utf-8", "ignore")) + len(gap) - len(gap.lstrip()) + 1

    def call_where(self, node: ast.Call) -> Basic:
        args = self._fixed_args(node, "where", 3, "(C, A, B)")
        c, a, b = (self.visit(x) for x in args)
        if not is_mask(c, self.masks):
            shown = ast.get_source_segment(self.text, args[0]) or "?"
            raise self.fail(args[0], f"where's condition must be a mask, 0 or 1 in every entry: a comparison "
                                     f"such as X > 0, a product of comparisons, 1 - a mask, a name assigned one "
                                     f"or a binary input; got {shown}")
        return self._shape_error(node, ir.node, "where", c, a, b)

    def call_clip(self, node: ast.Call) -> Basic:
        args = self._fixed_args(node, "clip", 3, "(E, lo, hi)")
        x, lo, hi = (self.visit(a) for a in args)
        if ir.is_const(lo) and ir.is_const(hi) and (lo - hi).is_positive:
            raise self.fail(node, f"clip's lower bound {lo} is above its upper bound {hi}: "
                                  "write clip(E, lo, hi) with lo <= hi")
        return self._shape_error(node, ir.node, "clip", x, lo, hi)

    def call_max(self, node: ast.Call) -> Basic:
        return self._extreme(node, "max", "maximum")

    def call_min(self, node: ast.Call) -> Basic:
        return self._extreme(node, "min", "minimum")

    def _extreme(self, node: ast.Call, name: str, elementwise: str) -> Basic:
        if len(node.args) == 2:
            raise self.fail(node, f"{name} takes one value, reduced over all entries or along axis=k: "
                                  f"{name}(E, axis=1); for the {'larger' if name == 'max' else 'smaller'} "
                                  f"of two values entry by entry write {elementwise}(A, B)")
        return self.registry_call(node, name)

    # --- integer labels ----------------------------------------------------------
    #: labels inputs -> their number of classes; ``None``: not known (a claim), not checked
    labels: Mapping[str, Basic] | None = None

    def _labels_arg(self, node: ast.expr, fname: str) -> tuple[Basic, Basic | None]:
        """The labels operand of onehot or take: a name declared labels(c), and its c."""
        value = self.visit(node)
        if self.labels is None:
            return value, None
        name = node.id if isinstance(node, ast.Name) else None
        if name not in self.labels:
            shown = ast.get_source_segment(self.text, node) or "?"
            raise self.fail(node, f"{fname} needs integer labels, an input declared labels(c) such as "
                                  f"'input y[1, m] labels(c)'; got {shown}")
        return value, self.labels[name]

    def call_onehot(self, node: ast.Call) -> Basic:
        axis = self._axis_keyword(node, "onehot")
        if len(node.args) not in (1, 2) or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, f"onehot takes the labels and the number of classes: onehot(y, c), got "
                                  f"{len(node.args)} arguments")
        y, declared = self._labels_arg(node.args[0], "onehot")
        if len(node.args) == 2:
            c = self._size(node.args[1], "the number of classes")
            if declared is not None and sympy.simplify(c - declared) != 0:
                name = ast.get_source_segment(self.text, node.args[0]) or "?"
                raise self.fail(node.args[1], f"'{name}' is declared labels({declared}): onehot({name}, {declared}), "
                                              f"not {c} classes")
        elif declared is None:
            raise self.fail(node, "onehot needs the number of classes: onehot(y, c)")
        else:
            c = declared
        rank = len(ir.shape_of(y))
        k = 0 if axis is None else self._axis_value(axis, rank)
        return self._shape_error(node, onehot, y, c, k)

    def call_gather(self, node: ast.Call) -> Basic:
        axis = self._axis_keyword(node, "take")
        if len(node.args) != 2 or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, f"take takes a table and indices: take(E, x, axis=1), got {len(node.args)} arguments")
        table = self.visit(node.args[0])
        idx, declared = self._labels_arg(node.args[1], "take")
        rank = len(ir.shape_of(table))
        if axis is None:
            raise self.fail(node, f"take needs the axis to look up along: take(E, x, axis={rank - 1})")
        k = self._axis_value(axis, rank)
        size = ir.shape_of(table)[k]
        if declared is not None and sympy.simplify(size - declared) != 0:
            name = ast.get_source_segment(self.text, node.args[1]) or "?"
            raise self.fail(node, f"'{name}' holds labels in 0..{declared}−1 (declared labels({declared})) but axis {k} "
                                  f"of the table has {size} entries: they must be the same dim")
        return self._shape_error(node, ir.node, "gather", table, idx, ir.axes_attr(k, rank))

    def _axis_keyword(self, node: ast.Call, fname: str) -> ast.expr | None:
        axis = None
        for kw in node.keywords:
            if kw.arg != "axis":
                what = f"'{kw.arg}='" if kw.arg else "'**'"
                raise self.fail(kw.value, f"{fname} takes no keyword argument {what}")
            axis = kw.value
        return axis

    def _axis_value(self, node: ast.expr, rank: int) -> int:
        v = node
        neg = isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.USub)
        inner = v.operand if neg else v  # type: ignore[union-attr]
        if not (isinstance(inner, ast.Constant) and type(inner.value) is int):
            raise self.fail(node, f"axis must be a whole number, got {ast.get_source_segment(self.text, node) or '?'}")
        k = -inner.value if neg else inner.value
        if not -rank <= k < rank:
            raise self.fail(node, f"axis {k} is out of range for a rank-{rank} value")
        return k % rank

    # --- constant arrays ---------------------------------------------------------
    def call_eye(self, node: ast.Call) -> Basic:
        (n,) = self._fixed_args(node, "eye", 1, "(n)")
        return ir.node("eye", self._size(n, "eye's size"))

    def call_ones(self, node: ast.Call) -> Basic:
        return self._fill(node, "ones")

    def call_zeros(self, node: ast.Call) -> Basic:
        return self._fill(node, "zeros")

    def _fill(self, node: ast.Call, name: str) -> Basic:
        self._no_keywords(node, name)
        if not node.args:
            raise self.fail(node, f"{name} takes the dims of its shape: {name}(rows, cols), e.g. {name}(m, 1)")
        dims = [self._size(a, "a dimension") for a in node.args]
        return ir.node(name, sympy.Tuple(*dims))

    def _size(self, node: ast.expr, what: str) -> Basic:
        value = self._whole(node, what)
        if not value.is_positive:
            shown = ast.get_source_segment(self.text, node) or "?"
            raise self.fail(node, f"{what} must be positive for every size, got {shown}")
        return value

    def _fixed_args(self, node: ast.Call, name: str, count: int, signature: str) -> list[ast.expr]:
        self._no_keywords(node, name)
        if len(node.args) != count or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, f"{name} takes {count} argument{'s' * (count > 1)}: {name}{signature}, "
                                  f"got {len(node.args)}")
        return list(node.args)
