"""Device-agnostic model code: every block kind and every shipped space's supernet runs forward
and backward on PyTorch's ``meta`` device (a tensor made on an implicit device, or a host sync
such as ``.item()``, fails there), and the same on CUDA where a GPU is present."""

from __future__ import annotations

import random

import pytest
import torch

from nas.blocks import Aux, block_class
from nas.space import Ffn, Mixer, kinds, load, shipped_spaces
from nas.supernet import Supernet, SupernetConfig

DEVICES = ["meta", pytest.param("cuda", marks=[pytest.mark.gpu,
                                               pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")])]
OPTIONS = {"conv": Mixer("conv", kernel=3), "attention": Mixer("attention", heads=2),
           "ssm": Mixer("ssm", state=8, expand=2), "mlp": Ffn("mlp", ratio=2), "moe": Ffn("moe", experts=4, top_k=2)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", [k.name for k in kinds()])
def test_every_block_kind_runs_forward_and_backward_on_the_device(kind, device):
    from nas.space import BlockSettings

    op = OPTIONS[kind]
    with torch.device(device):
        block = block_class(kind).build(op, 16, BlockSettings(attention_head_dim=8, ssm_head_dim=8), 1)
        x = torch.randn(2, 12, 16, requires_grad=True)
    aux = Aux(margins=[])
    y = block(x, (12,), 16, op, aux) if op.role == "ffn" else block(x, (12,), 16, op)
    (y.sum() + sum(aux.losses)).backward()
    assert y.device.type == device and x.grad is not None and x.grad.device.type == device
    assert all(m.device.type == device for m in aux.margins)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", [n for n in shipped_spaces() if load(n).kind == "net"])
def test_every_shipped_supernet_trains_a_step_on_the_device(name, device):
    space = load(name)
    with torch.device(device):
        net = Supernet(SupernetConfig.from_space(space))
        text = space.task.kind == "text"  # tokens in, next-token logits at every position out
        x = torch.randint(0, space.task.num_classes, (2, *space.task.input_shape)) if text \
            else torch.randn(2, *space.task.input_shape)
    want = (2, *space.task.input_shape, space.task.num_classes) if text else (2, space.task.num_classes)
    archs = [space.largest(), space.smallest(), *space.sample_unique(random.Random(0), 2)]
    for arch in archs:
        aux = Aux()
        logits = net(x, arch, aux=aux)
        (logits.logsumexp(-1).mean() + 0.01 * sum(aux.losses)).backward()
        assert logits.shape == want and logits.device.type == device
    assert all(p.grad is None or p.grad.device.type == device for p in net.parameters())
    sub = net.extract(archs[-1], space.task.input_shape)
    assert sub(x).device.type == device


def test_devices_resolve_and_refuse_what_is_not_here():
    from nas.errors import NasError
    from nas.supernet.devices import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(NasError, match="no GPU is present"):
            resolve_device("cuda:0")
    with pytest.raises(NasError, match="is not a device"):
        resolve_device("tpu")


def test_the_training_and_latency_paths_need_no_ray_optuna_sqlalchemy_or_streamlit():
    """What a bare GPU machine has (torch, onnx, onnxruntime, numpy, scipy, pandas, scikit-learn,
    pyyaml, typer, rich, matplotlib) is enough to train, evaluate and build latency profiles."""
    import subprocess
    import sys

    code = ("import sys; import nas.supernet.train, nas.supernet.distributed, nas.latency.build, nas.latency.validate, "
            "nas.latency.targets, nas.evaluate.supernet, nas.data, nas.cli.supernet_cmd, nas.cli.latency_cmd; "
            "bad = [m for m in ('ray', 'optuna', 'sqlalchemy', 'streamlit', 'alembic', 'plotly') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""
