"""The derivation as JSON, for other tools: keys in a fixed, documented order (see the README).

Unlike the other formats it writes data, not notes: it reads the derivation itself and borrows only
the formulas and chain-rule terms of the layout.
"""

from __future__ import annotations

from backprop.engine.derivation import Derivation, Step
from backprop.engine.optim import get_optimizer
from backprop.engine.simplify import simplify
from backprop.expr.ir import Shape
from backprop.language.model import Decl
from backprop.present.formula import Formula, formula, name_formula
from backprop.present.index import gradient_index
from backprop.present.layout import chain_formula, chain_term, needed_steps, spec_summary
from backprop.present.working import working
from backprop.support.deepstack import deep_stack
from backprop.support.escape import json_text


def _fj(f: Formula) -> dict[str, str]:
    return {"latex": f.latex, "text": f.text}


def _shape_json(shape: Shape) -> list[str]:
    return [str(x) for x in shape]


@deep_stack
def to_json(d: Derivation, *, param: str | None = None, expanded: bool = False, index: bool = False,
            per_param_updates: bool = True, brief: bool = False, unroll: int = 0) -> str:
    """The derivation as JSON (keys in a fixed, documented order; see README). Data, not notes:
    ``updates`` always holds each param's equations and ``working`` each step's lines
    (``per_param_updates`` and ``brief`` are the notes' options)."""
    del unroll  # a derivation without loops has none to unroll
    steps = needed_steps(d, param)
    params = [param] if param else d.params
    domains = d.model.domains()
    m = d.model
    opt = get_optimizer(d.optimizer)

    def decl(x: Decl) -> dict[str, object]:
        return {"name": x.name, "shape": _shape_json(x.shape), "domain": x.domain, **_fj(name_formula(x.name))}

    def step(s: Step) -> dict[str, object]:
        chain = chain_formula(d, s)
        return {
            "target": s.target, "kind": s.kind, "shape": _shape_json(s.shape), "chain": _fj(chain),
            "paths": [{"via": p.via, "rules": list(p.rules), **_fj(formula(simplify(p.expr, domains)))} for p in s.paths],
            "working": [
                {"lhs": _fj(w.lhs) if w.lhs is not None else None, "rhs": _fj(w.rhs),
                 "rule": w.why.cites if w.why is not None else None, "why": w.why.text if w.why is not None else None}
                for w in working(d, s, lambda via, target: chain_term(d, via, target))
            ],
            "recursive": _fj(formula(s.recursive)), "result": _fj(formula(s.result)), "inlined": s.inlined,
        }

    def gradient(p: str) -> dict[str, object]:
        s = d.step(p)
        out: dict[str, object] = {"param": p, "shape": _shape_json(s.shape), **_fj(formula(s.result))}
        out["expanded"] = _fj(formula(d.expanded(p))) if expanded else None
        if index:
            eq = gradient_index(d, p)
            (ll, _), (tl, _), rhs = eq.latex(), eq.text(), eq.rhs_formula()  # with its words, as the notes say it
            out["index"] = {"lhs": {"latex": ll, "text": tl}, "rhs": {"latex": rhs.latex, "text": rhs.text}}
        else:
            out["index"] = None
        return out

    doc = {
        "spec": m.name,
        "summary": spec_summary(d),
        "dims": list(m.dims),
        "inputs": [decl(x) for x in m.inputs],
        "params": [decl(x) for x in m.params],
        "forward": [
            {"name": e.name, "shape": _shape_json(e.shape), **_fj(formula(e.expr)), "lifted": e.lifted}
            for e in d.equations
        ],
        "loss": d.loss.name,
        "steps": [step(s) for s in steps],
        "cuts": [{"via": c.via, "rule": c.rule, **_fj(formula(c.expr))} for c in d.cuts],
        "gradients": [gradient(p) for p in params],
        "optimizer": {
            "name": opt.name, "title": opt.title,
            "hyperparameters": [
                {"name": h.arg, **_fj(formula(h.symbol)), "default": h.default, "doc": h.doc} for h in opt.hypers
            ],
        },
        "updates": [
            {"param": p, "equations": [
                {"target": _fj(formula(u.target)), **_fj(formula(u.expr))} for u in d.updates(p)
            ]}
            for p in params
        ],
    }
    return json_text(doc) + "\n"

