"""Expressions: shaped SymPy nodes, the operation registry, printers and evaluation.

The stage imports one way: :mod:`~backprop.expr.ir` (the nodes) at the bottom;
:mod:`~backprop.expr.ops_row` (what a row holds) and the ``ops_*`` families above it;
:mod:`~backprop.expr.ops` (the table) above those; :mod:`~backprop.expr.printing` and
:mod:`~backprop.expr.evaluate` on top. The one thing the nodes need from above -- a node reads
as its Unicode text in ``str()`` and ``repr()`` -- is handed down here, once, when the stage is
imported (Python imports this package before any of its modules).
"""

from __future__ import annotations

from backprop.expr.ir import show_nodes_with
from backprop.expr.printing import text

show_nodes_with(text)
