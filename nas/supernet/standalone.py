"""Training one subnet from scratch, on its own (no shared weights): the ground truth a supernet's
ranking is judged against, and the few real trainings that calibrate its accuracy.

Recipe: ``steps`` AdamW steps of ``batch`` examples drawn with replacement (lr 3e-3, weight decay
0.05 on matrices, 3% warm-up then cosine to 2% of the rate, gradients clipped at 1). The batches
come from a generator seeded by ``seed`` alone, on the CPU: every arch trained with one seed sees
the same examples in the same order on any device, so archs of one seed differ by architecture
and initialisation only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from nas.errors import NasError
from nas.space import NetArch, NetSpace
from nas.supernet.recipe import warmup_cosine
from nas.supernet.scoring import token_loss


@dataclass(frozen=True)
class StandaloneRecipe:
    steps: int = 1600
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.03

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise NasError(f"stand-alone training needs steps, batch size and lr above 0, not {self}")

    def lr_factor(self) -> Callable[[int], float]:
        return warmup_cosine(self.steps, max(1, int(self.warmup_fraction * self.steps)))


def train_from_scratch(space: NetSpace, arch: NetArch, x: np.ndarray, y: np.ndarray, seed: int,
                       recipe: StandaloneRecipe = StandaloneRecipe(), device: str | torch.device = "cpu",
                       num_classes: int | None = None) -> torch.nn.Module:
    """``arch`` built at its own size with fresh weights (initialised from ``seed``) and trained
    on ``x``, ``y`` by ``recipe``; returned in eval mode on ``device``."""
    from nas.supernet.model import Supernet, SupernetConfig

    torch.manual_seed(seed)
    config = SupernetConfig.from_space(space, num_classes, x.shape[1])
    net = Supernet(config).extract(arch, tuple(x.shape[1:])).to(device)
    decay = [p for p in net.parameters() if p.dim() >= 2]
    other = [p for p in net.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=recipe.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, recipe.lr_factor())
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same batches on any device
    xs, ys = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
    net.train()
    for _ in range(recipe.steps):
        idx = torch.randint(0, len(xs), (recipe.batch_size,), generator=gen).to(device)
        loss = token_loss(net(xs[idx]), ys[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
    return net.eval()
