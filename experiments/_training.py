"""The training step's rate, as the supernet trains (the GPU check and the MoE batching study both time it)."""

from __future__ import annotations

import time

import numpy as np
import torch


def sandwich_rate(device: torch.device, batch: int, steps: int, precision: str = "fp32") -> float:
    """Samples per second of the training step, after two warm-up steps."""
    from nas.data import load_dataset
    from nas.space import load
    from nas.supernet.train import TrainConfig, TrainState, run_epochs

    space = load("hybrid-vision")
    data = load_dataset("digits")  # only the step's cost matters here, not the data
    shape = (1, 28, 28)
    rng = np.random.default_rng(0)
    n = batch * (steps + 2)
    data = type(data)("synthetic", rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, 10, n),
                      data.x_val[:0].reshape(0, *shape), data.y_val[:0], data.x_test[:0].reshape(0, *shape),
                      data.y_test[:0], 10)
    config = TrainConfig(epochs=1, batch_size=batch, precision=precision, log_every=10**9)
    state = TrainState.start(space, data, config, device)
    timings: list[float] = []

    class Clock:
        def epoch_started(self, *a) -> None:
            pass

        def steps_done(self, *a) -> None:
            pass

        def epoch_done(self, record) -> None:
            pass

    started = time.perf_counter()
    run_epochs(state, lambda *_: None, Clock())
    if device.type == "cuda":
        torch.cuda.synchronize()
    timings.append(time.perf_counter() - started)
    # the epoch ends with two validation passes on empty splits: negligible
    return n / timings[0]
