"""Zero-cost proxies at initialisation: what each one measures, on small real data (digits)."""

from __future__ import annotations

import math

import pytest
import torch

from nas.errors import NasError
from nas.space import load
from nas.supernet.proxies import PROXIES, fresh_supernet, grad_norm, naswot, score_arch, synflow
from tests.conftest import DATA

SPACE = DATA / "tiny-vision.yaml"


@pytest.fixture(scope="module")
def space():
    return load(str(SPACE))


@pytest.fixture(scope="module")
def batch(digits):
    return digits.x_train[:128], digits.y_train[:128]


def arch(space, mixer: str, ffn: str, width: int = 16):
    return space.parse(f"{width}:{mixer}+{ffn}/16:{mixer}+{ffn}")


@pytest.mark.parametrize("mixer", ["conv3", "attn1", "ssm4x1"])
@pytest.mark.parametrize("ffn", ["mlp2", "moe2k1"])
def test_every_block_kind_gets_finite_scores(space, batch, mixer, ffn):
    scores = score_arch(fresh_supernet(space), arch(space, mixer, ffn), *batch)
    assert set(scores) == set(PROXIES)
    assert all(math.isfinite(v) and v > 0 for v in scores.values()), scores


def test_naswot_sees_the_activations_of_every_block(space, batch):
    """The pattern grows with the blocks' activations: a deeper subnet has a longer code, and so a
    larger kernel (more agreeing units) and a larger log-determinant for the same batch."""
    supernet = fresh_supernet(space)
    x = torch.as_tensor(batch[0][:64])
    shallow = supernet.extract(space.parse("16:ssm4x1+mlp2/16:ssm4x1+mlp2"), tuple(x.shape[1:]))
    deep = supernet.extract(space.parse("16:ssm4x1+mlp2,ssm4x1+mlp2/16:ssm4x1+mlp2"), tuple(x.shape[1:]))
    assert naswot(deep, x) > naswot(shallow, x)


def test_naswot_is_minus_infinity_when_samples_cannot_be_told_apart(space, batch):
    net = fresh_supernet(space).extract(arch(space, "conv3", "mlp2"), (1, 8, 8))
    same = torch.as_tensor(batch[0][:1]).repeat(16, 1, 1, 1)
    assert naswot(net, same) == float("-inf")
    assert math.isfinite(naswot(net, torch.as_tensor(batch[0][:16])))


def test_synflow_grows_with_width_and_leaves_the_network_alone(space, batch):
    supernet = fresh_supernet(space)
    x = torch.as_tensor(batch[0])
    narrow = supernet.extract(arch(space, "conv3", "mlp2", width=8), (1, 8, 8))
    wide = supernet.extract(arch(space, "conv3", "mlp2", width=16), (1, 8, 8))
    before = [p.detach().clone() for p in wide.parameters()]
    assert synflow(wide, x) > synflow(narrow, x)
    assert all(torch.equal(a, b) for a, b in zip(before, wide.parameters(), strict=True))
    assert all(p.grad is None for p in wide.parameters())


def test_grad_norm_is_the_summed_gradient_norms_and_clears_them(space, batch):
    net = fresh_supernet(space).extract(arch(space, "attn1", "mlp2"), (1, 8, 8))
    x, y = torch.as_tensor(batch[0]), torch.as_tensor(batch[1])
    score = grad_norm(net, x, y)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    assert score == pytest.approx(sum(float(p.grad.norm()) for p in net.parameters() if p.grad is not None), rel=1e-5)
    net.zero_grad(set_to_none=True)
    grad_norm(net, x, y)
    assert all(p.grad is None for p in net.parameters())


def test_scores_depend_on_the_initialisation_seed_only(space, batch):
    a = arch(space, "ssm4x1", "moe2k1")
    first = score_arch(fresh_supernet(space, seed=1), a, *batch)
    assert score_arch(fresh_supernet(space, seed=1), a, *batch) == first
    assert score_arch(fresh_supernet(space, seed=2), a, *batch) != first


def test_an_unknown_proxy_is_named(space, batch):
    with pytest.raises(NasError, match="unknown proxy 'jacov'"):
        score_arch(fresh_supernet(space), arch(space, "conv3", "mlp2"), *batch, names=["jacov"])


# Fine-tuning before scoring: the evaluation protocol experiments/supernet_ranking.py measures.

def test_finetune_trains_the_extracted_subnet_only_and_is_seeded(search_env, digits):
    from nas.supernet import checkpoint
    from nas.supernet.scoring import finetune

    supernet, _ = checkpoint.load(search_env["mcu-vision"])
    before = [p.detach().clone() for p in supernet.parameters()]
    a = supernet.extract(load("mcu-vision").smallest(), (1, 8, 8))
    b = supernet.extract(load("mcu-vision").smallest(), (1, 8, 8))
    x, y = torch.as_tensor(digits.x_train), torch.as_tensor(digits.y_train)
    with torch.no_grad():
        loss_before = float(torch.nn.functional.cross_entropy(a(x), y))
    finetune(a, digits.x_train, digits.y_train, steps=30, seed=3)
    finetune(b, digits.x_train, digits.y_train, steps=30, seed=3)
    with torch.no_grad():
        assert float(torch.nn.functional.cross_entropy(a(x), y)) < loss_before
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert all(torch.equal(p, q) for p, q in zip(before, supernet.parameters(), strict=True))


def test_a_search_can_score_subnets_after_fine_tuning(search_env, digits, tmp_path):
    from nas.evaluate import SupernetEvaluator
    from nas.runner import SearchConfig, search
    from nas.store import Store

    plain = SupernetEvaluator.from_files(search_env["mcu-vision"], ["mcu-m7"], val_examples=200)
    tuned = SupernetEvaluator.from_files(search_env["mcu-vision"], ["mcu-m7"], val_examples=200, finetune_steps=20)
    shipped = SupernetEvaluator.from_payload(tuned.payload())
    arch = plain.space.smallest()
    assert len(tuned.finetune[1]) == len(tuned.finetune[2]) == min(20 * 128, len(digits.x_train))
    assert tuned.evaluate(arch)["accuracy"] == shipped.evaluate(arch)["accuracy"] == tuned.evaluate(arch)["accuracy"]
    assert tuned.evaluate(arch)["accuracy"] > plain.evaluate(arch)["accuracy"]  # a briefly trained supernet gains
    assert "20 fine-tuning steps" in tuned.sources()["accuracy"]
    db = str(tmp_path / "ft.db")
    result = search(SearchConfig(supernet=str(search_env["mcu-vision"]), targets=("mcu-m7",), budget=4, workers=0,
                                 db=db, experiment="ft", val_examples=200, finetune_steps=5))
    assert result.total == 4
    assert all(0 <= r.metrics["accuracy"] <= 1 for r in Store(db, readonly=True).evaluations("ft"))


def test_negative_finetune_steps_are_one_line(search_env, tmp_path, cli):
    from tests.conftest import assert_one_line_error

    assert_one_line_error(cli("search", "--supernet", search_env["mcu-vision"], "--target", "mcu-m7", "--workers", "0",
                              "--db", tmp_path / "x.db", "--finetune-steps", "-1"), "--finetune-steps")
