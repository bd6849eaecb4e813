"""Scoring a subnet: its accuracy on held-out data, and the short fine-tune from inherited
weights that a search can score after (what the evaluator, the CLI and the experiments share;
training itself is nas.supernet.train)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from nas.space import NetArch


def token_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits (N, C) against labels (N,), or of a language model's logits
    (N, L, V) against next tokens (N, L), every position weighing the same."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1).long(), reduction=reduction)


def accuracy(net: torch.nn.Module, arch: NetArch | None, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
             batch: int = 500) -> float:
    """Top-1 accuracy of ``arch`` (or of an extracted subnet when ``arch`` is None), batched on the
    device of ``net``'s weights; arrays or tensors (already there, for a search's workers)."""
    return accuracy_and_nll(net, arch, x, y, batch)[0]


def accuracy_and_nll(net: torch.nn.Module, arch: NetArch | None, x: np.ndarray | torch.Tensor,
                     y: np.ndarray | torch.Tensor, batch: int = 500) -> tuple[float, float]:
    """Top-1 accuracy and mean negative log-likelihood (nats) of ``arch`` (or of an extracted
    subnet when ``arch`` is None) in one pass; for a language model, per next token (byte): its
    bits per byte are the NLL / ln 2. The loss separates archs that differ little better
    than accuracy, which moves in steps of one image (Ning et al., "Evaluating efficient
    performance estimators of neural architectures")."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    x = torch.as_tensor(x).to(device, non_blocking=True)
    y = torch.as_tensor(y).to(device, non_blocking=True)
    correct = torch.zeros((), dtype=torch.long, device=device)
    loss = torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb, yb = x[i : i + batch], y[i : i + batch]
            logits = (net(xb) if arch is None else net(xb, arch)).float()
            correct += (logits.argmax(-1) == yb).sum()
            loss += token_loss(logits, yb, reduction="sum").double()
    net.train(was_training)
    n = max(y.numel(), 1)
    return int(correct) / n, float(loss) / n


def finetune_sample(x: np.ndarray, y: np.ndarray, steps: int, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """The training examples a fine-tune of ``steps`` draws its batches from: a fixed random
    ``steps * batch`` of them (all when fewer), so every worker and every subnet sees the same."""
    keep = np.random.default_rng(0).permutation(len(x))[: steps * batch]
    return x[keep], y[keep]


def finetune(subnet: torch.nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, steps: int,
             lr: float = 1e-3, batch: int = 128, seed: int = 0,
             loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.nn.Module:
    """``steps`` AdamW steps (no weight decay; random batches of ``batch``, seeded) from the weights
    an extracted subnet inherited, in place, on its weights' device. The loss is cross-entropy on
    the labels unless ``loss_fn(logits, x_batch, y_batch)`` gives another. Scoring subnets after
    such a short fine-tune ranks them closer to training each from scratch than inherited weights
    alone (experiments/supernet_ranking.py)."""
    device = next(subnet.parameters()).device
    x = torch.as_tensor(x)
    x = (x if x.dtype == torch.uint8 else x.float()).to(device)  # tokens stay tokens
    y = torch.as_tensor(y).to(device)
    opt = torch.optim.AdamW(subnet.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    was_training = subnet.training
    subnet.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen).to(device)
        logits = subnet(x[idx])
        loss = token_loss(logits, y[idx]) if loss_fn is None else loss_fn(logits, x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    subnet.train(was_training)
    return subnet
