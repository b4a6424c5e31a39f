"""The spec language's tensor forms: ``einsum("fc,cm->fm", W, X)``, ``reshape(E, [c*h*w, m])``,
``transpose(E, [2, 0, 1])``, ``concat(A, B, axis=0)`` and subscripts ``X[0:3, :]``, ``H[:, t]``.

Each reads its own arguments from the syntax tree -- a subscript string, a list of dims, a list of
axes, slice bounds -- and nothing else: a list or string anywhere but in these positions stays an
error, and the dims and bounds are expressions of the spec's dims and whole numbers, checked by the
same builder as any expression. :class:`TensorCalls` is a mixin of
:class:`~backprop.language.expression.ExprBuilder`; its ``call_<op>`` methods are found by name,
as ``visit_<node>`` methods are.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import fmt_shape, shape_of
from backprop.expr.ops_einsum import einsum
from backprop.expr.ops_tensor import flip, permute, reshape, take
from backprop.support.errors import ShapeError

if TYPE_CHECKING:  # pragma: no cover
    _Base = Any
else:
    _Base = object


class TensorCalls(_Base):
    """``call_<op name>(node)`` for the tensor operations, and ``visit_Subscript``."""

    def _no_keywords(self, node: ast.Call, name: str) -> None:
        for kw in node.keywords:
            what = f"'{kw.arg}='" if kw.arg else "'**'"
            raise self.fail(kw.value, f"{name} takes no keyword argument {what}")

    def _shape_error(self, node: ast.AST, make: Any, *args: Any) -> Basic:
        try:
            return make(*args)
        except ShapeError as e:
            raise self.shape_fail(node, e) from None

    def _whole(self, node: ast.expr, what: str) -> Basic:
        """A dim expression: whole numbers and the spec's dims (``c*h*w``, ``n + k``, ``T - 1``)."""
        value = self.visit(node)
        if not ir.is_const(value) or not value.is_integer:
            shown = ast.get_source_segment(self.text, node) or "?"
            raise self.fail(node, f"{what} must be a whole number or an expression of dims, got {shown}")
        return sympy.expand(value)

    def _items(self, node: ast.expr, what: str, example: str) -> list[ast.expr]:
        if not isinstance(node, (ast.List, ast.Tuple)):
            shown = ast.get_source_segment(self.text, node) or "?"
            raise self.fail(node, f"{what} is a list in brackets, e.g. {example}; got {shown}")
        return node.elts

    # --- calls -----------------------------------------------------------------
    def call_einsum(self, node: ast.Call) -> Basic:
        self._no_keywords(node, "einsum")
        if len(node.args) < 2:
            raise self.fail(node, 'einsum takes subscripts and at least one operand: einsum("fc,cm->fm", W, X)')
        spec = node.args[0]
        if not (isinstance(spec, ast.Constant) and isinstance(spec.value, str)):
            raise self.fail(spec, 'einsum\'s first argument is its subscripts, a string such as "fc,cm->fm"')
        operands = [self.visit(a) for a in node.args[1:]]
        return self._shape_error(spec, einsum, spec.value, *operands)

    def call_reshape(self, node: ast.Call) -> Basic:
        self._no_keywords(node, "reshape")
        if len(node.args) != 2:
            raise self.fail(node, f"reshape takes 2 arguments: reshape(E, [d1, d2, ...]), got {len(node.args)}")
        x = self.visit(node.args[0])
        dims = [self._whole(d, "a dimension") for d in self._items(node.args[1], "reshape's shape", "[c*h*w, m]")]
        if not dims:
            raise self.fail(node.args[1], "reshape needs at least one dimension")
        bad = next((d for d in dims if not d.is_positive), None)
        if bad is not None:
            raise self.fail(node.args[1], f"dimension {bad} is not positive for every size")
        return self._shape_error(node, reshape, x, dims)

    def call_permute(self, node: ast.Call) -> Basic:
        self._no_keywords(node, "transpose")
        if len(node.args) not in (1, 2):
            raise self.fail(node, f"transpose takes 1 or 2 arguments: transpose(E, [2, 0, 1]), got {len(node.args)}")
        x = self.visit(node.args[0])
        rank = len(shape_of(x))
        if len(node.args) == 1:
            perm = list(reversed(range(rank)))
        else:
            items = self._items(node.args[1], "transpose's axes", "[2, 0, 1]")
            if not all(isinstance(i, ast.Constant) and type(i.value) is int for i in items):
                raise self.fail(node.args[1], "transpose's axes are whole numbers, e.g. [2, 0, 1]")
            perm = [i.value for i in items]  # type: ignore[attr-defined]
            if sorted(perm) != list(range(rank)):
                raise self.fail(node.args[1], f"transpose of a {fmt_shape(shape_of(x))} value (rank {rank}) needs each "
                                              f"axis 0 to {rank - 1} once, got [{', '.join(map(str, perm))}]")
        return self._shape_error(node, permute, x, perm)

    def call_flip(self, node: ast.Call) -> Basic:
        self._no_keywords(node, "flip")
        if len(node.args) != 2:
            raise self.fail(node, f"flip takes 2 arguments, the value and its axes: flip(W, [2, 3]), got {len(node.args)}")
        x = self.visit(node.args[0])
        rank = len(shape_of(x))
        items = self._items(node.args[1], "flip's axes", "[2, 3]")
        if not all(isinstance(i, ast.Constant) and type(i.value) is int for i in items):
            raise self.fail(node.args[1], "flip's axes are whole numbers, e.g. [2, 3]")
        axes = [i.value for i in items]  # type: ignore[attr-defined]
        if not axes or len(set(axes)) != len(axes) or not all(0 <= k < rank for k in axes):
            raise self.fail(node.args[1], f"flip of a {fmt_shape(shape_of(x))} value (rank {rank}) takes distinct axes "
                                          f"from 0 to {rank - 1}, got [{', '.join(map(str, axes))}]")
        return self._shape_error(node, flip, x, axes)

    def call_concat(self, node: ast.Call) -> Basic:
        if len(node.args) < 2:
            raise self.fail(node, "concat joins two or more values: concat(A, B, axis=0)")
        parts = [self.visit(a) for a in node.args]
        axis = self._check_axis(node, "concat", self._axis(node, "concat"), shape_of(parts[0]))
        return self._shape_error(node, lambda: ir.node("concat", *parts, ir.axes_attr(axis)))

    # --- subscripts ------------------------------------------------------------
    def visit_Subscript(self, node: ast.Subscript) -> Basic:  # noqa: N802
        x = self.visit(node.value)
        shape = shape_of(x)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if len(items) > len(shape):
            raise self.fail(node.slice, f"{len(items)} indices for a {fmt_shape(shape)} value (rank {len(shape)})")
        index = [self._index(item, size, axis) for axis, (item, size) in enumerate(zip(items, shape))]
        index += [(sympy.Integer(0), size) for size in shape[len(items):]]
        return self._shape_error(node.slice, take, x, index)

    def _index(self, item: ast.expr, size: Basic, axis: int) -> tuple[Basic, ...]:
        """(start, stop) of a slice, (i,) of one position; a negative number counts from the end."""
        def bound(b: ast.expr | None, default: Basic) -> Basic:
            if b is None:
                return default
            value = self._whole(b, "an index")
            return size + value if value.is_Integer and value < 0 else value

        if isinstance(item, ast.Slice):
            if item.step is not None:
                raise self.fail(item.step, "a slice takes no step: write start:stop")
            return bound(item.lower, sympy.Integer(0)), bound(item.upper, size)
        if isinstance(item, (ast.Starred, ast.Tuple, ast.List)) or (
                isinstance(item, ast.Constant) and item.value in (None, Ellipsis)):
            raise self.fail(item, "an index is a whole number, a dim expression or a slice a:b "
                                  f"(axis {axis} has length {size})")
        return (bound(item, sympy.Integer(0)),)

