"""Tests for seqgan_env.models.discriminator: losses, accumulation, training step, checkpoints."""

import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

from seqgan_env.models.discriminator import (
    LOSSES,
    META_FILE,
    OPTIM_FILE,
    WEIGHTS_FILE,
    Discriminator,
    DiscriminatorConfig,
    get_loss,
    num_outputs_for,
)
from seqgan_env.models.networks import ModelConfig

VOCAB = 12
PAD, EOS = 0, 2
ALL_LOSSES = sorted(LOSSES)


def tiny_model(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(hidden_size=16, intermediate_size=32, num_heads=2,
                                 num_layers=2, max_position_embeddings=32), **kw})


def make_disc(loss="bce", seed=0, model_kw=None, **cfg_kw) -> Discriminator:
    return Discriminator(VOCAB, tiny_model(**(model_kw or {})),
                         DiscriminatorConfig(loss=loss, **cfg_kw), seed=seed)


def batch(n, T=8, seed=0, low=3, high=VOCAB) -> torch.Tensor:
    """(n, T) env-style observations: symbols, EOS, right PAD; varying lengths."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, T), PAD)
    for i in range(n):
        length = int(torch.randint(1, T, (1,), generator=g))  # symbols before EOS
        x[i, :length] = torch.randint(low, high, (length,), generator=g)
        x[i, length] = EOS
    return x


def params_of(d: Discriminator) -> list[torch.Tensor]:
    return [p.detach().clone() for p in d.net.parameters()]


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("kw, needle", [
    (dict(loss="hinge"), "loss"),
    (dict(real_label=0.0), "real_label"),
    (dict(real_label=1.5), "real_label"),
    (dict(fake_label=1.0), "fake_label"),
    (dict(fake_label=-0.1), "fake_label"),
    (dict(real_label=0.3, fake_label=0.4), "fake_label"),
    (dict(lr=0.0), "lr"),
    (dict(lr=float("inf")), "lr"),
    (dict(betas=(0.9, 1.0)), "betas"),
    (dict(betas=(0.9,)), "betas"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(grad_accum_steps=0), "grad_accum_steps"),
    (dict(grad_accum_steps=2.0), "grad_accum_steps"),
    (dict(max_grad_norm=0.0), "max_grad_norm"),
    (dict(onecycle_total_steps=1), "onecycle_total_steps"),
    (dict(prefix_loss="yes"), "prefix_loss"),
])
def test_config_rejects(kw, needle):
    with pytest.raises(ValueError, match=needle):
        DiscriminatorConfig(**kw)


def test_config_accepts_list_betas_and_none_clipping():
    cfg = DiscriminatorConfig(betas=[0.5, 0.9], max_grad_norm=None)
    assert cfg.betas == (0.5, 0.9) and cfg.max_grad_norm is None


# ---------------------------------------------------------------- losses


def test_registry_and_num_outputs():
    assert set(LOSSES) == {"bce", "mse", "ce"}
    assert [num_outputs_for(n) for n in ("bce", "mse", "ce")] == [1, 1, 2]
    with pytest.raises(ValueError, match="bce"):
        get_loss("wasserstein")
    with pytest.raises(ValueError, match="valid names"):
        num_outputs_for("nope")


# logits [0, ln 3] -> probabilities [1/2, 3/4]; targets [0.9, 0]
LN3 = math.log(3.0)
TARGET = [0.9, 0.0]


def _expected(name):
    p = [0.5, 0.75]
    if name == "bce":
        terms = [-(t * math.log(q) + (1 - t) * math.log(1 - q)) for q, t in zip(p, TARGET)]
        return sum(terms) / 2  # = 1.5 ln 2
    if name == "mse":
        return ((0.5 - 0.9) ** 2 + (0.75 - 0.0) ** 2) / 2  # = 0.36125
    # ce on class logits [[1, 1], [0, ln 3]]: softmax -> [1/2, 1/2], [1/4, 3/4]
    terms = [-((1 - t) * math.log(1 - q) + t * math.log(q)) for q, t in zip(p, TARGET)]
    return sum(terms) / 2


def test_expected_values_by_hand():
    assert _expected("bce") == pytest.approx(1.5 * math.log(2))
    assert _expected("mse") == pytest.approx(0.36125)
    assert _expected("ce") == pytest.approx(1.5 * math.log(2))


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_loss_hand_computed(name):
    if num_outputs_for(name) == 1:
        head = torch.tensor([[0.0], [LN3]])  # (N, 1)
    else:
        head = torch.tensor([[1.0, 1.0], [0.0, LN3]])  # (N, 2): [fake, real]
    got = LOSSES[name](head, torch.tensor(TARGET))
    assert got.dim() == 0
    assert got.item() == pytest.approx(_expected(name), abs=1e-6)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_loss_rejects_wrong_head_width(name):
    k = 3 - num_outputs_for(name)
    with pytest.raises(ValueError, match="num_outputs"):
        LOSSES[name](torch.zeros(4, k), torch.zeros(4))


# ---------------------------------------------------------------- construction & scoring


def test_seed_is_deterministic_and_keeps_global_rng():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = make_disc(seed=7)
    after = torch.rand(3)
    torch.testing.assert_close(before, after)  # global RNG untouched
    b = make_disc(seed=7)
    for p, q in zip(a.net.parameters(), b.net.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_score_shapes_and_consistency(name):
    d = make_disc(name)
    assert not d.net.training
    x = batch(4, seed=1)
    logits = d.score_logits(x)
    probs = d.score(x)
    seq = d.sequence_scores(x)
    assert logits.shape == probs.shape == (4, 8) and seq.shape == (4,)
    assert not logits.requires_grad
    torch.testing.assert_close(probs, torch.sigmoid(logits))
    last = (x != PAD).long().cumsum(1).argmax(1)  # first index of the max = last real token
    torch.testing.assert_close(seq, probs[torch.arange(4), last])
    # numpy input and left padding with a mask
    torch.testing.assert_close(d.score(x.numpy()), probs)
    left = torch.stack([torch.roll(r, int((r == PAD).sum())) for r in x])
    seq_left = d.sequence_scores(left, (left != PAD).long())
    torch.testing.assert_close(seq_left, seq, atol=1e-5, rtol=0)


def test_score_rejects_bad_shapes():
    d = make_disc()
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        d.score(torch.tensor([3, 4, EOS]))


# ---------------------------------------------------------------- gradient accumulation


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("prefix_loss", [True, False])
def test_grad_accumulation_is_exact(name, k, prefix_loss):
    real, fake = batch(8, seed=2), batch(6, seed=3)  # unequal sizes and lengths
    grads = []
    losses = []
    for steps in (1, k):
        d = make_disc(name, seed=0, grad_accum_steps=steps, prefix_loss=prefix_loss)
        d.optimizer.zero_grad(set_to_none=True)
        d.net.train()
        stats = d._accumulate_grads(real, fake)
        grads.append([p.grad.clone() for p in d.net.parameters()])
        losses.append(stats["loss"].item())
        assert stats["real_logits"].shape == (8,) and stats["fake_logits"].shape == (6,)
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    for g1, gk in zip(*grads):
        torch.testing.assert_close(g1, gk, atol=1e-5, rtol=0)


def test_accumulation_needs_enough_rows():
    d = make_disc(grad_accum_steps=4)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        d.update(batch(8), batch(3))
    assert not d.net.training and d.num_updates == 0


def test_update_equals_manual_full_batch_loss():
    """The accumulated loss is 0.5*mean(real positions) + 0.5*mean(fake positions)."""
    d = make_disc("bce", real_label=0.9, fake_label=0.0, prefix_loss=True)
    real, fake = batch(4, seed=4), batch(3, seed=5)
    with torch.no_grad():
        lr_, lf = d.net(real).logits, d.net(fake).logits  # (B, T)
    pos = torch.arange(8)

    def mean_bce(logits, x, t):
        last = (x != PAD).long().cumsum(1).argmax(1)
        sel = pos[None] <= last[:, None]
        p = torch.sigmoid(logits[sel]).double()
        return float(-(t * p.log() + (1 - t) * (1 - p).log()).mean())

    expected = 0.5 * mean_bce(lr_, real, 0.9) + 0.5 * mean_bce(lf, fake, 0.0)
    stats = d.update(real, fake)
    assert stats["loss"] == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- update


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_update_changes_params_and_reports_metrics(name):
    d = make_disc(name)
    before = params_of(d)
    stats = d.update(batch(6, seed=6), batch(6, seed=7))
    assert set(stats) == {"loss", "acc_real", "acc_fake", "grad_norm", "lr"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())
    assert 0.0 <= stats["acc_real"] <= 1.0 and 0.0 <= stats["acc_fake"] <= 1.0
    assert stats["lr"] == pytest.approx(1e-3)
    assert any(not torch.equal(a, b) for a, b in zip(before, d.net.parameters()))
    assert d.num_updates == 1 and not d.net.training
    assert all(p.grad is None for p in d.net.parameters())


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_update_learns_to_separate(name):
    d = make_disc(name, lr=2e-2, real_label=1.0)
    real = batch(8, seed=8, low=3, high=6)  # symbols 3..5
    fake = batch(8, seed=9, low=8, high=VOCAB)  # symbols 8..11
    for _ in range(12):
        stats = d.update(real, fake)
    assert stats["acc_real"] == 1.0 and stats["acc_fake"] == 1.0
    assert (d.sequence_scores(real) > 0.5).all() and (d.sequence_scores(fake) < 0.5).all()


def test_clipping_bounds_the_step():
    d = make_disc(max_grad_norm=1e-3, lr=1.0, betas=(0.0, 0.0))
    stats = d.update(batch(4), batch(4, seed=1))
    assert stats["grad_norm"] > 1e-3  # reported before clipping
    d2 = make_disc(max_grad_norm=None)
    assert math.isfinite(d2.update(batch(4), batch(4, seed=1))["grad_norm"])


def test_dropout_off_when_scoring_and_eval_after_update():
    d = make_disc(model_kw=dict(attention_dropout=0.5))
    x = batch(4, seed=10)
    torch.testing.assert_close(d.score(x), d.score(x), atol=0, rtol=0)
    d.update(batch(4, seed=11), batch(4, seed=12))
    assert not d.net.training
    torch.testing.assert_close(d.score(x), d.score(x), atol=0, rtol=0)


def test_non_finite_loss_raises_without_stepping():
    d = make_disc()
    with torch.no_grad():
        d.net.head.bias.fill_(float("nan"))
    before = params_of(d)
    with pytest.raises(FloatingPointError, match="no optimizer step"):
        d.update(batch(4), batch(4, seed=1))
    assert d.num_updates == 0 and not d.net.training
    for a, b in zip(before, d.net.parameters()):
        torch.testing.assert_close(a, b.detach(), equal_nan=True, atol=0, rtol=0)
    assert not d.optimizer.state  # AdamW never stepped


def test_onecycle_changes_lr_and_beta1():
    d = make_disc(lr=1e-2, onecycle_total_steps=6)
    lrs, beta1s = [], []
    for i in range(9):  # runs past the end of the schedule without error
        beta1s.append(d.optimizer.param_groups[0]["betas"][0])
        lrs.append(d.update(batch(4, seed=i), batch(4, seed=100 + i))["lr"])
    assert len(set(lrs)) > 3 and len(set(beta1s)) > 3
    assert 0.5e-2 < max(lrs) <= 1e-2 + 1e-12  # peaks near max_lr=lr
    assert lrs[0] < max(lrs) and lrs[5] < max(lrs)
    assert max(beta1s) <= 0.9 + 1e-12 and min(beta1s) == pytest.approx(0.85, abs=1e-3)
    assert lrs[-1] == lrs[-2] == lrs[-3]  # held at the final value


# ---------------------------------------------------------------- state & checkpoints


def test_state_dict_sync_and_shape_mismatch():
    a, b = make_disc(seed=1), make_disc(seed=2)
    x = batch(3)
    assert not torch.allclose(a.score(x), b.score(x))
    sd = a.state_dict()
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in sd.values())
    b.load_state_dict(sd)
    torch.testing.assert_close(a.score(x), b.score(x), atol=0, rtol=0)
    wide = make_disc(model_kw=dict(hidden_size=32, intermediate_size=64, num_heads=4))
    with pytest.raises(ValueError, match="shape"):
        b.load_state_dict(wide.state_dict())
    with pytest.raises(ValueError, match="missing keys"):
        b.load_state_dict({k: v for k, v in sd.items() if "head" not in k})


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("onecycle", [None, 5])
def test_save_load_round_trip(tmp_path, name, onecycle):
    d = make_disc(name, onecycle_total_steps=onecycle, grad_accum_steps=2, weight_decay=0.01)
    d.update(batch(4, seed=1), batch(4, seed=2))
    d.update(batch(4, seed=3), batch(4, seed=4))
    d.save(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([WEIGHTS_FILE, OPTIM_FILE, META_FILE])
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["num_updates"] == 2 and meta["vocab_size"] == VOCAB
    assert (meta["scheduler"] is None) == (onecycle is None)

    e = Discriminator.load(tmp_path)
    assert e.config == d.config and e.model_config == d.model_config
    assert e.num_updates == 2 and not e.net.training
    x = batch(5, seed=5)
    torch.testing.assert_close(e.score(x), d.score(x), atol=0, rtol=0)
    assert e.optimizer.param_groups[0]["lr"] == d.optimizer.param_groups[0]["lr"]
    assert e.optimizer.param_groups[0]["betas"] == d.optimizer.param_groups[0]["betas"]

    real, fake = batch(4, seed=6), batch(4, seed=7)
    sd_, se = d.update(real, fake), e.update(real, fake)
    assert sd_ == pytest.approx(se, abs=1e-6)
    for p, q in zip(d.net.parameters(), e.net.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    if onecycle is not None:
        assert e.scheduler.last_epoch == d.scheduler.last_epoch


def test_save_before_any_update(tmp_path):
    d = make_disc()
    d.save(tmp_path)
    e = Discriminator.load(tmp_path)
    torch.testing.assert_close(e.score(batch(2)), d.score(batch(2)), atol=0, rtol=0)


@pytest.mark.parametrize("fname", [WEIGHTS_FILE, OPTIM_FILE])
def test_truncated_safetensors_names_the_file(tmp_path, fname):
    d = make_disc()
    d.update(batch(4), batch(4, seed=1))
    d.save(tmp_path)
    path = tmp_path / fname
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=fname):
        Discriminator.load(tmp_path)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=fname):
        Discriminator.load(tmp_path)


def test_missing_or_corrupt_json(tmp_path):
    d = make_disc()
    d.save(tmp_path)
    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=META_FILE):
        Discriminator.load(tmp_path)
    os.remove(tmp_path / META_FILE)
    with pytest.raises(ValueError, match="missing"):
        Discriminator.load(tmp_path)
    d.save(tmp_path)
    os.remove(tmp_path / WEIGHTS_FILE)
    with pytest.raises(ValueError, match=WEIGHTS_FILE):
        Discriminator.load(tmp_path)


def test_shape_mismatch_on_load(tmp_path):
    small, wide = tmp_path / "small", tmp_path / "wide"
    make_disc().save(small)
    w = make_disc(model_kw=dict(hidden_size=32, intermediate_size=64, num_heads=4))
    w.update(batch(4), batch(4, seed=1))
    w.save(wide)
    shutil.copy(wide / WEIGHTS_FILE, small / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="shape"):
        Discriminator.load(small)
    # optimizer moments of the wrong shape
    make_disc().save(small)
    shutil.copy(wide / OPTIM_FILE, small / OPTIM_FILE)
    with pytest.raises(ValueError, match=OPTIM_FILE):
        Discriminator.load(small)


def test_save_is_atomic_no_temp_files_left(tmp_path):
    d = make_disc()
    for _ in range(2):
        d.save(tmp_path)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    assert np.isfinite(Discriminator.load(tmp_path).score(batch(2)).numpy()).all()


# ---------------------------------------------------------------- whole-sequence loss weight


def _loss_and_grads(**cfg):
    d = make_disc("bce", seed=0, **cfg)
    d.optimizer.zero_grad(set_to_none=True)
    d.net.train()
    stats = d._accumulate_grads(batch(8, seed=2), batch(6, seed=3))
    return stats["loss"].item(), [p.grad.clone() for p in d.net.parameters()]


@pytest.mark.parametrize("k", [1, 3])
def test_sequence_weight_mixes_prefix_and_whole_sequence_losses(k):
    prefix, g_prefix = _loss_and_grads(prefix_loss=True, grad_accum_steps=k)
    last, g_last = _loss_and_grads(prefix_loss=False, grad_accum_steps=k)
    mixed, g_mixed = _loss_and_grads(prefix_loss=True, sequence_weight=0.25, grad_accum_steps=k)
    only_seq, g_seq = _loss_and_grads(prefix_loss=True, sequence_weight=1.0, grad_accum_steps=k)
    assert abs(prefix - last) > 1e-3  # the two losses differ, so the checks below can fail
    assert mixed == pytest.approx(0.75 * prefix + 0.25 * last, abs=1e-6)
    assert only_seq == pytest.approx(last, abs=1e-6)
    for gm, gp, gl, gs in zip(g_mixed, g_prefix, g_last, g_seq):
        torch.testing.assert_close(gm, 0.75 * gp + 0.25 * gl, atol=1e-5, rtol=0)
        torch.testing.assert_close(gs, gl, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_sequence_weight_validation(bad):
    with pytest.raises(ValueError, match="sequence_weight"):
        DiscriminatorConfig(sequence_weight=bad)
