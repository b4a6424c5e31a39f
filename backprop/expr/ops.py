"""The operation registry: every row, in one table, each with the node class generated for it.

A row (:class:`~backprop.expr.ops_row.Op`) holds all of an operation's forms; the rows live in
family modules grouped as the operations are (as in HIPS/autograd's ``numpy_vjps.py``):
:mod:`~backprop.expr.ops_arithmetic`, :mod:`~backprop.expr.ops_activations`,
:mod:`~backprop.expr.ops_matrix`, :mod:`~backprop.expr.ops_reduce`,
:mod:`~backprop.expr.ops_extrema`, :mod:`~backprop.expr.ops_softmax`, :mod:`~backprop.expr.ops_tensor`,
:mod:`~backprop.expr.ops_einsum`, :mod:`~backprop.expr.ops_select`, :mod:`~backprop.expr.ops_linalg`,
:mod:`~backprop.expr.ops_labels`, :mod:`~backprop.expr.ops_conv`, :mod:`~backprop.expr.ops_window`.
This module registers every family from one place, in that order (the order the generated code's helpers follow).

Adding an operation is one row in its family's ``ROWS`` plus one row in ``tests/test_ops.py``;
a new family is one more module and one more entry in :data:`FAMILIES`. The table sits above
the nodes (:mod:`backprop.expr.ir`), which never import it: it hands them their classes.
"""

from __future__ import annotations

from backprop.expr import (
    ir,
    ops_activations,
    ops_arithmetic,
    ops_cols,
    ops_conv,
    ops_einsum,
    ops_extrema,
    ops_labels,
    ops_linalg,
    ops_matrix,
    ops_reduce,
    ops_select,
    ops_softmax,
    ops_tensor,
    ops_window,
)
from backprop.expr.ir import OpNode
from backprop.expr.ops_row import Op

#: The families' rows, in registration order.
FAMILIES: tuple[tuple[Op, ...], ...] = (
    ops_arithmetic.ROWS,
    ops_activations.ROWS,
    ops_matrix.ROWS,
    ops_reduce.ROWS,
    ops_extrema.ROWS,
    ops_softmax.ROWS,
    ops_tensor.ROWS,
    ops_einsum.ROWS,
    ops_select.ROWS,
    ops_linalg.ROWS,
    ops_labels.ROWS,
    ops_conv.ROWS,
    ops_window.ROWS,
    ops_cols.ROWS,
)


def _node_class(op: Op) -> type[OpNode]:
    """The node class of ``op`` (``SigmoidOp`` ...): an :class:`~backprop.expr.ir.OpNode` carrying the row."""
    return type(op.name.title().replace("_", "") + "Op", (OpNode,), {"op": op})


#: operation name -> op
REGISTRY: dict[str, Op] = {op.name: op for rows in FAMILIES for op in rows}
#: spec-language function name -> op
FUNCTIONS: dict[str, Op] = {op.spec_name: op for op in REGISTRY.values() if op.spec_name}
# The nodes sit below the registry: it hands them the class for each name (for ir.node).
ir.NODE_CLASSES.update({name: _node_class(op) for name, op in REGISTRY.items()})

#: Functions taking ``axis=``; the ones in ``AXIS_REQUIRED`` must be given it.
AXIS_FUNCTIONS = frozenset({"sum", "mean", "max", "min", "logsumexp", "softmax", "log_softmax", "concat"})
AXIS_REQUIRED = frozenset({"softmax", "log_softmax", "concat"})
