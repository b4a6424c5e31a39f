"""A derivation through time as JSON, for other tools: the loop's step and its backward recursion at a
general t, keys in a fixed order (documented in the README beside the plain derivation's)."""

from __future__ import annotations

from typing import Any

from sympy import Basic

from backprop.engine.optim import get_optimizer
from backprop.engine.through_time import ThroughTime, TimeDerivation, seed_shown, shifted
from backprop.expr.ir import Shape, shape_of
from backprop.expr.ops_reduce import rowsum_by_word
from backprop.language.model import Decl
from backprop.present.formula import formula, name_formula
from backprop.present.layout import spec_summary
from backprop.present.through_time import shown
from backprop.support.deepstack import deep_stack
from backprop.support.escape import json_text


def _f(e: Basic) -> dict[str, str]:
    f = formula(e)
    return {"latex": f.latex, "text": f.text}


def _shape(shape: Shape) -> list[str]:
    return [str(x) for x in shape]


def _loop(td: TimeDerivation, tt: ThroughTime) -> dict[str, Any]:
    r, var = tt.loop, tt.loop.var
    return {
        "step": var, "length": str(r.length), "line": r.line,
        "sequences": [{"name": s.name, "state": s.is_state, "step_shape": _shape(shape_of(s.step)),
                       "shape": _shape(shape_of(s.stacked)), "time_axis": s.time_axis,
                       "first": _f(shown(td, s.init)) if s.init is not None else None} for s in r.sequences],
        "forward": [{"name": eq.name, "shape": _shape(eq.shape), **_f(eq.expr)} for eq in tt.equations],
        "backward": [{"target": d.target, "shape": _shape(d.shape), **_f(seed_shown(tt, d))} for d in tt.deltas],
        "carries": [{"state": name, **_f(e), "at_first_step": _f(shifted(e, var, 0, to=1))}
                    for name, e in tt.carries.items()],
        "shares": [{"name": name, "shape": _shape(shape_of(e)), **_f(e)} for name, e in tt.terms.items()],
        "per_step": [{"name": name, "shape": _shape(shape_of(e)), **_f(e)} for name, e in tt.slice_terms.items()],
    }


@deep_stack
def time_json(td: TimeDerivation, *, param: str | None = None, **options: object) -> str:
    """The derivation through time as JSON: data, not notes (the notes' options do not apply)."""
    del options
    m = td.model
    opt = get_optimizer(td.optimizer)
    params = [param] if param else td.params

    def decl(x: Decl) -> dict[str, object]:
        f = name_formula(x.name)
        return {"name": x.name, "shape": _shape(x.shape), "domain": x.domain, "latex": f.latex, "text": f.text}

    with rowsum_by_word():
        grads = {s.target: s for s in td.steps if s.kind == "param"}
        doc = {
            "spec": m.name,
            "summary": spec_summary(td),  # type: ignore[arg-type]
            "dims": list(m.dims),
            "inputs": [decl(x) for x in m.inputs],
            "params": [decl(x) for x in m.params],
            "forward": [{"name": e.name, "shape": _shape(e.shape), **_f(shown(td, e.expr))} for e in td.equations],
            "loops": [_loop(td, tt) for tt in td.loops],
            "loss": td.loss.name,
            "steps": [{"target": s.target, "kind": s.kind, "shape": _shape(s.shape), **_f(shown(td, s.result))}
                      for s in td.steps if s.kind != "param"],
            "gradients": [{"param": p, "shape": _shape(grads[p].shape), **_f(shown(td, grads[p].result))}
                          for p in params],
            "optimizer": {"name": opt.name, "title": opt.title},
        }
    return json_text(doc) + "\n"


__all__ = ["time_json"]
