"""Training one supernet on several GPUs or nodes with Ray Train (``TorchTrainer``).

Every rank runs :func:`nas.supernet.train.run_epochs` on its share of each global batch: the
ranks draw the same subnets at a step (the sampling's random state is seeded alike everywhere
and advances alike), and :class:`GradientAverager` averages the gradients of all parameters
before each optimiser step, weighted by each rank's share of the batch. A subnet leaves some
parameters unused; their gradient counts as zero on every rank, so the averaging needs no
knowledge of which were used (DDP's ``find_unused_parameters`` without its per-pass
bookkeeping, and one all-reduce per step for the whole sandwich instead of one per subnet).
The result is the update one process would make on the whole batch; the one term that differs
is MoE's load-balancing loss, a statistic of each rank's own tokens.

Rank 0 saves each epoch's checkpoint through ``ray.train.report``; the driver copies the last
one to ``out``. ``resume`` ships the checkpoint at ``out`` to every rank. When a worker or its
node is lost, Ray Train starts the worker group again (up to ``MAX_FAILURES`` times) and every
rank resumes from the last reported checkpoint, so at most one epoch's work is lost; each
epoch's record counts the restarts behind it (``restarts``). Ray Train keeps those checkpoints
under ``storage`` (a temporary folder by default): on a cluster of several machines, give a
folder every node can reach.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from nas.errors import NasError, first_line
from nas.supernet import checkpoint

CKPT_NAME = "supernet.ckpt"
MAX_FAILURES = 3  # worker-group restarts after a lost worker or node before training gives up


class GradientAverager:
    """The gradients of every parameter, summed over the ranks of the default process group and
    divided by their number, in one all-reduce. A parameter without a gradient on a rank counts
    as zeros there, and one no rank used keeps no gradient (the optimiser then leaves it alone,
    as it does in one process: no momentum step, no weight decay)."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        import torch.distributed as dist

        used = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [used])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        used = flat[-len(params):]
        flat = flat[: -len(params)] / self.world
        offset = 0
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            n = g.numel()
            p.grad = flat[offset: offset + n].view_as(p) if used[i] > 0 else None
            offset += n


def _loop(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs."""
    import ray.train
    import ray.train.torch

    from nas.data import load_dataset
    from nas.space import loads
    from nas.supernet.train import TrainConfig, TrainState, finish, run_epochs

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    space = loads(config["space_yaml"], source="the space being trained")
    data = load_dataset(config["dataset"], space.task, seed=config["train"]["seed"])
    train_config = TrainConfig(**config["train"])
    data = data.limit(train_config.limit)
    net = info = None
    restarts = 0
    reported = ray.train.get_checkpoint()  # set when Ray Train restarted the group after a failure
    if reported is not None:
        with reported.as_directory() as folder:
            net, info = checkpoint.load_bytes((Path(folder) / CKPT_NAME).read_bytes(), "the last reported checkpoint")
        restarts = int(info.history[-1].get("restarts", 0)) + 1 if info.history else 1
    elif config.get("resume_bytes"):
        net, info = checkpoint.load_bytes(config["resume_bytes"], "the checkpoint to resume")
    state = TrainState.start(space, data, train_config, device, info, net)

    def save(net_: torch.nn.Module, info_: checkpoint.Checkpoint, final: bool = False) -> None:
        if info_.history and "restarts" not in info_.history[-1]:
            info_.history[-1]["restarts"] = restarts  # how many times this run came back before this epoch
        metrics = {"epoch": info_.epoch, "final": final, **(info_.history[-1] if info_.history else {})}
        if rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                checkpoint.save(Path(tmp) / CKPT_NAME, net_, info_)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)

    run_epochs(state, save, ranks=GradientAverager(rank, world))
    finish(space, data, state.net, state.info)
    save(state.net, state.info, final=True)


def train_distributed(space, dataset: str, config, out: str | Path, workers: int, gpus_per_worker: float = 0.0,
                      address: str | None = None, resume: bool = False,
                      storage: str | Path | None = None) -> checkpoint.Checkpoint:
    """Train a supernet of ``space`` on ``dataset`` with ``workers`` Ray Train workers (each with
    ``gpus_per_worker`` GPUs; 0 trains on CPUs over gloo), on a local Ray or the cluster at
    ``address``; the final checkpoint is written to ``out``. ``storage``: where Ray Train keeps
    each epoch's checkpoint (a temporary folder by default)."""
    if workers < 1:
        raise NasError(f"--workers must be at least 1, got {workers}")
    if gpus_per_worker < 0:
        raise NasError(f"--gpus-per-worker must not be negative, got {gpus_per_worker}")
    out = Path(out)
    resume_bytes = out.read_bytes() if resume else None
    import os

    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from nas.ray_session import start_ray, stop_ray

    with tempfile.TemporaryDirectory(prefix="nas-train-") as tmp:
        started = start_ray(max(workers + 1, os.cpu_count() or 1), address, None if address else tmp)
        try:
            trainer = TorchTrainer(
                _loop,
                train_loop_config={"space_yaml": space.source_text, "dataset": dataset, "train": asdict(config),
                                   "resume_bytes": resume_bytes},
                torch_config=TorchConfig(backend="nccl" if gpus_per_worker > 0 else "gloo"),
                scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=gpus_per_worker > 0,
                                                       resources_per_worker={"CPU": 1, **({"GPU": gpus_per_worker}
                                                                                          if gpus_per_worker else {})}),
                run_config=ray.train.RunConfig(name="nas-supernet",
                                               storage_path=str(Path(storage).resolve() if storage else Path(tmp) / "train"),
                                               failure_config=ray.train.FailureConfig(max_failures=MAX_FAILURES)),
            )
            try:
                result = trainer.fit()
            except Exception as exc:  # a worker's failure comes back wrapped: one line of its cause
                cause = exc.__cause__ or exc
                raise NasError(f"distributed training failed: {type(cause).__name__}: {first_line(cause)}") from None
            if result.checkpoint is None:
                raise NasError("distributed training ended without a checkpoint")
            with result.checkpoint.as_directory() as folder:
                data = (Path(folder) / CKPT_NAME).read_bytes()
        finally:
            if started:
                stop_ray()
    from nas.atomic import atomic_path

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp_path:
        Path(tmp_path).write_bytes(data)
    return checkpoint.load(out)[1]
