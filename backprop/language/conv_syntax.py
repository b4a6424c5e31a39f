"""The spec language's convolution and pooling: ``conv2d(X, W, stride=2, padding=1)``,
``conv1d(X, W)``, ``max_pool2d(X, size=2)``, ``avg_pool2d(X, size=2, stride=1)``.

Each reads its operands and its keywords (whole numbers, written as such) and finds where the
input's examples axis is: last, as the language lays values out (``X[c, h, w, m]``), or first when
the spec's ``examples`` dim leads (``X[m, c, h, w]``, as PyTorch does). A window that does not fit
is refused here, at its column, with the stride or padding that would. :class:`ConvCalls` is a
mixin of :class:`~backprop.language.expression.ExprBuilder`; its ``call_<op>`` methods are found by
name, as ``visit_<node>`` methods are.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import fmt_shape, shape_of
from backprop.expr.ops_window import dilate

if TYPE_CHECKING:  # pragma: no cover
    _Base = Any
else:
    _Base = object


class ConvCalls(_Base):
    """``call_conv1d``, ``call_conv2d``, ``call_max_pool2d``, ``call_avg_pool2d``, ``call_dilate``."""

    #: the dim that counts examples, when the spec names one (``examples m``); else examples are last
    examples: str | None = None

    def call_conv1d(self, node: ast.Call) -> Basic:
        return self._conv(node, 1)

    def call_conv2d(self, node: ast.Call) -> Basic:
        return self._conv(node, 2)

    def call_max_pool2d(self, node: ast.Call) -> Basic:
        return self._pool(node, "max_pool2d")

    def call_avg_pool2d(self, node: ast.Call) -> Basic:
        return self._pool(node, "avg_pool2d")

    def call_dilate(self, node: ast.Call) -> Basic:
        """``dilate(dZ, 2)``: the spatial axes found as a convolution finds them (between the channels
        and the examples); ``dilate(E, 2, [1, 2])`` names them, for a value laid out otherwise."""
        for kw in node.keywords:
            what = f"'{kw.arg}='" if kw.arg else "'**'"
            raise self.fail(kw.value, f"dilate takes no keyword argument {what}: dilate(dZ, 2) or dilate(E, 2, [1, 2])")
        if len(node.args) not in (2, 3) or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, "dilate takes the value, the stride and optionally the axes: dilate(dZ, 2) or "
                                  f"dilate(E, 2, [1, 2]), got {len(node.args)} arguments")
        x = self.visit(node.args[0])
        shape, by = shape_of(x), node.args[1]
        if not (isinstance(by, ast.Constant) and type(by.value) is int and by.value >= 1):
            shown = ast.get_source_segment(self.text, by) or "?"
            raise self.fail(by, f"dilate's stride is a whole number at least 1 written as one, e.g. dilate(dZ, 2); got {shown}")
        if len(node.args) == 3:
            items = node.args[2]
            if not (isinstance(items, (ast.List, ast.Tuple))
                    and all(isinstance(i, ast.Constant) and type(i.value) is int for i in items.elts)):
                raise self.fail(items, "dilate's axes are a list of whole numbers, e.g. [1, 2]")
            axes = [i.value for i in items.elts]  # type: ignore[attr-defined]
            if not axes or len(set(axes)) != len(axes) or not all(0 <= k < len(shape) for k in axes):
                raise self.fail(items, f"dilate of a {fmt_shape(shape)} value (rank {len(shape)}) takes distinct axes "
                                       f"from 0 to {len(shape) - 1}, got [{', '.join(map(str, axes))}]")
        elif len(shape) < 3:
            raise self.fail(node, f"dilate of a {fmt_shape(shape)} value has no spatial axes between channels and "
                                  "examples: name the axes, e.g. dilate(E, 2, [1])")
        else:
            batch = self._examples_axis(shape)
            axes = list(range(2, len(shape))) if batch == 0 else list(range(1, len(shape) - 1))
        return self._shape_error(node, dilate, x, by.value, axes)

    def _conv(self, node: ast.Call, nd: int) -> Basic:
        name = f"conv{nd}d"
        if len(node.args) != 2 or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, f"{name} takes the input and the filters: {name}(X, W, stride=1, padding=0), "
                                  f"got {len(node.args)} arguments")
        given = self._keywords(node, name, {"stride": 1, "padding": 0})
        x, w = (self.visit(a) for a in node.args)
        if given["stride"] < 1:
            raise self.fail(node, f"{name}'s stride must be at least 1, got {given['stride']}")
        batch = self._batch(node.args[0], x, name, nd)
        return self._shape_error(node, ir.node, name, x, w, *(sympy.Integer(v) for v in
                                                               (given["stride"], given["padding"], batch)))

    def _pool(self, node: ast.Call, name: str) -> Basic:
        if len(node.args) != 1 or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, f"{name} takes one input: {name}(X, size=2), got {len(node.args)} arguments")
        given = self._keywords(node, name, {"size": None, "stride": None})
        if given["size"] is None:
            raise self.fail(node, f"{name} needs its window's size: {name}(X, size=2)")
        if given["size"] < 1 or (given["stride"] is not None and given["stride"] < 1):
            raise self.fail(node, f"{name}'s size and stride must be at least 1")
        stride = given["stride"] if given["stride"] is not None else given["size"]
        x = self.visit(node.args[0])
        batch = self._batch(node.args[0], x, name, 2)
        return self._shape_error(node, ir.node, name, x, *(sympy.Integer(v) for v in (given["size"], stride, batch)))

    def _keywords(self, node: ast.Call, name: str, allowed: dict[str, int | None]) -> dict[str, int | None]:
        given = dict(allowed)
        for kw in node.keywords:
            if kw.arg not in allowed:
                what = f"'{kw.arg}='" if kw.arg else "'**'"
                raise self.fail(kw.value, f"{name} takes no keyword argument {what}; it takes "
                                          f"{', '.join(k + '=' for k in allowed)}")
            v = kw.value
            if not (isinstance(v, ast.Constant) and type(v.value) is int and v.value >= 0):
                shown = ast.get_source_segment(self.text, v) or "?"
                raise self.fail(v, f"{name}'s {kw.arg} is a whole number written as one, e.g. {kw.arg}=2; got {shown}")
            given[kw.arg] = v.value
        return given

    def _batch(self, arg: ast.expr, x: Basic, name: str, nd: int) -> int:
        """The input's examples axis: first when the spec's examples dim leads it, else last."""
        shape = shape_of(x)
        if len(shape) != nd + 2:
            shown = ast.get_source_segment(self.text, arg) or "?"
            layout = f"[c, {', '.join(['h', 'w'][:nd] if nd == 2 else ['L'])}, m]"
            raise self.fail(arg, f"{name} takes an input of rank {nd + 2}, {layout} (or examples first); "
                                 f"{shown} is {fmt_shape(shape)}")
        return self._examples_axis(shape)

    def _examples_axis(self, shape: tuple[Basic, ...]) -> int:
        m = self.dims.get(self.examples) if self.examples else None
        return 0 if m is not None and shape[0] == m and shape[-1] != m else len(shape) - 1
