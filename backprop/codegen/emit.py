"""``generate(spec) -> str``: a spec's NumPy forward/backward module, as source text.

It reads as the pipeline it runs: parse -> model -> derivation -> lower
(stable forms, live steps, common subexpressions, cache) -> print (the NumPy
printer, from the registry) -> template (``templates/module.py.j2``, the
scaffolding only) -> header (what generated it, how to regenerate it, and a
hash of the content that safe writes check). ``load_module`` runs it and then
imports the source (:mod:`backprop.codegen.loader`), so the loader itself only ever
sees source text and never reaches back here for the generator.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import sympy

from backprop.codegen.header import stamp
from backprop.codegen.init import Init, init_schemes
from backprop.codegen.loader import import_file, is_source, load_source
from backprop.codegen.lower import Program, lower
from backprop.codegen.step import step_section
from backprop.codegen.stmt import VIEWS
from backprop.codegen.templates import environment
from backprop.codegen.through_time import lower_time
from backprop.engine.derivation import Derivation
from backprop.engine.pipeline import backpropagate, get_model
from backprop.engine.through_time import TimeDerivation, derive_through_time
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.printing import grad_symbol
from backprop.language.domains import domain
from backprop.language.domains import parse as parse_domain
from backprop.language.model import Decl, Model
from backprop.support.bundled import examples_dir
from backprop.support.deepstack import deep_stack
from backprop.support.escape import py_str
from backprop.support.gcpause import without_cyclic_gc

WIDTH = 100
_INIT_EXAMPLE_SIZE = 8


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def derivation_of(spec: str | Model | Derivation | TimeDerivation) -> Derivation | TimeDerivation:
    """Parse (if needed) and backpropagate: the derivation the module is generated from (through
    time when the model has loops)."""
    if isinstance(spec, (Derivation, TimeDerivation)):
        return spec
    model = get_model(spec)
    return derive_through_time(model) if model.loops else backpropagate(model)


def spec_label(spec: str | Model | Derivation) -> str:
    """How the header names the spec: as given, or a bundled example by its name."""
    if isinstance(spec, str):
        return spec
    model = spec.model if isinstance(spec, (Derivation, TimeDerivation)) else spec
    try:
        if Path(model.path).resolve().parent == examples_dir().resolve():
            return model.name
    except OSError:  # pragma: no cover - unreadable path
        pass
    return model.path


@deep_stack
@without_cyclic_gc
def generate(
    spec: str | Model | Derivation, output: str | None = None, label: str | None = None, optimizer: str | None = None,
    backend: str = "numpy",
) -> str:
    """The generated module's source for ``spec`` (a path, a bundled example's name, a Model or a Derivation).

    ``output`` is the file the header tells users to regenerate into;
    ``label`` overrides how the header names the spec; ``optimizer`` (a name
    in :data:`backprop.engine.optim.OPTIMIZERS`) appends its ``init_state`` and ``step``;
    ``backend`` (one of :data:`~backprop.codegen.lower.BACKENDS`) is the array library the module computes with.
    """
    d = derivation_of(spec)
    if isinstance(d, TimeDerivation):
        program = lower_time(d, backend)
    else:
        program = lower(d, backend)
    body = render(program)
    if optimizer:
        body += step_section(optimizer, backend)
    name = label or spec_label(spec)
    flags = (f"--optimizer {optimizer}" if optimizer else "") + (f" --backend {backend}" if backend != "numpy" else "")
    return stamp(body, name, output or f"{d.model.name}.py", flags=flags)


def render(program: Program) -> str:
    """The module body (no header) from the template of its backend."""
    if program.backend == "jax":
        return environment().get_template("module_jax.py.j2").render(**jax_context(program))
    return environment().get_template("module.py.j2").render(**context(program))


def load_module(spec_or_source: str | Path | Model | Derivation | ModuleType, backend: str = "numpy") -> ModuleType:
    """The generated module for a spec (path, bundled name, Model or Derivation), for
    generated source text, or for a ``.py`` file; a module is returned as is."""
    if isinstance(spec_or_source, ModuleType):
        return spec_or_source
    if isinstance(spec_or_source, Path) or (isinstance(spec_or_source, str) and spec_or_source.endswith(".py")):
        return import_file(spec_or_source)
    if isinstance(spec_or_source, str) and is_source(spec_or_source):
        return load_source(spec_or_source)
    d = derivation_of(spec_or_source)
    return load_source(generate(d, backend=backend), d.model.name)


# ---------------------------------------------------------------------------
# Template context: every string the template pastes, printed here
# ---------------------------------------------------------------------------


def py_data(x: Any) -> str:
    """Module data (dicts, tuples, strings, ints, None) as Python source, deterministically."""
    if isinstance(x, dict):
        return "{" + ", ".join(f"{py_data(k)}: {py_data(v)}" for k, v in x.items()) + "}"
    if isinstance(x, tuple):
        inner = ", ".join(py_data(v) for v in x)
        return f"({inner},)" if len(x) == 1 else f"({inner})"
    if isinstance(x, str):
        return py_str(x)
    return repr(x)


def py_assign(name: str, value: Any) -> str:
    """``NAME = data`` on one line when it fits, else a dict with one entry per line."""
    one = f"{name} = {py_data(value)}"
    if len(one) <= WIDTH or not isinstance(value, dict):
        return one
    return f"{name} = {{\n" + "".join(f"    {py_data(k)}: {py_data(v)},\n" for k, v in value.items()) + "}"


def wrap(head: str, items: list[str], tail: str, indent: int) -> str:
    """``head + items + tail`` on one line when it fits, else one item per line."""
    one = head + ", ".join(items) + tail
    if indent + len(one) <= WIDTH or not items:
        return one
    pad = " " * (indent + 4)
    return head + "\n" + "".join(f"{pad}{it},\n" for it in items) + " " * indent + tail


def _classes_code(text: str, names: Any) -> str:
    """The number of classes of ``labels(c)`` as the forward pass has it: a number, or the dim's
    variable (lowering counts the dim among those forward reads)."""
    arg = parse_domain(text)[1] or "0"
    return arg if arg.isdigit() else names.dim(arg)


def shape_data(decl: Decl) -> tuple:
    """A declared shape as module data: dims by name, fixed sizes as ints; () for a scalar."""
    if decl.scalar:
        return ()
    return tuple(int(d) if d.is_Integer else str(d) for d in decl.shape)


def _about(model: Model) -> str:
    """The spec's leading comment lines, joined: the module docstring's description (raw user
    text; the template escapes it)."""
    return " ".join(model.about()) or f"The network defined in {model.path}."


def _stmt_view(program: Program, s: Any) -> dict[str, Any]:
    frees = ", ".join(program.name(x) for x in program.frees.get(s.symbol, ()))
    view = {"target": program.name(s.symbol), "code": program.value(s), "comment": s.comment, "frees": frees,
            "seed": "", "note": "", "steps": []}
    if s.symbol in program.inplace:
        seed, factors = program.inplace[s.symbol]
        view.update(seed=program.name(seed), steps=[("*", program.factor(f)) for f in factors])
    elif s.symbol in program.sums:
        seed, terms = program.sums[s.symbol]
        view.update(seed=program.code(seed), steps=[(sign, program.code(t)) for sign, t in terms])
    elif s.symbol in program.activations:
        view.update(code=program.activations[s.symbol])
        seed = s.expr.children[0]
    else:
        return view
    if not isinstance(seed, OpNode):
        view["note"] = f"computed in place: {program.name(seed)} is not needed again"
    return view


def _shape_code(program: Program, shape: tuple[sympy.Expr, sympy.Expr], scalar: bool) -> str:
    if scalar:
        return "()"
    return "(" + ", ".join(program.code(sympy.sympify(d)) for d in shape) + ")"


def _init_line(program: Program, name: str, init: Init) -> dict[str, str]:
    decl = program.model.decls[name]
    shape = _shape_code(program, decl.shape, decl.scalar)
    if init.scheme == "zeros":
        return {"name": name, "code": "0.0" if decl.scalar else f"np.zeros({shape}, dtype)", "note": ""}
    if init.scheme == "ones":
        return {"name": name, "code": "1.0" if decl.scalar else f"np.ones({shape}, dtype)", "note": init.reason}
    if init.scheme == "slope":
        code = "0.01" if decl.scalar else f"np.full({shape}, 0.01, dtype)"
        return {"name": name, "code": code, "note": init.reason}
    if init.scheme == "embedding":
        return {"name": name, "code": f"_normal(rng, {shape}, 1.0, dtype)", "note": init.reason}
    fan_in = program.code(sympy.sympify(init.fan_in))
    if init.scheme == "he":  # 2 / (3 * d), not 2 / 3 * d: a product of sizes is one divisor
        divisor = fan_in if re.fullmatch(r"\w+", fan_in) else f"({fan_in})"
        std, note = f"np.sqrt(2 / {divisor})", f"He: {init.reason}"
    else:
        fan_out = program.code(sympy.sympify(init.fan_out))
        std, note = f"np.sqrt(2 / ({fan_in} + {fan_out}))", f"Glorot: {init.reason}"
    return {"name": name, "code": f"_normal(rng, {shape}, {std}, dtype)", "note": note}


def _converted(program: Program) -> list[str]:
    """Params whose gradient, as backward computes it, may not be an array shaped like the param
    already: a scalar (given back as a float), a 1×1 (NumPy may give a 0-d value), a read-only
    view (broadcast), a bare name, or a different shape. loss_and_grads converts these; of the
    others it only checks the dtype.
    """
    by_symbol = {s.symbol: s.expr for s in program.backward}
    out = []
    for p in program.model.params:
        e = by_symbol.get(grad_symbol(p.name, p.shape))
        ready = (
            not p.scalar
            and not all(d == 1 for d in p.shape)
            and isinstance(e, OpNode)
            and e.op.name not in VIEWS
            and shape_of(e) == p.shape
        )
        if not ready:
            out.append(p.name)
    return out


def _finish(program: Program) -> list[str]:
    """loss_and_grads' lines that hand each gradient back like its param, cheapest test first.

    A call's overhead counts on small networks, so the usual case costs a type or dtype
    identity test per param, written out (no loop, no call); ``_like`` converts the rest: an
    array in another dtype (float32 params with float64 inputs), a 1×1 param, a view.
    """
    converted = set(_converted(program))
    lines = []
    for p in program.model.params:
        key, var = f"grads[{py_str(p.name)}]", program.names.var(p.name)
        like = f"{key} = _like({key}, {var})"
        if p.scalar:  # given as a Python float, its gradient is NumPy's float64 scalar
            lines += [f"if {var}.__class__ is float and {key}.__class__ is np.float64:",
                      f"    {key} = float({key})", "else:", f"    {like}"]
        elif p.name in converted:
            lines.append(like)
        else:  # an array shaped like the param: only its dtype may differ
            lines += [f"if {key}.dtype is not {var}.dtype:", f"    {like}"]
    return lines


def _init_dims(program: Program) -> list[str]:
    used: set[str] = set()
    for p in program.model.params:
        used |= {str(d) for d in p.shape if not d.is_Integer}
    return [d for d in program.model.dims if d in used]


def context(program: Program) -> dict[str, Any]:
    model = program.model
    names = program.names
    decls = program.decls
    args = [names.var(d.name) for d in decls]
    schemes = init_schemes(program.derivation)
    init_dims = _init_dims(program)
    init_example = py_data({d: _INIT_EXAMPLE_SIZE for d in init_dims})
    assign = "dims = " if program.forward_dims else ""
    # the key _check_shapes stores accepted arguments under: every shape, then every dtype
    keys = [f'getattr({a}, "shape", {a}.__class__)' if d.scalar else f"{a}.shape" for a, d in zip(args, decls)]
    keys += [f'getattr({a}, "dtype", None)' if d.scalar else f"{a}.dtype" for a, d in zip(args, decls)]
    init_dims_line = (
        wrap("[", [names.dim(d) for d in init_dims], "]", 4)
        + " = " + ", ".join(["_init_dims(dims"] + [py_str(d) for d in init_dims]) + ")"
        if init_dims else "_init_dims(dims)"
    )
    grads = [f"{py_str(p.name)}: {names.grad(p.name)}" for p in model.params]
    loss_name = program.name(program.loss_symbol)
    loss = loss_name if program.loss_is_0d else f"_scalar({loss_name})"
    out = {
        "title": f"{model.name}: forward and backward pass in NumPy, generated by backprop.",
        "about": _about(model),
        "described": model.describe().splitlines()[1:],
        "layout": model.examples_phrase() + ("; every value below is a matrix or a scalar"
                                             if all(len(a.symbol.shape) <= 2 for a in model.assigns)
                                             and all(len(d.shape) <= 2 for d in decls) else ""),
        "init_example": init_example,
        "inputs_example": "{" + ", ".join(f"{py_str(d.name)}: {names.var(d.name)}" for d in model.inputs) + "}",
        "forward_args": ", ".join(args),
        "shapes": py_assign("SHAPES", {d.name: shape_data(d) for d in decls}),
        "params": py_assign("PARAMS", tuple(p.name for p in model.params)),
        "inputs": py_assign("INPUTS", tuple(d.name for d in model.inputs)),
        "domains": py_assign("DOMAINS", {d.name: d.domain for d in model.inputs}),
        "labels": py_data(labels) if (labels := tuple(d.name for d in model.inputs if domain(d.domain).argument)) else "",
        "label_checks": [{"var": names.var(d.name), "name": d.name, "classes": _classes_code(d.domain, names)}
                         for d in model.inputs if domain(d.domain).argument],
        "examples": py_assign("EXAMPLES", model.examples_dim),
        "example_axes": py_assign("EXAMPLE_AXES", {d.name: axis for d in model.inputs
                                                   if (axis := model.examples_axis(d.name)) is not None}),
        "dims": py_assign("DIMS", tuple(model.dims)),
        "init": py_assign("INIT", {p: schemes[p].scheme for p in schemes}),
        "helpers": [h.rstrip("\n") for h in program.helpers],
        "dims_line": wrap(assign + "_check_shapes(", args, ")", 8),
        "accepted_line": wrap(assign + "_ACCEPTED[", keys, "]", 8),
        "n_params": len(model.params),
        "n_inputs": len(model.inputs),
        "forward_dims": [{"name": names.dim(d), "spec": d} for d in program.forward_dims],
        "forward": [_stmt_view(program, s) for s in program.forward],
        "cache_tuple": wrap("(", program.cache, ",)" if len(program.cache) == 1 else ")", 4 + len(f"return {loss}, ")),
        "cache_names": py_assign("_CACHE", tuple(program.cache)),
        "loss": loss,
        "backward_def": wrap("def backward(", program.cache, "):", 0),
        "backward": [_stmt_view(program, s) for s in program.backward],
        "return_grads": wrap("return {", grads, "}", 4),
        "param_reads": [f"{names.var(p.name)} = params[{py_str(p.name)}]" for p in model.params],
        "forward_call": wrap(f"{loss_name}, cache = _forward(", [
            names.var(d.name) if d.kind == "param" else f"inputs[{py_str(d.name)}]" for d in decls
        ], ")", 8),
        "loss_name": loss_name,
        "finish": _finish(program),
        "init_lines": [_init_line(program, p.name, schemes[p.name]) for p in model.params],
        "init_dims_line": init_dims_line,
        "loops": bool(program.loop_views),
    }
    if program.loop_views:
        out.update(forward=program.loop_views[0], backward=program.loop_views[1],
                   backward_def=wrap("def backward(", [*program.cache, "truncate=None"], "):", 0))
    return out


def jax_context(program: Program) -> dict[str, Any]:
    """The JAX template's context: the NumPy module's, but for what a JAX module does otherwise."""
    model, names = program.model, program.names
    out = context(program)
    host = [f"{'params' if d.kind == 'param' else 'inputs'}[{py_str(d.name)}]" for d in program.decls]
    out.update(
        title=f"{model.name}: forward and backward pass in JAX, generated by backprop.",
        # every gradient through _like: under jax.jit a conversion that changes nothing costs nothing
        finish=[f"grads[{py_str(p.name)}] = _like(grads[{py_str(p.name)}], {names.var(p.name)})" for p in model.params],
        host_check_line=wrap("dims = _check_shapes(", host, ")", 8),
    )
    for check in out["label_checks"]:  # loss_and_grads checks labels before the compiled call, from dims
        arg = parse_domain(model.decls[check["name"]].domain)[1] or "0"
        check.update(value=f"inputs[{py_str(check['name'])}]", host_classes=arg if arg.isdigit() else f"dims[{py_str(arg)}]")
    return out
