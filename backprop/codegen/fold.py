"""Affine folds: a gain and a shift shared by every example, moved into the contractions that read them.

A layer norm's output ``N = g ⊙ N̂ + c`` (one gain and one shift per feature) is typically read
only by products with weights: ``Q = N Wq`` forward, ``∂L/∂Wq = Nᵀ ∂L/∂Q`` backward. Then ``N``
need never exist:

- forward, the gain goes into the weight and the shift becomes a bias, ``N W = N̂ (g ⊙ W) + c W``
  (scaling a d×k weight instead of a pass over every example's d features);
- backward, the gain comes out of the contraction over the examples,
  ``Nᵀ δ = g ⊙ (N̂ᵀ δ) + c ⊗ Σ δ``.

And a gradient ``∂L/∂N = Σᵢ δᵢ Wᵢᵀ`` read only by sums over the examples (``∂L/∂g = Σ ∂L/∂N ⊙ N̂``,
``∂L/∂c = Σ ∂L/∂N``) need not exist either: contracted in the other order,
``Σ (δ Wᵀ) ⊙ N̂ = Σ W ⊙ (N̂ᵀ δ)``, whose ``N̂ᵀ δ`` the weight's gradient already computes (common
subexpressions share it). That is how an expert writes a transformer block by hand
(``bench/transformer.py``); here it applies to any value of that form, of any rank, wherever its
examples axis is. A fold applies only where it removes the value from the program entirely:
where anything else reads it, the statements stay as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from sympy import Basic, srepr

from backprop.codegen.letters import Site, arrange, contract, einsum_of, factors, fresh, product, signed, signed_sum, site_of
from backprop.codegen.stmt import Stmt, reads, substitute
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_tensor import reshape
from backprop.expr.printing import text


def fold(stmts: list[Stmt], examples: Basic | None, roots: set[Basic]) -> list[Stmt]:
    """``stmts`` with every affine value folded into its contractions, then every gradient that only
    sums over the examples contracted first (see the module doc); ``examples`` is the dim that counts
    examples (None: nothing is folded)."""
    if examples is None:
        return stmts
    for s in [s for s in stmts if s.kind == "forward" and s.symbol not in roots]:
        stmts = _fold_affine(stmts, s, examples)
    for s in [s for s in stmts if s.kind == "backward" and s.symbol not in roots]:
        stmts = _sum_first(stmts, s, examples)
    return stmts


def _wide(x: Basic, examples: Basic) -> bool:
    """Whether ``x`` has an axis over the examples (its size grows with the batch)."""
    return any(d.has(examples) for d in shape_of(x))


# ---------------------------------------------------------------------------
# Reading the program
# ---------------------------------------------------------------------------


def _parents(stmts: Sequence[Stmt], skip: Basic) -> dict[Basic, set[Basic]]:
    """Each subexpression -> the nodes it is an operand of, over every statement but ``skip``'s."""
    parents: dict[Basic, set[Basic]] = defaultdict(set)
    seen: set[Basic] = set()
    for s in stmts:
        if s.symbol == skip:
            continue
        todo = [s.expr]
        while todo:
            x = todo.pop()
            if x in seen or not isinstance(x, OpNode):
                continue
            seen.add(x)
            for c in x.children:
                parents[c].add(x)
                todo.append(c)
    return parents


def _read_directly(stmts: Sequence[Stmt], value: Basic) -> bool:
    """Whether some statement is ``value`` itself (a copy), so no operation reads it."""
    return any(s.expr == value for s in stmts)


def _sites(stmts: Sequence[Stmt], value: Basic) -> list[tuple[Site, int]] | None:
    """Every contraction reading ``value`` and which operand it is, or None when something else reads it."""
    parents = _parents([x for x in stmts if value in reads(x.expr)], value)
    holders = set(parents.get(value, ()))
    if _read_directly(stmts, value):
        return None
    nodes = set()
    for h in list(holders):
        if isinstance(h, OpNode) and h.op.name in ("transpose", "permute"):
            nodes |= parents.get(h, set())
        else:
            nodes.add(h)
    out = []
    for node in sorted(nodes, key=srepr):
        site = site_of(node)
        if site is None:
            return None
        at = [k for k in (0, 1) if site.operands[k] == value]
        if len(at) != 1:  # N's other reads inside the other operand are sites of their own
            return None
        out.append((site, at[0]))
    if not out or any(h.op.name in ("transpose", "permute") and not parents.get(h) for h in holders):
        return None
    return out


def _rewrite(stmts: list[Stmt], table: dict[Basic, Basic], note: str, examples: Basic) -> list[Stmt]:
    out = []
    for s in stmts:
        expr = substitute(s.expr, table)
        if expr is not s.expr:
            s = replace(s, expr=_small_first(expr, examples), comment=s.comment + (note,))
        out.append(s)
    return out


def _small_first(e: Basic, examples: Basic) -> Basic:
    """A sum's terms shared by the examples added to each other before the examples-wide ones: a fold's
    new bias and the spec's own (``N W + b`` is ``N̂ (g ⊙ W) + (c W + b)``) cost one pass, not two."""
    terms = ir.signed_terms(e)
    small = [(sign, t) for sign, t in terms if not _wide(t, examples)]
    if len(small) < 2 or len(small) == len(terms):
        return e
    return signed_sum([x for x in terms if x not in small] + [(1, signed_sum(small))])



# ---------------------------------------------------------------------------
# N = g ⊙ N̂ + c read only by contractions: g and c move into them
# ---------------------------------------------------------------------------


def _fold_affine(stmts: list[Stmt], s: Stmt, examples: Basic) -> list[Stmt]:
    value, shape = s.symbol, shape_of(s.symbol)
    if not _wide(value, examples) or len(shape) < 2:
        return stmts
    terms = ir.signed_terms(s.expr)
    main = [(sign, t) for sign, t in terms if _wide(t, examples)]
    shifts = [(sign, t) for sign, t in terms if not _wide(t, examples)]
    if len(main) != 1 or any(len(shape_of(t)) != len(shape) for _, t in shifts):
        return stmts
    sign, nums, dens = factors(main[0][1])
    if not any(len(shape_of(f)) == len(shape) and not _wide(f, examples) for f in nums + dens):
        return stmts  # no factor shared by the examples: nothing to fold (found before reading the program)
    sites = _sites(stmts, value)
    if sites is None:
        return stmts
    modes = [_mode(site, at, examples) for site, at in sites]
    if None in modes:
        return stmts
    sign *= main[0][0]

    def gain(f: Basic) -> bool:
        fs = shape_of(f)
        return (len(fs) == len(shape) and not _wide(f, examples) and fs != shape
                and all(_fits(f, site.ins[at], site, at, mode) for (site, at), mode in zip(sites, modes)))

    g_nums, g_dens = [f for f in nums if gain(f)], [f for f in dens if gain(f)]
    rest = product([f for f in nums if f not in g_nums], [f for f in dens if f not in g_dens])
    if shape_of(rest) != shape or not (g_nums or g_dens):  # a bias alone: N = W X + b stays as it is
        return stmts
    g = product(g_nums, g_dens)
    c = signed_sum(shifts)
    if shifts and not all(_shift_fits(c, site.ins[at], site, at) for site, at in sites):
        return stmts
    table: dict[Basic, Basic] = {}
    for (site, at), mode in sorted(zip(sites, modes), key=lambda x: ir.count_nodes(x[0][0].node)):
        operands = list(site.operands)  # a site inside another's operand is rewritten there first
        operands[1 - at] = substitute(operands[1 - at], table)
        site = replace(site, operands=tuple(operands))
        table[site.node] = _folded(site, at, mode, rest, sign, g, c if shifts else None)
    note = f"{text(value)}'s gain and shift folded into the product: {text(value)} is never formed"
    return _rewrite(stmts, table, note, examples)


def _mode(site: Site, at: int, examples: Basic) -> str | None:
    """Where a factor shared by the examples goes: into the other operand when it is a weight (no
    examples axis), out of the product when the product has none (a weight's gradient)."""
    if not _wide(site.operands[1 - at], examples):
        return "into"
    if not _wide(site.node, examples):
        return "out"
    return None


def _vary(x: Basic, letters: str) -> set[str]:
    return {ch for ch, d in zip(letters, shape_of(x)) if d != 1}


def _fits(f: Basic, letters: str, site: Site, at: int, mode: str) -> bool:
    return _vary(f, letters) <= set(site.ins[1 - at] if mode == "into" else site.out)


def _shift_fits(c: Basic, letters: str, site: Site, at: int) -> bool:
    """A shift constant along an axis the product sums within it alone would be counted once per entry."""
    other = set(site.ins[1 - at]) | set(site.out)
    return all(ch in other for ch, d in zip(letters, shape_of(c)) if d == 1)


def _folded(site: Site, at: int, mode: str, rest: Basic, sign: int, g: Basic | None, c: Basic | None) -> Basic:
    """The contraction of ``sign · g ⊙ rest + c`` with the other operand, ``g`` and ``c`` outside ``rest``."""
    letters, w, wl = site.ins[at], site.operands[1 - at], site.ins[1 - at]
    if g is not None and mode == "into":
        w = ir.mul(w, arrange(g, letters, wl))
    ins = [letters, wl] if at == 0 else [wl, letters]
    ops = [rest, w] if at == 0 else [w, rest]
    product = einsum_of(ins, site.out, ops)
    if g is not None and mode == "out":
        product = ir.mul(arrange(g, letters, site.out), product)
    product = signed(sign, product)
    if c is None:
        return product
    w = site.operands[1 - at]
    new = fresh("".join(site.ins) + site.out)
    ones = {ch for ch, d in zip(letters, shape_of(c)) if d == 1}
    c_letters = "".join(next(new) if ch in ones else ch for ch in letters)
    rename = {ch: new for ch, new in zip(letters, c_letters) if ch != new}
    out = "".join(rename[ch] if ch in rename and ch not in wl else ch for ch in site.out)
    ins = [c_letters, wl] if at == 0 else [wl, c_letters]
    ops = [c, w] if at == 0 else [w, c]
    return ir.add(product, contract(ins, out, ops))


# ---------------------------------------------------------------------------
# ∂L/∂N = Σᵢ δᵢ Wᵢᵀ read only by sums over the examples: contracted in the other order
# ---------------------------------------------------------------------------


def _sum_first(stmts: list[Stmt], s: Stmt, examples: Basic) -> list[Stmt]:
    value, shape = s.symbol, shape_of(s.symbol)
    if not _wide(value, examples) or _read_directly(stmts, value):
        return stmts
    terms = []
    for sign, t in ir.signed_terms(s.expr):
        site = site_of(t)
        if site is None or site.out == "" or len(site.out) != len(shape):
            return stmts
        wide = [k for k in (0, 1) if _wide(site.operands[k], examples)]
        if len(wide) != 1:
            return stmts
        terms.append((sign, site, wide[0]))
    axis = next(ax for ax, d in enumerate(shape) if d.has(examples))
    table: dict[Basic, Basic] = {}
    with_factor = 0
    for node in _sums_reading([x for x in stmts if value in reads(x.expr)], value):
        axes = tuple(int(a) for a in node.attrs[-1])
        sign, nums, dens = factors(node.children[0])
        if axis not in axes or nums.count(value) != 1 or any(
                value in reads(f) for f in dens + [f for f in nums if f != value]):
            continue
        nums = [f for f in nums if f != value]
        factor = [f for f in nums if not ir.is_scalar(f)], [f for f in dens if not ir.is_scalar(f)]
        if any(len(shape_of(f)) != len(shape) for f in factor[0] + factor[1]):
            continue
        e = product(*factor) if factor[0] or factor[1] else None
        with_factor += e is not None
        total = signed_sum([(sgn, _contracted_first(site, at, axes, e)) for sgn, site, at in terms])
        result = reshape(total, shape_of(node))
        scalars = [f for f in nums if ir.is_scalar(f)], [f for f in dens if ir.is_scalar(f)]
        if scalars[0] or scalars[1]:
            result = ir.mul(product(*scalars), result)
        table[node] = signed(sign, result)
    if not table or with_factor > 1:
        return stmts
    folded = _rewrite(stmts, table, f"{text(value)} summed over the examples in the other order: never formed", examples)
    if any(value in reads(x.expr) for x in folded if x.symbol != value):
        return stmts
    return folded


def _sums_reading(stmts: Sequence[Stmt], value: Basic) -> list[OpNode]:
    """The sum nodes whose operand reads ``value``."""
    found: dict[Basic, None] = {}
    for s in stmts:
        todo = [s.expr]
        while todo:
            x = todo.pop()
            if not isinstance(x, OpNode):
                continue
            if x.op.name == "sum" and value in reads(x.children[0]):
                found[x] = None
            todo.extend(x.children)
    return list(found)


def _contracted_first(site: Site, at: int, axes: tuple[int, ...], e: Basic | None) -> Basic:
    """Σ over ``axes`` of (the contraction ``site``) ⊙ ``e``: the examples-wide operand with ``e``
    first, then with the other operand."""
    a, al = site.operands[at], site.ins[at]
    w, wl = site.operands[1 - at], site.ins[1 - at]
    out = site.out
    kept = "".join(ch for ax, ch in enumerate(out) if ax not in axes)
    have = set(al) | (set(out) if e is not None else set())
    g = "".join(dict.fromkeys([ch for ch in wl if ch in have] + [ch for ch in kept if ch not in wl and ch in have]))
    if e is None:
        first = contract([al], g, [a])
    else:
        new = fresh("".join(site.ins) + out)
        el = "".join(ch if d != 1 else next(new) for ch, d in zip(out, shape_of(e)))
        first = contract([al, el], g, [a, e])
    return contract([wl, g], kept, [w, first])

