"""Course-notes notation for names: W1 -> W₁ (``W_{1}``), yhat -> ŷ, lam -> λ."""

from __future__ import annotations

import re

GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eps": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lam": "λ",
    "lambda_": "λ", "lmbda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "chi": "χ", "psi": "ψ",
    "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
_GREEK_TEX = {k: "\\" + (
    {"lam": "lambda", "lambda_": "lambda", "lmbda": "lambda", "eps": "epsilon"}.get(k, k)
) for k in GREEK}
LOSS_NAMES = frozenset({"loss", "L", "cost"})
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SPLIT = re.compile(r"^(?P<base>[A-Za-z]+?)(?P<hat>_?hat)?(?:_?(?P<sub>\d+)|_(?P<word>\w+))?$")


def _parts(name: str) -> tuple[str, bool, str | None]:
    """Split a name into base, whether it wears a hat, and its subscript."""
    m = _SPLIT.match(name)
    if not m:
        return name, False, None
    base, hat = m.group("base"), bool(m.group("hat"))
    sub = m.group("sub") or m.group("word")
    if base in ("hat",):
        return name, False, None
    return base, hat, sub


def latex_name(name: str) -> str:
    if name in LOSS_NAMES:
        return r"\mathcal{L}"
    base, hat, sub = _parts(name)
    if base in _GREEK_TEX:
        body = _GREEK_TEX[base]
    elif len(base) == 1:
        body = base
    else:
        body = r"\mathrm{" + base.replace("_", r"\_") + "}"
    if hat:
        body = r"\hat{" + body + "}"
    if sub is not None:
        sub_tex = sub if sub.isdigit() else r"\mathrm{" + sub.replace("_", r"\_") + "}"
        body += "_{" + sub_tex + "}"
    return body


def text_name(name: str) -> str:
    if name in LOSS_NAMES:
        return "L"
    base, hat, sub = _parts(name)
    body = GREEK.get(base, base)
    if hat:
        body += "\u0302"
    if sub is not None:
        body += sub.translate(_SUB) if sub.isdigit() else "_" + sub
    return body
