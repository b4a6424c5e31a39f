"""The bundled tensor examples against PyTorch written independently, the way PyTorch users write them.

Each reference below uses PyTorch's own layers -- ``F.scaled_dot_product_attention``,
``F.layer_norm``, ``nn.GRUCell``, ``F.embedding``, ``F.cross_entropy`` -- in PyTorch's layout
(examples first), not a translation of our equations. The generated module's loss and every
gradient must equal autograd's to 1e-9 (float64), at several sizes.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

import backprop
from backprop import codegen

RTOL = 1e-9
TENSOR_EXAMPLES = Path(__file__).resolve().parent.parent / "backprop" / "examples"
Values = dict[str, np.ndarray]


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


def _tokens_first(x: torch.Tensor) -> torch.Tensor:
    """A [d, T, m] tensor as PyTorch lays a batch of sequences out: [m, T, d]."""
    return x.permute(2, 1, 0)


def _sdpa_heads(wq: torch.Tensor, wk: torch.Tensor, wv: torch.Tensor, wo: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multi-head attention of tokens x [m, T, d] with per-head projections [a, k, d] and an
    output projection [d, a, k]: heads by F.scaled_dot_product_attention (scale 1/√k)."""
    q, k, v = (torch.einsum("mtd,hkd->mhtk", x, w) for w in (wq, wk, wv))
    heads = F.scaled_dot_product_attention(q, k, v)  # [m, a, T, k]
    return torch.einsum("mhtk,dhk->mtd", heads, wo)


def self_attention(p: dict[str, torch.Tensor], x: Values) -> torch.Tensor:
    tokens = _tokens_first(torch.tensor(x["X"]))
    q, k, v = tokens @ p["Wq"].T, tokens @ p["Wk"].T, tokens @ p["Wv"].T
    h = F.scaled_dot_product_attention(q, k, v)  # scale 1/√d
    return ((h - _tokens_first(torch.tensor(x["Y"]))) ** 2).sum() / (2 * tokens.shape[0])


def multihead_attention(p: dict[str, torch.Tensor], x: Values) -> torch.Tensor:
    tokens = _tokens_first(torch.tensor(x["X"]))
    out = _sdpa_heads(p["Wq"], p["Wk"], p["Wv"], p["Wo"], tokens)
    return ((out - _tokens_first(torch.tensor(x["Y"]))) ** 2).sum() / (2 * tokens.shape[0])


def transformer_block(p: dict[str, torch.Tensor], x: Values) -> torch.Tensor:
    """Batch first, as the spec (and PyTorch) lays it out: tokens [m, T, d], weights as F.linear takes them."""
    tokens = torch.tensor(x["X"])
    m, t, d = tokens.shape
    _, a, k = p["Wq"].shape

    def heads(w: torch.Tensor, n: torch.Tensor) -> torch.Tensor:  # [d, a, k] -> queries etc. [m, a, T, k]
        return F.linear(n, w.reshape(d, a * k).T).reshape(m, t, a, k).transpose(1, 2)

    n1 = F.layer_norm(tokens, (d,), p["g1"].reshape(d), p["c1"].reshape(d), eps=1e-5)
    z = F.scaled_dot_product_attention(heads(p["Wq"], n1), heads(p["Wk"], n1), heads(p["Wv"], n1))
    r = tokens + F.linear(z.transpose(1, 2).reshape(m, t, a * k), p["Wo"].reshape(a * k, d).T)
    n2 = F.layer_norm(r, (d,), p["g2"].reshape(d), p["c2"].reshape(d), eps=1e-5)
    hidden = torch.relu(F.linear(n2, p["W1"].T, p["b1"].reshape(-1)))
    out = r + F.linear(hidden, p["W2"].T, p["b2"].reshape(-1))
    return F.mse_loss(out, torch.tensor(x["Y"]))


def gated_concat(p: dict[str, torch.Tensor], x: Values) -> torch.Tensor:
    n, k = x["X"].shape[0], x["H"].shape[0]
    cell = torch.nn.GRUCell(n, k, dtype=torch.float64)
    zeros = torch.zeros(k, dtype=torch.float64)
    with torch.no_grad():  # PyTorch's gate order: reset, update, candidate
        cell.weight_ih.copy_(torch.cat([p["Wr"], p["Wz"], p["Wn"]]))
        cell.weight_hh.copy_(torch.cat([p["Ur"], p["Uz"], p["Un"]]))
        cell.bias_ih.copy_(torch.cat([p["br"], p["bz"], p["bn"]]).reshape(-1))
        cell.bias_hh.copy_(torch.cat([zeros, zeros, p["cn"].reshape(-1)]))
    h = cell(torch.tensor(x["X"]).T, torch.tensor(x["H"]).T)
    loss = ((h.T - torch.tensor(x["Y"])) ** 2).sum() / (2 * x["X"].shape[1])
    grads = torch.autograd.grad(loss, [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh])
    wih, whh, bih, bhh = grads
    # the cell's parameters are copies: hand their gradients to ours, block by block
    blocks = {"Wr": wih[:k], "Wz": wih[k:2 * k], "Wn": wih[2 * k:], "Ur": whh[:k], "Uz": whh[k:2 * k],
              "Un": whh[2 * k:], "br": bih[:k], "bz": bih[k:2 * k], "bn": bih[2 * k:], "cn": bhh[2 * k:]}
    for name, g in blocks.items():
        p[name].grad = g.reshape(p[name].shape).clone()
    return loss.detach()


def mlp_rows(p: dict[str, torch.Tensor], x: Values) -> torch.Tensor:
    hidden = torch.relu(torch.tensor(x["X"]) @ p["W1"] + p["b1"])
    labels = torch.tensor(x["Y"]).argmax(dim=1)
    return F.cross_entropy(hidden @ p["W2"] + p["b2"], labels)


def embedding(p: dict[str, torch.Tensor], x: Values) -> torch.Tensor:
    tokens = torch.tensor(x["X"]).argmax(dim=0).T  # [m, T] token ids
    pooled = F.embedding(tokens, p["E"].T).mean(dim=1)  # [m, d]
    labels = torch.tensor(x["Y"]).argmax(dim=0)
    return F.cross_entropy(pooled @ p["W"].T + p["b"].reshape(-1), labels)


REFERENCES: dict[str, Callable[[dict[str, torch.Tensor], Values], torch.Tensor]] = {
    "self_attention": self_attention,
    "multihead_attention": multihead_attention,
    "transformer_block": transformer_block,
    "gated_concat": gated_concat,
    "mlp_rows": mlp_rows,
    "embedding": embedding,
}
SIZES = [
    {"d": 4, "T": 3, "m": 2, "a": 2, "k": 3, "f": 5, "n": 3, "h": 4, "c": 3, "V": 5},
    {"d": 6, "T": 5, "m": 3, "a": 3, "k": 2, "f": 4, "n": 2, "h": 3, "c": 4, "V": 7},
    {"d": 3, "T": 1, "m": 1, "a": 1, "k": 1, "f": 1, "n": 1, "h": 1, "c": 2, "V": 2},
]


def _inputs(module: Any, dims: dict[str, int], rng: np.random.Generator) -> Values:
    out: Values = {}
    for name in module.INPUTS:
        shape = tuple(dims[s] if isinstance(s, str) else s for s in module.SHAPES[name])
        if module.DOMAINS[name] == "onehot":
            axis = 1 if module.EXAMPLE_AXES.get(name) == 0 and len(shape) == 2 else 0
            labels = rng.integers(0, shape[axis], size=shape[:axis] + shape[axis + 1:])
            out[name] = np.moveaxis(np.eye(shape[axis])[labels], -1, axis)
        else:
            out[name] = rng.normal(size=shape)
    return out


@pytest.mark.parametrize("sizes", range(len(SIZES)), ids=[f"sizes{i}" for i in range(len(SIZES))])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_bundled_tensor_example_matches_pytorch(name: str, sizes: int) -> None:
    model = backprop.load(str(TENSOR_EXAMPLES / f"{name}.spec"))
    module = codegen.load_module(codegen.generate(model))
    dims = {d: SIZES[sizes][d] for d in model.dims}
    rng = np.random.default_rng([sizes, len(name)])
    params = module.init_params(dims, seed=sizes)
    params = {k: v + 0.3 * rng.normal(size=np.shape(v)) for k, v in params.items()}  # biases off zero
    inputs = _inputs(module, dims, rng)
    loss, grads = module.loss_and_grads(params, inputs)

    tparams = {k: _t(v) for k, v in params.items()}
    ref = REFERENCES[name](tparams, inputs)
    if ref.requires_grad:
        ref.backward()
    assert loss == pytest.approx(float(ref.detach()), rel=RTOL)
    for k, t in tparams.items():
        want = t.grad.numpy()
        scale = max(float(np.max(np.abs(want))), 1e-300)
        assert np.max(np.abs(grads[k] - want)) <= RTOL * scale, f"∂L/∂{k} differs from PyTorch"


def test_mlp_rows_trains_with_examples_as_rows(tmp_path: Any) -> None:
    """Examples as rows run end to end: train batches and holds out rows, and the loss falls."""
    from backprop.cli import main

    code = main(["train", str(TENSOR_EXAMPLES / "mlp_rows.spec"), "--synthetic", "--epochs", "4", "--val", "0.25", "--quiet",
                 "--dims", "m=96,n=4,c=3,h=8", "--out", str(tmp_path / "run")])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]
    assert float(rows[-1]["train_loss"]) < 0.9 * float(rows[0]["train_loss"])
    assert all(float(r["val_loss"]) > 0 for r in rows)  # 24 rows held out, 72 trained on
