"""The density-ratio discriminator: validated recipe, early stopping keeps the best, alpha chosen on validation."""

from __future__ import annotations

import pytest
import torch

from seqgan_env.envs.spec import EOS_ID, PAD_ID
from seqgan_env.eval import ratio_d
from seqgan_env.models.networks import ModelConfig, build_generator
from seqgan_env.eval.ratio_d import RatioDConfig, fit_ratio_d
from seqgan_env.models.tilted import tilted_nll_by_alpha

V, L = 6, 4
GEN = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=16)
TINY = dict(steps=6, batch_size=8, pool_size=40, eval_every=2, gain_samples=16, hidden_size=8, num_layers=1)


def _rows(n: int, seed: int) -> torch.Tensor:
    """(n, L) rows the env could write: 1-3 symbols (ids 3..5), EOS, PAD."""
    g = torch.Generator().manual_seed(seed)
    out = torch.full((n, L), PAD_ID)
    for i in range(n):
        k = int(torch.randint(1, L, (1,), generator=g))
        out[i, :k] = torch.randint(3, V, (k,), generator=g)
        out[i, k] = EOS_ID
    return out


def _setup():
    torch.manual_seed(0)
    gen = build_generator(GEN, V)
    return gen, (lambda n, s: _rows(n, 100 + s))  # the "generator samples": another stream of rows


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, "steps=0"), ({"fakes_per_real": 0}, "fakes_per_real=0"), ({"pool_size": -1}, "pool_size"),
    ({"patience": -1}, "patience"), ({"dropout": 1.0}, "dropout"), ({"weight_decay": -0.1}, "weight_decay"),
    ({"lr": 0.0}, "lr"), ({"hidden_size": 12}, "multiple of 8"), ({"alphas": (0.5, 1.0)}, "including 0"),
    ({"alphas": (0.0, float("nan"))}, "alphas"), ({"alphas": ()}, "alphas"), ({"gain_samples": 1}, "gain_samples"),
])
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RatioDConfig(**kwargs)


def test_fresh_d_has_hard_labels_and_prefix_loss():
    d = RatioDConfig(hidden_size=16, dropout=0.1, weight_decay=0.01).discriminator(V, L)
    assert (d.config.real_label, d.config.fake_label, d.config.prefix_loss, d.config.loss) == (1.0, 0.0, True, "bce")
    assert d.model_config.hidden_size == 16 and d.model_config.attention_dropout == 0.1
    assert d.config.weight_decay == 0.01


def test_fit_runs_and_alpha_is_argmin_on_validation():
    gen, sample = _setup()
    train, valid = _rows(64, 1), _rows(24, 2)
    res = fit_ratio_d(gen, sample, train, valid, RatioDConfig(**TINY, patience=0))
    assert res.steps == 6 and [h["step"] for h in res.history] == [2, 4, 6]
    best = min(res.history, key=lambda h: h["best_valid_nll"])
    if best["best_valid_nll"] < res.valid_nll_generator:
        assert (res.best_step, res.alpha) == (best["step"], best["alpha"])
    else:
        assert (res.best_step, res.alpha) == (0, 0.0)
    # the kept weights are the chosen ones: their validation NLL at alpha is the reported number
    curve = tilted_nll_by_alpha(gen, res.discriminator, valid, [0.0, res.alpha])
    assert curve[res.alpha] == pytest.approx(res.valid_nll, abs=1e-5)
    assert curve[0.0] == pytest.approx(res.valid_nll_generator, abs=1e-5)
    assert {"d_gain_nats", "d_gain_nats_per_token", "d_gain_ess"} <= set(res.history[0])
    assert res.summary()["d_steps"] == 6 and "discriminator" not in res.summary()


def test_early_stopping_keeps_the_best_weights(monkeypatch):
    """Validation NLL by evaluation 1.0 (step 0), 0.9, 0.8, 0.85, 0.95 -> stop after patience 2, keep step 4."""
    gen, sample = _setup()
    seen: dict[int, dict[str, torch.Tensor]] = {}
    script = iter([1.0, 0.9, 0.8, 0.85, 0.95, 0.7])

    def fake_evaluate(generator, disc, valid, gain_fakes, alphas, step):
        seen[step] = disc.state_dict()
        v = next(script)
        return {"step": step, "valid_nll": {"0.0": 1.0, "0.5": v}, "alpha": 0.5 if v < 1.0 else 0.0,
                "best_valid_nll": v, "d_gain_nats": 0.0}

    monkeypatch.setattr(ratio_d, "_evaluate", fake_evaluate)
    res = fit_ratio_d(gen, sample, _rows(32, 1), _rows(8, 2), RatioDConfig(**{**TINY, "steps": 20}, patience=2))
    assert res.steps == 8 and res.best_step == 4 and res.alpha == 0.5 and res.valid_nll == 0.8
    kept = res.discriminator.state_dict()
    assert all(torch.equal(kept[k], seen[4][k]) for k in kept)
    assert not all(torch.equal(kept[k], seen[8][k]) for k in kept)  # training moved on; the best was restored


def test_useless_d_chooses_the_generator(monkeypatch):
    gen, sample = _setup()
    monkeypatch.setattr(ratio_d, "_evaluate", lambda g, d, v, f, a, step: {
        "step": step, "valid_nll": {"0.0": 1.0}, "alpha": 0.0, "best_valid_nll": 1.0 + 0.01 * step, "d_gain_nats": 0.0})
    res = fit_ratio_d(gen, sample, _rows(32, 1), _rows(8, 2), RatioDConfig(**TINY, patience=1))
    assert (res.best_step, res.alpha, res.steps) == (0, 0.0, 2)


@pytest.mark.parametrize("bad,match", [("train", "train_rows must be"), ("valid_vocab", "outside"),
                                       ("length", "length")])
def test_bad_rows_are_named(bad, match):
    gen, sample = _setup()
    train, valid = _rows(16, 1), _rows(8, 2)
    if bad == "train":
        train = torch.zeros(0, L, dtype=torch.long)
    elif bad == "valid_vocab":
        valid = valid.clone()
        valid[0, 0] = V
    else:
        valid = valid[:, :3]
    with pytest.raises(ValueError, match=match):
        fit_ratio_d(gen, sample, train, valid, RatioDConfig(**TINY))
