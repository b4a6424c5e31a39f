"""Hand-derivation claims: correct forms are accepted, each classic mistake gets a diagnosis that names it.

For every bundled example a table of claims: several correct forms (recursive
with ``dOTHER``, closed, and equal-but-different-looking ones) and wrong ones,
one per kind of mistake, with the kind and the key phrases of the diagnosis.
"""

from __future__ import annotations

import functools
import json
from fractions import Fraction

import pytest
import sympy
from helpers import FLAT_EXAMPLES

import backprop
from backprop import NetworkBuilder
from backprop.language.parse import parse_spec
from backprop.verification.claims import ClaimSource, claim_sources
from backprop.verification.report import ClaimResult
from backprop.verification.verify import Verifier

# (claim, verdict, mistake kind or None, phrases the diagnosis must contain)
Row = tuple[str, bool, str | None, tuple[str, ...]]


def ok(claim: str) -> Row:
    return (claim, True, None, ())


def bad(claim: str, kind: str, *phrases: str) -> Row:
    return (claim, False, kind, phrases)


# CS230 examples: L = (1/m)‖ŷ − y‖². The published gradient formulas come first.
TABLES: dict[str, list[Row]] = {
    "univariate_regression": [
        ok("dw = 2/m * sum((yhat - y) * x)"),
        ok("db = 2/m * sum(yhat - y)"),
        ok("dyhat = 2 * (yhat - y) / m"),
        ok("dw = sum(dyhat * x)"),
        ok("dw = dyhat @ x.T"),
        ok("dw = 2/m * sum((w*x + b - y) * x)"),
        ok("db = 2 * mean(yhat - y)"),
        ok("db = dyhat @ ones(m, 1)"),
        bad("dw = 2 * sum((yhat - y) * x)", "factor", "m times too large", "a missing 1/m?"),
        bad("dw = 1/m * sum((yhat - y) * x)", "factor", "exactly 1/2 of the correct gradient", "missing factor 2"),
        bad("dw = 2/m * sum((y - yhat) * x)", "sign", "the negative of the correct gradient", "sign error"),
        bad("dw = 2/m * (yhat - y) * x", "sum", "wrong shape 1×m", "is 1×1", "sum over the examples",
            "sum(2/m * (yhat - y) * x)"),
        bad("dw = 2/m * sum(yhat - y)", "step", "uses ∂L/∂b where ∂L/∂w belongs"),
        bad("db = 2 * sum(yhat - y)", "factor", "m times too large"),
    ],
    "multivariate_regression": [
        ok("dw = 2/m * (yhat - y) @ X.T"),
        ok("db = 2/m * sum(yhat - y)"),
        ok("dw = dyhat @ X.T"),
        ok("dw = (X @ dyhat.T).T"),
        ok("db = sum(dyhat)"),
        bad("dw = X @ dyhat.T", "transpose", "wrong shape n×1", "is 1×n", "transpose of the correct gradient"),
        bad("dw = 2 * (yhat - y) @ X.T", "factor", "m times too large: a missing 1/m?"),
        bad("dw = 2/m * (yhat - y) @ X.T / n", "factor", "n times too small: an extra 1/n?"),
        bad("db = 2/m * (yhat - y)", "sum", "sum over the examples", "sum(2/m * (yhat - y))"),
        bad("dw = (yhat - y) @ X.T / m", "factor", "exactly 1/2"),
        bad("dw = 2/m * (y - yhat) @ X.T", "sign", "sign error"),
    ],
    "two_linear_layers": [
        ok("dW1 = (w2.T @ (2/m * (yhat - y))) @ X.T"),
        ok("db1 = sum(w2.T @ (2/m * (yhat - y)), axis=1)"),
        ok("dw2 = 2/m * (yhat - y) @ Z.T"),
        ok("db2 = 2/m * sum(yhat - y)"),
        ok("dZ = w2.T @ dyhat"),
        ok("dW1 = dZ @ X.T"),
        ok("db1 = dZ @ ones(m, 1)"),
        ok("dW1 = 2/m * w2.T @ (w2 @ (W1 @ X + b1) + b2 - y) @ X.T"),
        bad("dW1 = X @ dZ.T", "transpose", "wrong shape n×k", "is k×n", "transpose of the correct gradient"),
        bad("db1 = w2.T @ dyhat", "sum", "wrong shape k×m", "is k×1", "sum(w2.T @ dyhat, axis=1)"),
        bad("dW1 = dZ @ X.T / m", "factor", "m times too small"),
        bad("dw2 = 2/m * (yhat - y) @ X.T", "shape", "wrong shape 1×n", "∂L/∂w₂ is 1×k"),
        bad("dW1 = (w2.T @ (yhat - y)) @ X.T", "factor", "m/2 times the correct gradient: a missing 2/m?"),
    ],
    "two_layer_sigmoid": [
        ok("dW1 = ((w2.T @ (2/m * (yhat - y))) * A * (1 - A)) @ X.T"),
        ok("db1 = sum((w2.T @ (2/m * (yhat - y))) * A * (1 - A), axis=1)"),
        ok("dw2 = 2/m * (yhat - y) @ A.T"),
        ok("db2 = 2/m * sum(yhat - y)"),
        ok("dZ = dA * A * (1 - A)"),
        ok("dZ = dA * sigmoid(Z) * (1 - sigmoid(Z))"),
        ok("dZ = dA * exp(-Z) / (1 + exp(-Z))**2"),
        ok("dZ = dA * (A - A**2)"),
        ok("dW1 = dZ @ X.T"),
        ok("dW1 = (w2.T @ dyhat * A * (1-A)) @ X.T"),
        ok("db1 = sum(dZ, axis=1)"),
        ok("db1 = dZ @ ones(m, 1)"),
        ok("db1 = m * mean(dZ, axis=1)"),
        ok("dw2 = (A @ dyhat.T).T"),
        ok("dA = w2.T @ dyhat"),
        ok("dZ = (w2.T @ (2 * (w2 @ sigmoid(W1 @ X + b1) + b2 - y) / m)) * sigmoid(Z) * (1 - sigmoid(Z))"),
        bad("dW1 = (dA * A * (1 + A)) @ X.T", "step", "this would hold if σ′(Z) were A ⊙ (1 + A); it is A ⊙ (1 − A)"),
        bad("dW1 = ((w2.T @ (2/m * (yhat - y))) * A * (1 + A)) @ X.T", "step",
            "this would hold if σ′(Z) were A ⊙ (1 + A); it is A ⊙ (1 − A)"),
        bad("dW1 = (w2.T @ dyhat) @ X.T", "step", "the factor σ′(Z) = A ⊙ (1 − A) is missing"),
        bad("dW1 = dA @ X.T", "step", "σ′(Z) = A ⊙ (1 − A) is missing"),
        bad("dZ = dA * Z * (1 - Z)", "step", "were Z ⊙ (1 − Z)", "it is A ⊙ (1 − A)", "use A = σ(Z), not Z"),
        bad("db1 = dZ", "sum", "wrong shape k×m", "∂L/∂b₁ is k×1", "sum over the examples: sum(dZ, axis=1)"),
        bad("db1 = sum(dZ, axis=0)", "sum", "sums over the wrong axis", "axis=1"),
        bad("db1 = sum(dZ)", "shape", "wrong shape 1×1", "summed over the k rows"),
        bad("db1 = mean(dZ, axis=1)", "factor", "m times too small", "mean"),
        bad("dW1 = X @ dZ.T", "transpose", "wrong shape n×k", "transpose of the correct gradient"),
        bad("dw2 = 2 * (yhat - y) @ A.T", "factor", "m times too large: a missing 1/m?"),
        bad("dw2 = 1/m * (yhat - y) @ A.T", "factor", "exactly 1/2 of the correct gradient"),
        bad("dw2 = 2/m * (y - yhat) @ A.T", "sign", "the negative of the correct gradient: a sign error"),
        bad("db2 = mean(dyhat)", "factor", "m times too small"),
        bad("dw2 = dyhat @ Z.T", "step", "has Z where A belongs"),
        bad("dW1 = dZ @ X.T * 0", "zero", "it is zero"),
        bad("dW1 = dZ @ X.T + b1", "value", "the term + b₁ does not belong"),
        bad("dA = w2.T @ (yhat - y)", "factor", "m/2 times the correct gradient: a missing 2/m?"),
        bad("dZ = dA * sigmoid(Z) * (1 - A) * A", "step", "σ′(Z) were σ(Z) ⊙ (1 − A) ⊙ A; it is A ⊙ (1 − A)"),
        bad("dW1 = ((w2.T @ (yhat - y)) * A * (1 + A)) @ X.T", "step", "two mistakes in ∂L/∂Z",
            "is m/2 times ∂L/∂A: a missing 2/m?", "σ′(Z) were A ⊙ (1 + A)"),
        bad("dW1 = (dZ / (A - A)) @ X.T", "value", "not finite"),
    ],
    "sigmoid_neuron": [
        ok("da = 2/m * (a - y)"),
        ok("dz = da * a * (1 - a)"),
        ok("dz = 2/m * (a - y) * sigmoid(z) * (1 - sigmoid(z))"),
        ok("dw = dz @ x.T"),
        ok("db = sum(dz)"),
        ok("db = mean(2 * (a - y) * a * (1 - a))"),
        bad("dz = da * z * (1 - z)", "step", "σ′(z) were z ⊙ (1 − z)", "it is a ⊙ (1 − a)"),
        bad("dz = da", "step", "the factor σ′(z) = a ⊙ (1 − a) is missing"),
        bad("dw = (2/m * (a - y)) @ x.T", "step", "σ′(z) = a ⊙ (1 − a) is missing"),
        bad("db = dz", "sum", "sum over the examples: sum(dz)"),
        bad("da = 2 * (a - y)", "factor", "m times too large"),
        bad("dw = x @ dz.T", "transpose", "transpose of the correct gradient"),
    ],
    "logistic_regression": [
        ok("dz = (p - y)/m"),
        ok("dz = dp * p * (1 - p)"),
        ok("dw = (p - y) @ X.T / m"),
        ok("dw = dz @ X.T"),
        ok("db = sum(p - y)/m"),
        ok("db = mean(p - y)"),
        ok("dp = -(y/p - (1-y)/(1-p))/m"),
        ok("dp = (p - y) / (p * (1 - p)) / m"),
        bad("dp = -y/p/m", "paths", "matches the path through loss", "but misses the path through loss", "(1 − y)"),
        bad("dp = -(y/p + (1-y)/(1-p))/m", "paths", "has the wrong sign", "(1 − y)"),
        bad("dz = p - y", "factor", "m times too large: a missing 1/m?"),
        bad("dz = (y - p)/m", "sign", "sign error"),
        bad("dw = X @ dz.T", "transpose", "wrong shape n×1", "transpose"),
        bad("db = (p - y)/m", "sum", "sum over the examples"),
        bad("dz = dp * z * (1 - z)", "step", "σ′(z) were z ⊙ (1 − z)", "use p = σ(z), not z"),
    ],
    "mlp_softmax": [
        ok("dZ2 = (softmax(Z2, axis=0) - Y) / m"),
        ok("dW2 = dZ2 @ A1.T"),
        ok("db2 = sum(dZ2, axis=1)"),
        ok("dA1 = W2.T @ dZ2"),
        ok("dZ1 = (W2.T @ dZ2) * (Z1 > 0)"),
        ok("dZ1 = dA1 * (A1 > 0)"),
        ok("dW1 = dZ1 @ X.T"),
        ok("dW1 = ((W2.T @ ((softmax(Z2, axis=0) - Y) / m)) * (Z1 > 0)) @ X.T"),
        ok("db1 = dZ1 @ ones(m, 1)"),
        bad("dZ2 = softmax(Z2, axis=0) - Y", "factor", "m times too large"),
        bad("dZ2 = (Y - softmax(Z2, axis=0)) / m", "sign", "sign error"),
        bad("dW1 = dA1 @ X.T", "step", "the factor ReLU′(Z₁) = [Z₁ > 0] is missing"),
        bad("dZ1 = dA1 * A1", "step", "this would hold if ReLU′(Z₁) were A₁; it is [Z₁ > 0]"),
        bad("db2 = dZ2", "sum", "wrong shape 10×m", "sum(dZ2, axis=1)"),
        bad("dW2 = A1 @ dZ2.T", "transpose", "wrong shape h×10", "transpose of the correct gradient"),
    ],
    "deep_relu": [
        ok("dZ4 = (softmax(Z4, axis=0) - Y) / m"),
        ok("dW4 = dZ4 @ A3.T"),
        ok("dA3 = W4.T @ dZ4"),
        ok("dZ3 = dA3 * (Z3 > 0)"),
        ok("dZ3 = dA3 * (A3 > 0)"),
        ok("dA2 = W3.T @ dZ3"),
        ok("dW2 = dZ2 @ A1.T"),
        ok("db2 = sum(dZ2, axis=1)"),
        ok("dW1 = ((W2.T @ dZ2) * (Z1 > 0)) @ X.T"),
        ok("db1 = sum(dA1 * (Z1 > 0), axis=1)"),
        ok("db3 = dZ3 @ ones(m, 1)"),
        bad("dA2 = W3 @ dZ3", "step", "W₃ needs a transpose here", "W₃ᵀ ∂L/∂Z₃"),
        bad("dW2 = A1 @ dZ2.T", "transpose", "transpose of the correct gradient", "h×h"),
        bad("dW3 = dZ3 @ A3.T", "step", "has A₃ where A₂ belongs"),
        bad("dZ3 = dA3 * A3", "step", "ReLU′(Z₃) were A₃"),
        bad("dW1 = (W2.T @ dZ2) @ X.T", "step", "ReLU′(Z₁) = [Z₁ > 0] is missing"),
        bad("db4 = mean(dZ4, axis=1)", "factor", "m times too small"),
        bad("dZ4 = (softmax(Z4, axis=1) - Y) / m", "axis",
            "softmax_rows(Z₄) runs along axis 1; it should run along axis 0: softmax(Z₄)"),
        bad("db2 = sum(dZ2, axis=0)", "sum", "wrong axis"),
    ],
    # Tensor examples: examples as rows, einsum claims, permuted axes, 1/√d, kept axes.
    "mlp_rows": [
        ok("dW2 = A1.T @ (softmax(A1 @ W2 + b2, axis=1) - Y) / m"),
        ok("db2 = sum(softmax(A1 @ W2 + b2, axis=1) - Y, axis=0) / m"),
        ok("dA1 = (softmax(A1 @ W2 + b2, axis=1) - Y) @ W2.T / m"),
        ok("dW1 = X.T @ (dA1 * (A1 > 0))"),
        ok("db1 = sum(dA1 * (A1 > 0), axis=0)"),
        ok("db1 = ones(1, m) @ (dA1 * (A1 > 0))"),
        bad("dW2 = (softmax(A1 @ W2 + b2, axis=1) - Y).T @ A1 / m", "transpose", "wrong shape c×h",
            "transpose of the correct gradient"),
        bad("db2 = (softmax(A1 @ W2 + b2, axis=1) - Y) / m", "sum", "wrong shape m×c", "sum over the examples",
            "axis=0)"),
        bad("db1 = sum(dA1 * (A1 > 0), axis=1)", "sum", "wrong axis", "axis=0 sums over the examples"),
        bad("dW1 = X.T @ dA1", "step", "the factor ReLU′(Z₁) = [Z₁ > 0] is missing"),
        bad("dW1 = X.T @ (dA1 * A1)", "step", "ReLU′(Z₁) were A₁"),
        bad("dW2 = A1.T @ (softmax(A1 @ W2 + b2, axis=1) - Y)", "factor", "m times too large: a missing 1/m?"),
        bad("dW2 = A1.T @ (Y - softmax(A1 @ W2 + b2, axis=1)) / m", "sign", "sign error"),
        bad("dW2 = A1.T @ (softmax(A1 @ W2 + b2, axis=0) - Y) / m", "axis", "runs along axis 0; it should run along axis 1"),
    ],
    "self_attention": [
        ok("dH = (H - Y) / m"),
        ok("dV = einsum('dtm,tsm->dsm', dH, P)"),
        ok("dWv = einsum('esm,dsm->ed', dV, X)"),
        ok("dWv = einsum('etm,tsm,dsm->ed', (H - Y) / m, P, X)"),
        ok("dP = einsum('dtm,dsm->tsm', dH, V)"),
        ok("dQ = einsum('tsm,dsm->dtm', P * (dP - sum(dP * P, axis=1)), K) / sqrt(d)"),
        ok("dWq = einsum('etm,dtm->ed', dQ, X)"),
        ok("dK = einsum('tsm,dtm->dsm', P * (dP - sum(dP * P, axis=1)), Q) / sqrt(d)"),
        ok("dWk = einsum('esm,dsm->ed', dK, X)"),
        bad("dWv = einsum('esm,dsm->de', dV, X)", "transpose", "transpose of the correct gradient",
            "the shapes cannot tell"),
        bad("dQ = einsum('tsm,dsm->dtm', P * (dP - sum(dP * P, axis=1)), K)", "factor",
            "√d times too large: a missing 1/√d?"),
        bad("dQ = einsum('tsm,dsm->dtm', dP, K) / sqrt(d)", "step", "uses ∂L/∂P where ∂L/∂Z belongs"),
        bad("dQ = einsum('tsm,dsm->dtm', P * (dP - sum(dP * P, axis=0)), K) / sqrt(d)", "axis",
            "sum_(0)(∂L/∂P ⊙ P) runs along axis 0; it should run along axis 1"),
        bad("dWq = einsum('etm,dtm->ed', dK, X)", "step", "uses ∂L/∂K where ∂L/∂Q belongs"),
        bad("dV = einsum('dtm,tsm->dsm', dH, P) * m", "factor", "m times too large"),
        bad("dH = (Y - H) / m", "sign", "sign error"),
    ],
    "multihead_attention": [
        ok("dO = (O - Y) / m"),
        ok("dWo = einsum('dtm,hktm->dhk', dO, H)"),
        ok("dH = einsum('dhk,dtm->hktm', Wo, dO)"),
        ok("dV = einsum('hktm,htsm->hksm', dH, P)"),
        ok("dWv = einsum('hksm,dsm->hkd', dV, X)"),
        ok("dP = einsum('hktm,hksm->htsm', dH, V)"),
        ok("dQ = einsum('htsm,hksm->hktm', P * (dP - sum(dP * P, axis=2)), K) / sqrt(k)"),
        ok("dWq = einsum('hktm,dtm->hkd', dQ, X)"),
        ok("dK = einsum('htsm,hktm->hksm', P * (dP - sum(dP * P, axis=2)), Q) / sqrt(k)"),
        ok("dWk = einsum('hksm,dsm->hkd', dK, X)"),
        bad("dWo = einsum('dtm,hktm->hkd', dO, H)", "transpose", "wrong shape a×k×d",
            "transpose(..., [2, 0, 1]) of it is the correct gradient"),
        bad("dWo = einsum('dtm,hktm->dhkm', dO, H)", "sum", "wrong shape d×a×k×m",
            "sum over the examples and drop the axis: reshape(sum(..., axis=3), [d, a, k])"),
        bad("dWo = sum(einsum('dtm,hktm->dhkm', dO, H), axis=3)", "shape",
            "its axis 3 has size 1 where the gradient has none: drop it with reshape(..., [d, a, k])"),
        bad("dQ = einsum('htsm,hksm->hktm', P * (dP - sum(dP * P, axis=2)), K)", "factor", "a missing 1/√k?"),
        bad("dQ = einsum('htsm,hksm->hktm', P * (dP - sum(dP * P, axis=2)), K) / sqrt(d)", "factor",
            "a 1/√d where 1/√k belongs?"),
        bad("dWq = einsum('hktm,dtm->hkd', dK, X)", "step", "uses ∂L/∂K where ∂L/∂Q belongs"),
        bad("dV = -einsum('hktm,htsm->hksm', dH, P)", "sign", "sign error"),
    ],
    "transformer_block": [  # batch first: X[m, T, d]
        ok("dO = 2 * (O - Y) / (d * T * m)"),
        ok("dO = (O - Y) * 2 / (m * d * T)"),
        ok("dW2 = einsum('mtf,mtd->fd', F, dO)"),
        ok("db2 = sum(dO, axis=(0, 1))"),
        ok("dF = einsum('mtd,fd->mtf', dO, W2)"),
        ok("dW1 = einsum('mtd,mtf->df', N2, dF * (F > 0))"),
        ok("db1 = sum(dF * (F > 0), axis=(0, 1))"),
        ok("dg2 = sum(dN2 * U2 / sqrt(mean(U2**2, axis=2) + 1e-5), axis=(0, 1))"),
        ok("dc2 = sum(dN2, axis=(0, 1))"),
        ok("dWo = einsum('mhts,mshk,mtd->hkd', P, V, dR)"),
        ok("dWv = einsum('msd,mshk->dhk', N1, dV)"),
        ok("dQ = einsum('mhts,mshk->mthk', P * (dP - sum(dP * P, axis=3)), K) / sqrt(k)"),
        ok("dWq = einsum('mtd,mthk->dhk', N1, dQ)"),
        ok("dWk = einsum('msd,mshk->dhk', N1, dK)"),
        ok("dc1 = sum(dN1, axis=(0, 1))"),
        ok("dg1 = sum(dN1 * U1 / sqrt(mean(U1**2, axis=2) + 1e-5), axis=(0, 1))"),
        bad("db2 = sum(dO, axis=0)", "sum", "wrong shape 1×T×d", "sum over the T entries of axis 1"),
        bad("db2 = reshape(sum(dO, axis=(0, 1)), [d])", "shape", "the entries are right, the axes are not",
            "reshape(..., [1, 1, d])"),
        bad("dW1 = einsum('mtd,mtf->df', N2, dF)", "step", "ReLU′(Z_F) = [Z_F > 0] is missing"),
        bad("dW1 = einsum('mtd,mtf->fd', N2, dF * (F > 0))", "transpose", "transpose of the correct gradient"),
        bad("dWq = einsum('mtd,mthk->hkd', N1, dQ)", "transpose", "wrong shape a×k×d",
            "transpose(..., [2, 0, 1]) of it is the correct gradient"),
        bad("dQ = einsum('mhts,mshk->mthk', P * (dP - sum(dP * P, axis=3)), K)", "factor", "a missing 1/√k?"),
        bad("dW2 = 2 * einsum('mtf,mtd->fd', F, dO)", "factor", "2 times the correct gradient"),
        bad("dO = (O - Y) / m", "factor", "a missing 2/(T·d)?"),
        bad("dg2 = sum(dN2 * U2, axis=(0, 1))", "value", "does not match ∂L/∂g₂"),
    ],
    "gated_concat": [
        ok("dHn = (Hn - Y) / m"),
        ok("dN = dHn * (1 - Z)"),
        ok("dR = dN * (1 - N**2) * (Un @ H + cn)"),
        ok("dWn = (dN * (1 - N**2)) @ X.T"),
        ok("dbn = sum(dN * (1 - N**2), axis=1)"),
        ok("dUn = (dN * (1 - N**2) * R) @ H.T"),
        ok("dcn = sum(dN * (1 - N**2) * R, axis=1)"),
        ok("dWz = (dHn * (H - N) * Z * (1 - Z)) @ X.T"),
        ok("dUz = (dHn * (H - N) * Z * (1 - Z)) @ H.T"),
        ok("dbz = sum(dHn * (H - N) * Z * (1 - Z), axis=1)"),
        ok("dWr = (dR * R * (1 - R)) @ X.T"),
        ok("dUr = (dR * R * (1 - R)) @ H.T"),
        ok("dbr = sum(dR * R * (1 - R), axis=1)"),
        bad("dWz = (dHn * (H - N)) @ X.T", "step", "the factor σ′(Z_Z) = Z ⊙ (1 − Z) is missing"),
        bad("dWn = (dN * N * (1 - N)) @ X.T", "step", "tanh′(Z_N) were N ⊙ (1 − N); it is 1 − N²"),
        bad("dWr = (dR * R * (1 - R)) @ H.T", "shape", "wrong shape k×k", "∂L/∂Wr is k×n"),
        bad("dbr = dR * R * (1 - R)", "sum", "sum over the examples"),
        bad("dHn = (Hn - Y)", "factor", "m times too large"),
        bad("dN = dHn * Z", "value", "does not match ∂L/∂N"),
    ],
    "embedding": [
        ok("dW = (softmax(W @ P + b, axis=0) - Y) @ P.T / m"),
        ok("db = sum(softmax(W @ P + b, axis=0) - Y, axis=1) / m"),
        ok("dP = W.T @ (softmax(W @ P + b, axis=0) - Y) / m"),
        ok("dE = einsum('dm,vtm->dv', dP, X) / T"),
        ok("dE = einsum('dtm,vtm->dv', dH, X)"),
        bad("dE = einsum('dm,vtm->dv', dP, X)", "factor", "T times too large: a missing 1/T?"),
        bad("dE = einsum('dm,vtm->vd', dP, X) / T", "transpose", "wrong shape V×d", "transpose of the correct gradient"),
        bad("dH = reshape(dP, [d, 1, m]) / T", "shape", "its entries are right, but the gradient repeats them",
            "T along axis 1"),
        bad("db = (softmax(W @ P + b, axis=0) - Y) / m", "sum", "sum over the examples"),
        bad("dW = (softmax(W @ P + b, axis=1) - Y) @ P.T / m", "axis", "softmax_rows(W P + b) runs along axis 1"),
    ],
    # S = A Aᵀ + εI is symmetric, so S⁻¹ and S⁻ᵀ agree here: both forms are right
    "gaussian_full_cov": [
        ok("dS = (inv(S).T - inv(S).T @ D @ D.T @ inv(S).T / m) / 2"),
        ok("dD = (inv(S) + inv(S).T) @ D / (2 * m)"),
        ok("dmu = -sum(dD, axis=1)"),
        bad("dmu = -dD", "sum", "sum over the examples"),
        bad("dS = (inv(S) + inv(S) @ D @ D.T @ inv(S) / m) / 2", "paths", "has the wrong sign"),
        ok("dmu = -sum(solve(S, D), axis=1) / m"),
        ok("dD = solve(S, D) / m"),
        ok("dS = inv(S) / 2 - solve(S, D) @ solve(S, D).T / (2 * m)"),
        ok("dA = (dS + dS.T) @ A"),
        ok("dA = 2 * dS @ A"),
        bad("dmu = -sum(solve(S, D), axis=1)", "factor", "m times too large"),
        bad("dA = dS @ A", "factor", "exactly 1/2 of the correct gradient"),
        bad("dS = inv(S) / 2", "paths", "misses the path through loss"),
        bad("dmu = sum(solve(S, D), axis=1) / m", "sign", "sign error"),
        bad("dA = (dS + dS.T) @ A.T", "transpose", "Aᵀ has a transpose too many: A belongs there"),
    ],
    # integer labels: claims write onehot(y, c) as the notes do; Z₁ = S − correct + 1 is written out
    "svm_hinge": [
        ok("dW = ((S - correct + 1 > 0) - onehot(y, c) * sum(S - correct + 1 > 0, axis=0)) @ X.T / m"),
        ok("db = sum((S - correct + 1 > 0) - onehot(y, c) * sum(S - correct + 1 > 0, axis=0), axis=1) / m"),
        bad("dW = (S - correct + 1 > 0) @ X.T / m", "value", "does not match ∂L/∂W = ∂L/∂S Xᵀ"),
        bad("db = sum((S - correct + 1 > 0) - onehot(y, c) * sum(S - correct + 1 > 0, axis=0), axis=1)",
            "factor", "m times too large"),
        bad("db = ((S - correct + 1 > 0) - onehot(y, c) * sum(S - correct + 1 > 0, axis=0)) / m", "sum",
            "sum over the examples"),
    ],
    "embedding_bag": [
        ok("dW = (softmax(W @ P + b, axis=0) - onehot(y, c)) @ P.T / m"),
        ok("db = sum(softmax(W @ P + b, axis=0) - onehot(y, c), axis=1) / m"),
        ok('dE = einsum("dm,vtm->dv", W.T @ (softmax(W @ P + b, axis=0) - onehot(y, c)), '
           'onehot(reshape(x, [1, T, m]), V)) / (m * T)'),
        bad('dE = einsum("dm,vtm->dv", W.T @ (softmax(W @ P + b, axis=0) - onehot(y, c)), '
            'onehot(reshape(x, [1, T, m]), V)) / m', "factor", "T times too large"),
        bad("dW = (softmax(W @ P + b, axis=0) - onehot(y, c)) @ P.T", "factor", "m times too large"),
        bad("db = (softmax(W @ P + b, axis=0) - onehot(y, c)) / m", "sum", "sum over the examples"),
        bad("dW = (onehot(y, c) - softmax(W @ P + b, axis=0)) @ P.T / m", "sign", "sign error"),
    ],
    "lenet": [
        ok("dW4 = (softmax(W4 @ A3 + b4, axis=0) - onehot(y, c)) @ A3.T / m"),
        ok("db4 = sum(softmax(W4 @ A3 + b4, axis=0) - onehot(y, c), axis=1) / m"),
        ok("dW3 = (dA3 * (A3 > 0)) @ H.T"),
        ok("dP2 = reshape(dH, [16, 4, 4, m])"),
        ok("db2 = sum(dA2 * (A2 > 0), axis=(1, 2, 3))"),
        # ∂L/∂W as a correlation of the input with δ: a convolution with channels and examples swapped
        ok("dW1 = transpose(conv2d(transpose(X, [3, 1, 2, 0]), transpose(dA1 * (A1 > 0), [0, 3, 1, 2])), [0, 3, 1, 2])"),
        ok("dW2 = transpose(conv2d(transpose(P1, [3, 1, 2, 0]), transpose(dA2 * (A2 > 0), [0, 3, 1, 2])), [0, 3, 1, 2])"),
        ok("db1 = sum(dA1 * (A1 > 0), axis=(1, 2, 3))"),
        # ∂L/∂X as the full convolution of δ with the filters flipped in space, channel axes swapped
        ok("dP1 = conv2d(dA2 * (A2 > 0), transpose(flip(W2, [2, 3]), [1, 0, 2, 3]), padding=4)"),
        bad("dP1 = conv2d(dilate(dA2 * (A2 > 0), 2), transpose(flip(W2, [2, 3]), [1, 0, 2, 3]), padding=4)", "stride",
            "δ is dilated by 2, but the convolution's stride is 1: δ needs no dilation"),
        bad("dP1 = conv2d(dA2 * (A2 > 0), transpose(W2, [1, 0, 2, 3]), padding=4)", "flip",
            "the filters are not flipped", "flip(W2, [2, 3])"),
        bad("dP1 = conv2d(dA2 * (A2 > 0), transpose(flip(W2, [2, 3]), [1, 0, 2, 3]), padding=2)", "padding",
            "wrong shape 6×8×8×m", "padding=4, not 2", "pads δ by k − 1 − p"),
        bad("dW2 = transpose(conv2d(transpose(P1, [3, 1, 2, 0]), transpose(dA2 * (A2 > 0), [0, 3, 1, 2]), padding=1), "
            "[0, 3, 1, 2])", "padding", "padding=0, not 1"),
        ok("db3 = sum(dA3 * (A3 > 0), axis=1)"),
        bad("dW4 = (softmax(W4 @ A3 + b4, axis=0) - onehot(y, c)) @ A3.T", "factor", "m times too large"),
        bad("db2 = sum(dA2 * (A2 > 0), axis=3)", "sum", "wrong shape 16×8×8×1", "∂L/∂b₂ is 16×1×1×1",
            "sum over the 8 entries of axis 1 and the 8 entries of axis 2: sum(dA2 * (A2 > 0), axis=(1, 2, 3))"),
        bad("db3 = dA3 * (A3 > 0)", "sum", "sum over the examples"),
        bad("dW4 = (onehot(y, c) - softmax(W4 @ A3 + b4, axis=0)) @ A3.T / m", "sign", "sign error"),
        bad("dW3 = H @ (dA3 * (A3 > 0)).T", "transpose", "transpose of the correct gradient"),
    ],
    "conv_stride_pad": [
        ok("dW2 = 2/m * (W2 @ H + b2 - Y) @ H.T"),
        ok("db1 = sum(dA * (A > 0), axis=(1, 2, 3))"),
        ok("dP = reshape(dH, [8, 2, 2, m])"),
        ok("db2 = 2/m * sum(W2 @ H + b2 - Y, axis=1)"),
        bad("dW2 = 1/m * (W2 @ H + b2 - Y) @ H.T", "factor", "exactly 1/2 of the correct gradient"),
        # the correlation of the input with δ: at stride 2 δ must first be dilated (1 zero between entries)
        ok("dW1 = transpose(conv2d(transpose(X, [3, 1, 2, 0]), transpose(dilate(dA * (A > 0), 2), [0, 3, 1, 2]), "
           "padding=1), [0, 3, 1, 2])"),
        bad("dW1 = transpose(conv2d(transpose(X, [3, 1, 2, 0]), transpose(dA * (A > 0), [0, 3, 1, 2]), padding=1), "
            "[0, 3, 1, 2])", "stride", "wrong shape 8×3×6×6", "∂L/∂W₁ is 8×3×3×3", "the stride is not accounted for",
            "dilate(δ, 2) (1 zero between neighbouring entries), before it is correlated with the input"),
        bad("db1 = sum(dA * (A > 0), axis=(1, 2))", "sum", "wrong shape 8×1×1×m",
            "sum over the examples: sum(dA * (A > 0), axis=(1, 2, 3))"),
        bad("db2 = 2/m * sum(Y - W2 @ H - b2, axis=1)", "sign", "sign error"),
    ],
    "conv1d_text": [
        ok("dU = (softmax(U @ F, axis=0) - onehot(y, c)) @ F.T / m"),
        ok("dF = U.T @ (softmax(U @ F, axis=0) - onehot(y, c)) / m"),
        ok("db = sum(dC * (C > 0), axis=(1, 2))"),
        ok("dW = transpose(conv1d(transpose(X, [2, 1, 0]), transpose(dC * (C > 0), [0, 2, 1]), padding=1), [0, 2, 1])"),
        ok('dE = einsum("dtm,vtm->dv", dX, onehot(reshape(x, [1, T, m]), V))'),
        bad("dU = (softmax(U @ F, axis=0) - onehot(y, c)) @ F.T", "factor", "m times too large"),
        bad("db = sum(dC * (C > 0), axis=1)", "sum", "wrong shape h×1×m",
            "sum over the examples: sum(dC * (C > 0), axis=(1, 2))"),
        bad("dU = (onehot(y, c) - softmax(U @ F, axis=0)) @ F.T / m", "sign", "sign error"),
    ],
    "maxout": [
        ok("dW2 = (softmax(W2 @ A1 + b2, axis=0) - Y) @ A1.T / m"),
        ok("db2 = sum(softmax(W2 @ A1 + b2, axis=0) - Y, axis=1) / m"),
        ok("dA1 = W2.T @ (softmax(W2 @ A1 + b2, axis=0) - Y) / m"),
        ok("dZ1 = reshape(dA1, [1, h, m]) * (Z1 >= max(Z1, axis=0)) / sum(Z1 >= max(Z1, axis=0), axis=0)"),
        ok('dW1 = einsum("khm,nm->khn", dZ1, X)'),
        ok("db1 = sum(dZ1, axis=2)"),
        bad("dZ1 = reshape(dA1, [1, h, m]) * (Z1 >= max(Z1, axis=0))", "tie", "wrong where values tie",
            "tied entries sharing evenly"),
        bad("db1 = dZ1", "sum", "sum over the examples: sum(dZ1, axis=2)"),
        bad("dW2 = (softmax(W2 @ A1 + b2, axis=0) - Y) @ A1.T", "factor", "m times too large"),
        bad('dW1 = einsum("khm,nm->hkn", dZ1, X)', "transpose", "transpose(..., [1, 0, 2])"),
        bad('dW1 = einsum("khm,nm->khn", reshape(dA1, [1, h, m]), X)', "shape", "summed over the 4 entries of axis 0"),
    ],
}

CASES = [(ex, *row) for ex, rows in TABLES.items() for row in rows]


@functools.cache
def verifier(example: str) -> Verifier:
    return Verifier(backprop.get_derivation(example))


def judge(example: str, claim: str):  # noqa: ANN201 - a ClaimResult
    v = verifier(example)
    return v.check(v.parse(ClaimSource(claim, "<claim 1>")))


def test_every_example_has_a_table() -> None:
    assert set(TABLES) == set(FLAT_EXAMPLES)  # a loop is refused at the loop (test_recurrence_syntax.py)


@pytest.mark.parametrize("example", sorted(TABLES))
def test_table_covers_params_and_mistakes(example: str) -> None:
    """Each table judges every param at least once and holds at least three kinds of mistake."""
    rows = TABLES[example]
    claimed = {c.split("=")[0].strip()[1:] for c, *_ in rows}
    assert {p.name for p in backprop.get_model(example).params} <= claimed
    assert len({kind for _, good, kind, _ in rows if not good}) >= 3


@pytest.mark.parametrize(("example", "claim", "verdict", "kind", "phrases"), CASES,
                         ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_claim(example: str, claim: str, verdict: bool, kind: str | None, phrases: tuple[str, ...]) -> None:
    r = judge(example, claim)
    assert r.verdict is verdict, r.diagnosis
    assert r.mistake == kind, r.diagnosis
    if verdict:
        assert r.diagnosis is None and r.error <= 1e-7
    else:
        for p in phrases:
            assert p in (r.diagnosis or ""), f"{p!r} not in {r.diagnosis!r}"
        assert "\n" not in (r.diagnosis or ""), "a diagnosis is one line"


# ---------------------------------------------------------------------------
# Matrix calculus: a missing transpose of an inverse is named (A is not symmetric, so it shows)
# ---------------------------------------------------------------------------

LINALG_SPECS = {
    "logdet": "param A[n, n]\nloss = logdet(A)\n",
    "inv": "input G[n, n]\nparam A[n, n]\nloss = sum(G * inv(A))\n",
    "solve": "input G[n, k]\ninput B[n, k]\nparam A[n, n]\nloss = sum(G * solve(A, B))\n",
    "det": "param A[n, n]\nloss = det(A)\n",
    "trace": "input B[n, n]\nparam A[n, n]\nloss = trace(A @ B)\n",
}
INVERSE = "an inverse's gradient carries A⁻ᵀ, not A⁻¹: ∂ log det(A)/∂A = A⁻ᵀ"


@pytest.mark.parametrize(("spec", "claim", "kind", "phrases"), [
    ("logdet", "dA = inv(A).T", None, ()),
    ("logdet", "dA = inv(A.T)", None, ()),
    ("logdet", "dA = inv(A)", "transpose", ("a transpose is missing", "transpose of the correct gradient", INVERSE)),
    ("inv", "dA = -inv(A).T @ G @ inv(A).T", None, ()),
    ("inv", "dA = -inv(A) @ G @ inv(A)", "transpose",
     ("A⁻¹ needs a transpose here (in 2 places): A⁻ᵀ belongs there", INVERSE, "∂L/∂A = −A⁻ᵀ G A⁻ᵀ")),
    ("inv", "dA = -inv(A).T @ G @ inv(A)", "transpose", ("A⁻¹ needs a transpose here (its 2nd occurrence)",)),
    ("inv", "dA = -inv(A) @ G @ inv(A).T", "transpose", ("A⁻¹ needs a transpose here (its 1st occurrence)",)),
    ("inv", "dA = -inv(A).T @ G.T @ inv(A).T", "transpose", ("Gᵀ has a transpose too many: G belongs there",)),
    ("solve", "dA = -solve(A.T, G) @ solve(A, B).T", None, ()),
    ("solve", "dA = -inv(A).T @ G @ B.T @ inv(A).T", None, ()),
    ("solve", "dA = -solve(A, G) @ solve(A, B).T", "step", ("A needs a transpose here (its 1st occurrence)",)),
    ("det", "dA = det(A) * inv(A).T", None, ()),
    ("det", "dA = det(A) * inv(A)", "transpose", ("a transpose is missing", INVERSE)),
    ("trace", "dA = B.T", None, ()),
    ("trace", "dA = B", "transpose", ("a transpose is missing: it is the transpose of the correct gradient",)),
])
def test_a_missing_transpose_of_an_inverse_is_named(spec: str, claim: str, kind: str | None,
                                                     phrases: tuple[str, ...]) -> None:
    report = backprop.verify(parse_spec(LINALG_SPECS[spec], name=spec), [claim])
    (r,) = report.results
    assert r.verdict is (kind is None), r.diagnosis
    assert r.mistake == kind, r.diagnosis
    for p in phrases:
        assert p in (r.diagnosis or ""), f"{p!r} not in {r.diagnosis!r}"


# ---------------------------------------------------------------------------
# A variable used on several paths: an L2 regularizer on W1
# ---------------------------------------------------------------------------


@functools.cache
def regularized() -> Verifier:
    net = NetworkBuilder("regularized")
    net.input("X", "n", "m").input("y", 1, "m").input("lam").param("W1", "k", "n").param("b1", "k", 1)
    net.param("w2", 1, "k").param("b2")
    net.assign("A", "sigmoid(W1 @ X + b1)").assign("yhat", "w2 @ A + b2")
    net.assign("loss", "sum((yhat - y)**2)/m + lam * sum(W1**2)")
    return Verifier(backprop.get_derivation(net.build()))


@pytest.mark.parametrize(("claim", "verdict", "phrases"), [
    ("dW1 = dZ @ X.T + 2*lam*W1", True, ()),
    ("dW1 = 2*lam*W1 + (dA * A * (1 - A)) @ X.T", True, ()),
    ("dW1 = dZ @ X.T", False, ("matches the path through Z but misses the path through loss", "λ", "W₁")),
    ("dW1 = 2*lam*W1", False, ("matches the path through loss but misses the path through Z",)),
    ("dW1 = dZ @ X.T - 2*lam*W1", False, ("the path through loss", "has the wrong sign")),
    ("dW1 = dZ @ X.T + lam*W1", False, ("the path through loss", "exactly 1/2 of its correct contribution")),
    ("dW1 = dZ @ X.T + 2*lam*W1/m", False, ("the path through loss", "m times too small")),
    ("dW1 = ((w2.T @ dyhat) * A * (1 + A)) @ X.T + 2*lam*W1", False, ("σ′(Z) were A ⊙ (1 + A)",)),
])
def test_several_paths(claim: str, verdict: bool, phrases: tuple[str, ...]) -> None:
    v = regularized()
    r = v.check(v.parse(ClaimSource(claim, "<claim 1>")))
    assert r.verdict is verdict, r.diagnosis
    for p in phrases:
        assert p in (r.diagnosis or ""), f"{p!r} not in {r.diagnosis!r}"


@functools.cache
def scaled_tensor() -> Verifier:
    """A scalar param scaling a rank-3 value: its gradient sums every entry."""
    spec = "input X[d, T, m]\ninput Y[d, T, m]\nparam s\nparam W[d, d]\nH = s * einsum('ed,dtm->etm', W, X)\n"
    return Verifier(backprop.get_derivation(parse_spec(spec + "loss = sum((H - Y) ** 2) / m")))


@pytest.mark.parametrize(("claim", "kind", "phrases"), [
    ("ds = dH * H / s", "sum", ("wrong shape d×T×m", "sum over all its entries: sum(dH * H / s)")),
    ("ds = 2 * dH * H / s", "sum", ("sum over all its entries (sum(2 * dH * H / s)), and then it is 2 times",)),
    ("ds = sum(dH * H / s, axis=(0, 1))", "sum", ("wrong shape 1×1×m", "sum over all its entries")),
])
def test_scalar_gradient_of_a_tensor_claim(claim: str, kind: str, phrases: tuple[str, ...]) -> None:
    v = scaled_tensor()
    r = v.check(v.parse(ClaimSource(claim, "<claim 1>")))
    assert not r.verdict and r.mistake == kind, r.diagnosis
    for p in phrases:
        assert p in (r.diagnosis or ""), f"{p!r} not in {r.diagnosis!r}"
    assert v.check(v.parse(ClaimSource("ds = sum(dH * H) / s", "<claim 1>"))).verdict


# ---------------------------------------------------------------------------
# Exact check, API, rendering
# ---------------------------------------------------------------------------


def test_exact_check_proves_correct_claims_for_every_value() -> None:
    r = judge("two_layer_sigmoid", "dZ = dA * exp(Z) / (1 + exp(Z))**2")
    assert r.verdict and r.exact_checked
    assert "proved equal at k=2, m=3, n=2" in r.exact_note and "every value" in r.exact_note


def test_exact_check_with_relu_uses_a_rational_point() -> None:
    r = judge("deep_relu", "dW1 = ((W2.T @ dZ2) * (Z1 > 0)) @ X.T")
    assert r.verdict and r.exact_checked and "rational point" in r.exact_note


def test_exact_check_is_skipped_when_too_large() -> None:
    r = judge("mlp_softmax", "dW2 = dZ2 @ A1.T")
    assert r.verdict and not r.exact_checked and "784" in r.exact_note


def test_exact_check_of_a_closed_form_with_exp_is_quick() -> None:
    """σ written with exp in a closed-form ∂L/∂W₁ took 84 s in sympy.cancel; exp(±z) as powers of one
    symbol and a budget on what goes to cancel make it a proof at a rational point in about a second."""
    r = judge("two_layer_sigmoid", "dW1 = ((w2.T @ (2/m * (yhat - y))) * exp(-(W1 @ X + b1)) "
                                   "/ (1 + exp(-(W1 @ X + b1)))**2) @ X.T")
    assert r.verdict and r.exact_checked and "at a rational point" in r.exact_note  # symbolic: over budget


def test_the_stated_tolerance_decides_whether_or_not_the_exact_check_runs() -> None:
    """Within the tolerance is correct on every spec alike (the exact check says it is not exact);
    --tol exact makes the exact check decide where it can run."""
    claim = "dW1 = dZ @ X.T + 1e-12 * W1"
    r = judge("two_layer_sigmoid", claim)
    assert r.error < 1e-7 and r.verdict and "not exactly equal" in r.exact_note and "--tol exact" in r.exact_note
    (r,) = backprop.verify("two_layer_sigmoid", [claim], tol="exact").results
    assert not r.verdict and r.exact_checked and "differs exactly" in (r.diagnosis or "")
    (r,) = backprop.verify("mlp_softmax", ["dW2 = dZ2 @ A1.T * (1 + 1e-12)"]).results  # no exact check: same verdict
    assert r.verdict and not r.exact_checked
    (r,) = backprop.verify("mlp_softmax", ["dW2 = dZ2 @ A1.T"], tol="exact").results
    assert r.verdict and "judged numerically, within 1e-07" in r.exact_note
    (r,) = backprop.verify("two_layer_sigmoid", ["dW1 = dZ @ X.T * 1.0000005"], tol=1e-5).results
    assert r.verdict
    (r,) = backprop.verify("two_layer_sigmoid", ["dW1 = dZ @ X.T * 1.00005"], tol=1e-6).results
    assert r.mistake == "near" and "not within the tolerance 1e-06" in (r.diagnosis or "")


@pytest.mark.parametrize("claim", ["dW1 = dZ @ X.T * 1.0000005", "dW1 = dZ @ X.T + 1e-6 * W1"])
def test_a_near_miss_is_named_as_one(claim: str) -> None:
    """Off by a relative 5e-7: not 'exactly 1 of the correct gradient: a missing factor 1?'."""
    r = judge("two_layer_sigmoid", claim)
    assert not r.verdict and r.mistake == "near", r.diagnosis
    assert r.diagnosis.startswith("agrees to ") and "not within the tolerance 1e-07: a stabilizing epsilon" in r.diagnosis


def test_verify_api_and_report() -> None:
    report = backprop.verify("two_layer_sigmoid", ["dW1 = dZ @ X.T", "db1 = dZ"])
    assert len(report) == 2 and not report.all_correct
    assert [r.verdict for r in report] == [True, False]
    assert report[1].name == "b1" and report[1].claim_text == "db1 = dZ"
    text = report.text()
    assert text.splitlines()[0] == "✓ dW1 = dZ @ X.T  correct"
    assert text.splitlines()[1].startswith("✗ db1 = dZ  wrong: wrong shape k×m")
    data = json.loads(report.to_json())
    assert data["all_correct"] is False and data["claims"][1]["error"] is None
    assert data["claims"][0]["exact_checked"] is True
    md = report._repr_markdown_()
    assert md.splitlines()[:2] == ["| claim | verdict | diagnosis |", "|:---|:---|:---|"]  # headed, left-aligned
    assert "| `dW1 = dZ @ X.T` | ✓ | correct |" in md
    html = report._repr_html_()
    assert "<table>" in html and "✗" in html and "sum(dZ, axis=1)" in html
    assert '<th style="text-align:left">verdict</th>' in html
    cells = html.count("<td") + html.count("<th")
    assert cells == 3 * (len(report) + 1) == html.count(' style="text-align:left"')


def test_verify_accepts_a_model_and_a_claims_text() -> None:
    model = backprop.get_model("sigmoid_neuron")
    report = backprop.verify(model, "# my answers\n\nda = 2/m * (a - y)\ndz = da * a * (1 - a)  # σ′\n")
    assert report.all_correct and len(report) == 2
    assert [r.line for r in report] == [3, 4]


def test_claim_sources_number_claims() -> None:
    assert [s.file for s in claim_sources(["dw = 1", "db = 1"])] == ["<claim 1>", "<claim 2>"]
    assert [(s.file, s.line) for s in claim_sources("dw = 1\n# c\n\ndb = 2\n")] == [("<claims>", 1), ("<claims>", 4)]


@pytest.mark.parametrize(("claim", "phrases"), [
    ("dW1 = X.T @ dZ", ("shape mismatch", "did you mean dZ @ X.T?")),
    ("dA = w2 @ dyhat", ("inner dimensions", "did you mean w2.T @ dyhat?")),
    ("dW1 = dZ * X.T", ("cannot broadcast k×m and m×n", "for a matrix product write @")),
])
def test_a_shape_slip_is_wrong_not_unusable(claim: str, phrases: tuple[str, ...]) -> None:
    """Well-formed answers whose shapes do not fit are marked wrong, the mismatch the diagnosis."""
    report = backprop.verify("two_layer_sigmoid", [claim, "dW1 = dZ @ X.T"])
    (r, ok) = report
    assert (r.status, r.mistake, ok.status, report.errors) == ("wrong", "shape", "correct", [])
    for p in phrases:
        assert p in (r.diagnosis or ""), r.diagnosis


@pytest.mark.parametrize(("claim", "hint"), [
    ("dW1 = X.T @ dZ", True),  # dZ @ X.T fits and is correct: suggested
    ("db1 = dZ @ ones(k, 1)", False),  # dZ.T @ ones(k, 1) fits but is wrong (ones(m, 1) is right): not suggested
    ("dW1 = (X.T @ dZ) / 2", False),  # the rearranged claim is still half the gradient
])
def test_a_suggested_rearrangement_is_checked_first(claim: str, hint: bool) -> None:
    (r,) = backprop.verify("two_layer_sigmoid", [claim])
    assert r.mistake == "shape" and r.diagnosis.startswith("shape mismatch: matrix product")
    assert ("did you mean" in r.diagnosis) is hint, r.diagnosis


def test_an_unusable_claim_stops_no_other() -> None:
    report = backprop.verify("two_layer_sigmoid", ["dW1 = dZ @ X.T", "dW1 = dZ @", "db1 = dZ", "dQ = 1"])
    assert [r.status for r in report] == ["correct", "unusable", "wrong", "unusable"]
    assert [(e.file, e.col) for e in report.errors] == [("<claim 2>", 11), ("<claim 4>", 1)]
    assert report.summary().startswith("1 of 4 claims correct, 2 unusable")
    assert [c["verdict"] for c in report.to_dict()["claims"]] == ["correct", "unusable", "wrong", "unusable"]
    assert report.unusable[0].name == "W1" and report.unusable[1].name == "Q"


@pytest.mark.parametrize(("claim", "col", "phrases"), [
    ("dX = 1", 1, ("X is an input", "which has no gradient", "params (W1, b1, w2, b2)")),
    ("W1 = 3", 1, ("write dW1",)),
    ("dq = 2", 1, ("'dq' is not the gradient of a variable",)),
    ("dloss = 1", 1, ("the loss itself",)),
    ("dW1 = dW1", 7, ("uses dW1 itself",)),
    ("dW1 = dZ @ X.T + dX", 18, ("X is an input",)),
    ("dW1 = dZ @ X.T +", 17, ("syntax error", "ends too early")),
    ("dW1 = (dZ @ X.T", 7, ("unbalanced parentheses",)),
    ("dW1 =", 6, ("nothing after '='",)),
    ("dW1 dZ @ X.T", 1, ("a claim reads dNAME = EXPR",)),
    ("dW1 = dZ @ Xs.T", 12, ("undefined name 'Xs'", "did you mean 'X'")),
    ("dZ = dA * (Z == 0)", 12, ("'==' is not supported",)),
    ("db1 = dZ @ ones(q, 1)", 17, ("a dimension must be",)),
    ("dZ = dA * A * (1 - A) * lam", 25, ("undefined name 'lam'",)),
])
def test_claim_errors_point_into_the_claim(claim: str, col: int, phrases: tuple[str, ...]) -> None:
    report = backprop.verify("two_layer_sigmoid", [claim])
    (e,) = report.errors
    assert report[0].status == "unusable" and report[0].diagnosis == e.message
    assert (e.file, e.line, e.col) == ("<claim 1>", 1, col), e.format()
    for p in phrases:
        assert p in e.message, e.message
    assert e.format().splitlines()[1].strip() == claim


def test_same_input_same_report() -> None:
    claims = ["dZ3 = dA3 * A3", "dW2 = A1 @ dZ2.T", "dW1 = ((W2.T @ dZ2) * (Z1 > 0)) @ X.T"]
    assert backprop.verify("deep_relu", claims).to_json() == backprop.verify("deep_relu", claims).to_json()


# ---------------------------------------------------------------------------
# Every step of every example: the derivation's own forms pass, altered ones are named
# ---------------------------------------------------------------------------


def _claim(v: Verifier, name: str, expr: object) -> object:
    from backprop.expr.printing import text
    from backprop.verification.claims import Claim

    return v.check(Claim(name, f"d{name} = {text(expr)}", text(expr), expr))


@pytest.mark.parametrize("example", sorted(TABLES))
def test_every_step_in_recursive_and_closed_form(example: str) -> None:
    from backprop.expr import ir
    from backprop.expr.ops_tensor import permute

    v = verifier(example)
    m = v.model.dims["m"]
    for step in v.deriv.steps:
        for form in (step.result, step.recursive, v.deriv.expanded(step.target)):
            r = _claim(v, step.target, form)
            assert r.verdict, (step.target, r.claim_text, r.diagnosis)
        assert _claim(v, step.target, ir.neg(step.result)).mistake == "sign"
        r = _claim(v, step.target, ir.mul(sympy.Integer(3), step.result))
        assert r.diagnosis == "3 times the correct gradient: an extra factor 3?", r.diagnosis
        r = _claim(v, step.target, ir.div(step.result, m))
        assert r.diagnosis == "m times too small: an extra 1/m?", r.diagnosis
        shape = step.shape
        back = tuple(reversed(range(len(shape))))  # the axes reversed: for a matrix, the transpose
        if tuple(shape[k] for k in back) != shape:
            r = _claim(v, step.target, permute(step.result, back))
            want = "transpose of the correct gradient" if len(shape) == 2 else "of it is the correct gradient"
            assert r.mistake == "transpose" and want in (r.diagnosis or ""), r.diagnosis


SIZES = [{"m": 2, "n": 3, "k": 5}, {"m": 5, "n": 7, "k": 2}, {"m": 3, "n": 2, "k": 7}, {"m": 7, "n": 5, "k": 3}]


@pytest.mark.parametrize(("ratio", "phrase"), [
    (lambda s: 0.5, "exactly 1/2 of the correct gradient: a missing factor 2?"),
    (lambda s: 2.0, "2 times the correct gradient: an extra factor 2?"),
    (lambda s: -1.0, "the negative of the correct gradient: a sign error"),
    (lambda s: -2.0, "−2 times the correct gradient: a sign error and an extra factor 2?"),
    (lambda s: s["m"], "m times too large: a missing 1/m?"),
    (lambda s: 1 / s["n"], "n times too small: an extra 1/n?"),
    (lambda s: -s["m"], "the negative of the correct gradient and m times too large: a sign error and a missing 1/m?"),
    (lambda s: s["m"] / 2, "m/2 times the correct gradient: a missing 2/m?"),
    (lambda s: 2 / s["m"] ** 2, "2/m² times the correct gradient: an extra 2/m²?"),
    (lambda s: s["m"] * s["k"], "k·m times the correct gradient: a missing 1/(k·m)?"),
    (lambda s: s["m"] / s["k"], "m/k times the correct gradient: a factor that depends on the sizes"),
    (lambda s: s["k"] ** 0.5, "√k times too large: a missing 1/√k?"),
    (lambda s: s["n"] ** -0.5, "√n times too small: an extra 1/√n?"),
    (lambda s: 2 * s["m"] ** 0.5, "2√m times the correct gradient: a missing 1/(2√m)?"),
    (lambda s: (s["k"] / s["n"]) ** 0.5, "√k/√n times the correct gradient: a 1/√n where 1/√k belongs?"),
])
def test_factor_fit_and_phrase(ratio, phrase: str) -> None:  # noqa: ANN001
    from backprop.verification.factors import factor_phrase, fit_factor

    f = fit_factor([ratio(s) for s in SIZES], SIZES)
    assert f is not None and factor_phrase(f) == phrase


def test_factor_fit_rejects_what_varies() -> None:
    from backprop.verification.factors import fit_factor

    assert fit_factor([0.3, 1.7, 0.9, 2.2], SIZES) is None


@pytest.mark.parametrize(("c", "exps", "shown"), [
    (Fraction(1, 2), (("m", -1),), "1/(2m)"),
    (Fraction(2), (("m", 1),), "2m"),
    (Fraction(3, 2), (("k", 1), ("m", -2)), "3k/(2m²)"),
    (Fraction(1), (("k", -1), ("m", -1)), "1/(k·m)"),
    (0.123456, (), "0.123"),
])
def test_factor_text(c: object, exps: tuple, shown: str) -> None:
    from backprop.verification.factors import Factor

    assert Factor(c, exps).text() == shown


@pytest.mark.parametrize(("power", "phrase"), [
    (-1, "k times too small: an extra 1/k? (mean(...) divides by k; the gradient sums)"),
    (Fraction(-1, 2), "√k times too small: an extra 1/√k?"),  # a mean divides by k, never by √k
])
def test_mean_hint_only_for_a_whole_power(power: object, phrase: str) -> None:
    from backprop.language.parse import parse_spec
    from backprop.verification.factors import Factor, factor_phrase

    model = parse_spec("input X[k, m]\nparam w[1, k]\nloss = sum(w @ X) + sum(mean(X, axis=0))")
    claim = model.loss.expr
    assert factor_phrase(Factor(Fraction(1), (("k", power),)), claim=claim) == phrase


# ---------------------------------------------------------------------------
# What dOTHER stands for: the true gradient, the student's own answer, or nothing
# ---------------------------------------------------------------------------

CHAIN = ["dyhat = 2/m * (yhat - y)", "dA = w2.T @ dyhat", "dZ = dA * A * (1 + A)", "dW1 = dZ @ X.T",
         "dw2 = dyhat @ A.T", "db2 = sum(dq)", "db1 = sum(dQ, axis=1)"]


@pytest.mark.parametrize(("chain", "statuses", "phrase"), [
    ("true", ["correct", "correct", "wrong", "correct", "correct", "unusable", "unusable"], None),
    # dW1 through the student's own (wrong) dZ is wrong, and says which factor is off
    ("own", ["correct", "correct", "wrong", "wrong", "correct", "unusable", "unusable"],
     "this would hold if σ′(Z) were A ⊙ (1 + A)"),
    ("closed", ["correct", "wrong", "wrong", "wrong", "wrong", "unusable", "unusable"],
     "a closed form is required: dZ stands for another gradient; write it out"),
])
def test_chain_modes(chain: str, statuses: list[str], phrase: str | None) -> None:
    report = backprop.verify("two_layer_sigmoid", CHAIN, chain=chain)
    assert [r.status for r in report] == statuses
    if phrase:
        assert phrase in report[3].diagnosis


def test_own_chain_needs_the_answers_before() -> None:
    report = backprop.verify("two_layer_sigmoid", ["dW1 = dZ @ X.T", "dZ = dA * A * (1 - A)", "dW1 = dZ @ X.T",
                                                   "dA = w2.T @ (2/m * (yhat - y))", "dZ = dA * A * (1 - A)",
                                                   "dW1 = dZ @ X.T", "db1 = sum(dZ, axis=0)"], chain="own")
    assert [r.mistake for r in report] == ["chain", "chain", "chain", None, None, None, "sum"]
    assert report[0].diagnosis == "uses dZ, but no answer for it comes before this one"
    assert report[2].diagnosis == "uses dZ, whose answer above is itself a broken chain"
    with pytest.raises(ValueError, match="chain must be one of true, own, closed"):
        backprop.verify("two_layer_sigmoid", ["dW1 = dZ @ X.T"], chain="mine")


def test_a_shared_verifier_gives_the_same_verdicts() -> None:
    """A grader judging a class batch by batch shares one Verifier (and its memo): same verdicts."""
    from backprop.verification.verify import check_claims

    deriv = backprop.get_derivation("two_layer_sigmoid")
    shared = Verifier(deriv)
    claims = ["dW1 = dZ @ X.T", "dw2 = 2 * (yhat - y) @ A.T", "dZ = dA * Z * (1 - Z)", "dQ = 1"]
    fresh = backprop.verify(deriv, claims)
    for _ in range(2):  # the second batch is answered from the memo
        report, errors = check_claims(deriv, claim_sources(claims), verifier=shared)
        assert report.to_json() == fresh.to_json() and len(errors) == 1


def test_earlier_answers_feed_an_own_chain_each_in_its_own_mode() -> None:
    """A grader asks dZ (dA meaning the true gradient), then dW1 with chain="own": dW1's dZ is the
    student's answer to dZ, whose own dA stays the true one."""
    from backprop.verification.verify import check_claims

    deriv = backprop.get_derivation("two_layer_sigmoid")

    def judge(dz: str, dz_mode: str, dw1: str = "dW1 = dZ @ X.T") -> ClaimResult:
        report, _ = check_claims(deriv, [ClaimSource(dw1, "<q5>")], chain="own",
                                 earlier=[(ClaimSource(dz, "<q4>"), dz_mode)])
        return report[0]

    assert judge("dZ = dA * A * (1 - A)", "true").verdict
    wrong = judge("dZ = dA * Z * (1 - Z)", "true")
    assert not wrong.verdict and "σ′(Z) were Z ⊙ (1 − Z)" in wrong.diagnosis
    assert judge("dZ = dA * A * (1 - A)", "own").diagnosis == ("uses dZ, whose answer above is itself a broken "
                                                              "chain")
    assert judge("dZ = dA X", "true").diagnosis == "uses dZ, whose answer above could not be read"
    assert judge("dZ = dA * A * (1 - A)", "true", "dW1 = dA @ X.T").diagnosis == (
        "uses dA, but no answer for it comes before this one")


SOFTMAX_MSE = """input X[n, m]
input Y[c, m]
param W[c, n]
Z = W @ X
P = softmax(Z, axis=0)
loss = sum((P - Y)**2) / m
"""

BATCH_NORM = """input X[d, m]
input Y[1, m]
param W[n, d]
param g[n, 1]
param c[n, 1]
param w[1, n]
Z = W @ X
mu = sum(Z, axis=1) / m
v = sum((Z - mu)**2, axis=1) / m
Zh = (Z - mu) / sqrt(v + 0.001)
H = g * Zh + c
loss = sum((w @ H - Y)**2) / m
"""


@pytest.mark.parametrize(("spec", "claim", "kind", "phrases"), [
    (SOFTMAX_MSE, "dZ = dP * P * (1 - P)", "slip", ("only the diagonal of the softmax Jacobian", "−PᵢPⱼ")),
    (SOFTMAX_MSE, "dW = (dP * P * (1 - P)) @ X.T", "slip", ("only the diagonal of the softmax Jacobian",)),
    (SOFTMAX_MSE, "dZ = P * (dP - sum(dP * P, axis=1))", "axis",
     ("Σₜ(∂L/∂P ⊙ P) runs along axis 1; it should run along axis 0: colsum(∂L/∂P ⊙ P)",)),
    (BATCH_NORM, "dZ = dZh / sqrt(v + 0.001)", "paths",
     ("misses the paths through v", "it treats mu and v as constants, but Z reaches the loss through them too")),
    (BATCH_NORM, "dZ = (dZh - sum(dZh, axis=1) / m) / sqrt(v + 0.001)", "paths",
     ("it treats v as constant, but Z reaches the loss through it too",)),
    (BATCH_NORM, "dZ = (dZh - sum(dZh, axis=0) / m - Zh * sum(dZh * Zh, axis=1) / m) / sqrt(v + 0.001)", "axis",
     ("colsum(∂L/∂Zh) runs along axis 0; it should run along axis 1",)),
])
def test_sharper_diagnoses(spec: str, claim: str, kind: str, phrases: tuple[str, ...]) -> None:
    """The slips a class makes most on normalization and softmax layers are named, not 'does not match'."""
    (r,) = backprop.verify(parse_spec(spec, name="net"), [claim]).results
    assert not r.verdict and r.mistake == kind, r.diagnosis
    assert all(p in (r.diagnosis or "") for p in phrases), r.diagnosis


# ---------------------------------------------------------------------------
# A strided convolution: δ dilated by the stride before the full convolution (issue 15 point 4)
# ---------------------------------------------------------------------------

#: A strided conv after a stride-1 one, so its input has a gradient: images and sequences, stride 2 and 3,
#: examples last and first. ∂L/∂H = conv(dilate(δ, s), the filters flipped, channel axes swapped, padding k − 1 − p).
STRIDED = {
    "conv2d-s2": """\
input X[2, 9, 9, m]
param V[3, 2, 3, 3]
param W[4, 3, 3, 3]
param b[4, 1, 1, 1]
H = tanh(conv2d(X, V))
Z = conv2d(H, W, stride=2) + b
loss = sum(Z**2) / m
""",
    "conv2d-s3-first": """\
examples m
input X[m, 2, 9, 9]
param V[3, 2, 3, 3]
param W[4, 3, 3, 3]
param b[1, 4, 1, 1]
H = tanh(conv2d(X, V))
Z = conv2d(H, W, stride=3, padding=1) + b
loss = sum(Z**2) / m
""",
    "conv1d-s2": """\
input X[2, 11, m]
param V[3, 2, 3]
param W[4, 3, 3]
H = tanh(conv1d(X, V))
Z = conv1d(H, W, stride=2)
loss = sum(Z**2) / m
""",
    "conv1d-s3-first": """\
examples m
input X[m, 2, 12]
param V[3, 2, 3]
param W[4, 3, 4]
H = tanh(conv1d(X, V))
Z = conv1d(H, W, stride=3)
loss = sum(Z**2) / m
""",
}
FULL2 = "transpose(flip(W, [2, 3]), [1, 0, 2, 3])"
FULL1 = "transpose(flip(W, [2]), [1, 0, 2])"
MISSING = "the stride is not accounted for: δ must be dilated by the stride"
BEFORE = "before the full convolution with the flipped filters"


@pytest.mark.parametrize(("spec", "claim", "kind", "phrases"), [
    ("conv2d-s2", f"dH = conv2d(dilate(dZ, 2), {FULL2}, padding=2)", None, ()),
    ("conv2d-s2", f"dH = conv2d(dilate(dZ, 2, [1, 2]), {FULL2}, padding=2)", None, ()),
    ("conv2d-s2", "dW = transpose(conv2d(transpose(H, [3, 1, 2, 0]), transpose(dilate(dZ, 2), [0, 3, 1, 2])), [0, 3, 1, 2])",
     None, ()),
    ("conv2d-s3-first", f"dH = conv2d(dilate(dZ, 3), {FULL2}, padding=1)", None, ()),
    ("conv1d-s2", f"dH = conv1d(dilate(dZ, 2), {FULL1}, padding=2)", None, ()),
    ("conv1d-s2", "dW = transpose(conv1d(transpose(H, [2, 1, 0]), transpose(dilate(dZ, 2), [0, 2, 1])), [0, 2, 1])",
     None, ()),
    ("conv1d-s3-first", f"dH = conv1d(dilate(dZ, 3), {FULL1}, padding=3)", None, ()),
    # the dilation forgotten: the wrong shape, and the stride named
    ("conv2d-s2", f"dH = conv2d(dZ, {FULL2}, padding=2)", "stride",
     ("wrong shape 3×5×5×m: ∂L/∂H is 3×7×7×m", MISSING, "dilate(δ, 2) (1 zero between neighbouring entries)", BEFORE)),
    ("conv2d-s3-first", f"dH = conv2d(dZ, {FULL2}, padding=1)", "stride",
     ("wrong shape m×3×3×3", MISSING, "dilate(δ, 3) (2 zeros between neighbouring entries)", BEFORE)),
    ("conv1d-s2", f"dH = conv1d(dZ, {FULL1}, padding=2)", "stride", ("wrong shape 3×6×m", MISSING, "dilate(δ, 2)")),
    ("conv1d-s3-first", f"dH = conv1d(dZ, {FULL1}, padding=3)", "stride", (MISSING, "dilate(δ, 3)")),
    ("conv2d-s2", "dW = transpose(conv2d(transpose(H, [3, 1, 2, 0]), transpose(dZ, [0, 3, 1, 2])), [0, 3, 1, 2])",
     "stride", ("wrong shape 4×3×5×5", MISSING, "before it is correlated with the input")),
    # dilated by the wrong factor
    ("conv2d-s2", f"dH = conv2d(dilate(dZ, 3), {FULL2}, padding=2)", "stride",
     ("the stride is not accounted for: δ is dilated by 3, but the stride is 2: dilate(δ, 2)",)),
    ("conv2d-s3-first", f"dH = conv2d(dilate(dZ, 2), {FULL2}, padding=1)", "stride",
     ("δ is dilated by 2, but the stride is 3: dilate(δ, 3) (2 zeros between neighbouring entries)",)),
    ("conv1d-s3-first", f"dH = conv1d(dilate(dZ, 2), {FULL1}, padding=3)", "stride", ("δ is dilated by 2, but the stride is 3",)),
    # wrong for another reason: not a stride slip
    ("conv2d-s2", "dH = conv2d(dilate(dZ, 2), transpose(W, [1, 0, 2, 3]), padding=2)", "flip", ("the filters are not flipped",)),
    ("conv1d-s2", f"dH = conv1d(dilate(dZ, 2), {FULL1}, padding=1)", "padding", ("padding=2, not 1",)),
    ("conv2d-s2", f"dH = -conv2d(dilate(dZ, 2), {FULL2}, padding=2)", "sign", ("sign error",)),
    ("conv2d-s3-first", f"dH = 2 * conv2d(dilate(dZ, 3), {FULL2}, padding=1)", "factor", ("2 times the correct gradient",)),
    ("conv2d-s2", "dH = conv2d(dZ, transpose(W, [1, 0, 2, 3]), padding=2)", "shape", ("wrong shape 3×5×5×m",)),
    # a conv bias's gradient summed over the wrong axes (the channels, not the examples)
    ("conv2d-s2", "db = sum(dZ, axis=(0, 1, 2))", "sum",
     ("it sums over the wrong axes: a bias's gradient sums δ over every axis the bias was broadcast along, all but "
      "axis 0 (for a conv layer, the positions and the examples, not the channels)",
      "sum(..., axis=(1, 2, 3)), not axis=(0, 1, 2)")),
    ("conv2d-s3-first", "db = sum(dZ, axis=(1, 2, 3))", "sum", ("all but axis 1", "axis=(0, 2, 3)")),
    ("conv2d-s2", "db = sum(dZ, axis=(1, 2))", "sum", ("sum over the examples: sum(dZ, axis=(1, 2, 3))",)),
])
def test_a_strided_convolution_needs_delta_dilated(spec: str, claim: str, kind: str | None, phrases: tuple[str, ...]) -> None:
    """A correct claim dilates δ by the stride; one that forgets, or dilates by another factor, is told
    so in words, shape mismatch or not; a claim wrong in another way is not called a stride slip."""
    (r,) = backprop.verify(parse_spec(STRIDED[spec], name=spec), [claim]).results
    assert r.verdict is (kind is None), r.diagnosis
    assert r.mistake == kind, r.diagnosis
    for p in phrases:
        assert p in (r.diagnosis or ""), f"{p!r} not in {r.diagnosis!r}"


@pytest.mark.parametrize(("spec", "claim"), [
    ("input X[n, m]\nparam W[n, n]\nloss = sum((W @ X)**2) / m - logdet(W)\n", "dW = 2/m * (W @ X) @ X.T - inv(W)"),
    ("input X[n, m]\ninput Y[n, m]\nparam W[n, n]\nloss = sum((inv(W) @ X - Y)**2) / m\n",
     "dW = -inv(W) @ (2/m * (inv(W) @ X - Y) @ X.T) @ inv(W)"),
])
def test_a_forgotten_inverse_transpose_is_named(spec: str, claim: str) -> None:
    """∂ log det W = W⁻ᵀ and ∂W⁻¹ = −W⁻ᵀ (·) W⁻ᵀ: a claim with W⁻¹ where W⁻ᵀ belongs says so."""
    (r,) = backprop.verify(parse_spec(spec, name="net"), [claim]).results
    assert not r.verdict and r.mistake == "transpose" and "W⁻¹ needs a transpose" in (r.diagnosis or ""), r.diagnosis
