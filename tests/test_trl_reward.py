"""The TRL reward function and D-update callback, without TRL: rows, rewards, schedule, checkpoints, errors.

These need only transformers and tokenizers (core dependencies); the GRPO / RLOO runs are in
test_trl_grpo.py, which needs the ``trl`` extra.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from seqgan_env.data.tokenizer import EOS_ID, PAD_ID
from seqgan_env.integrations.trl import (
    ID_OFFSET,
    DiscriminatorRewardFunction,
    DiscriminatorTrainerCallback,
    build_discriminator,
)
from seqgan_env.models.discriminator import DiscriminatorConfig
from seqgan_env.models.networks import ModelConfig
from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig
from tests._hf_tiny import char_tokenizer

TINY_D = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=8)
REAL = ["anna", "bob", "cora", "dave", "emma", "finn", "gina", "hugo"]


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def _reward(tok, max_length=5, transform="prob", real=REAL, **kw):
    d = build_discriminator(tok, max_length, TINY_D, DiscriminatorConfig(lr=3e-3), seed=0)
    return DiscriminatorRewardFunction(d, tok, real, max_length, transform=transform, **kw)


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_rows_follow_one_rule_for_real_and_fake(tok):
    r = _reward(tok, max_length=4)
    a, b, c, d = (i + ID_OFFSET for i in _ids(tok, "abcd"))  # discriminator ids of the characters
    eos = tok.eos_token_id
    real = r.rows([_ids(tok, "ab"), _ids(tok, "abcd"), _ids(tok, "abcde")], [True, True, True])
    assert real.tolist() == [[a, b, EOS_ID, PAD_ID],  # finished and shorter than max_length: EOS
                             [a, b, c, d],  # fills max_length: no EOS, as the env
                             [a, b, c, d]]  # longer: cut to max_length
    fake = r.completion_rows([_ids(tok, "ab") + [eos], _ids(tok, "ab"), _ids(tok, "abcd") + [eos]])
    assert fake.tolist() == [[a, b, EOS_ID, PAD_ID],  # TRL keeps the EOS; it becomes ours
                             [a, b, PAD_ID, PAD_ID],  # ran out of max_completion_length: unfinished, no EOS
                             [a, b, c, d]]
    assert torch.equal(fake[0], real[0]) and torch.equal(fake[2], real[1])  # same text, same row


def test_real_texts_are_encoded_once_with_the_same_rule(tok):
    r = _reward(tok, max_length=5)
    assert r.real.shape == (len(REAL), 5)
    assert torch.equal(r.real, r.completion_rows([_ids(tok, t) + [tok.eos_token_id] for t in REAL]))


@pytest.mark.parametrize("transform,expected", [
    ("prob", lambda z: torch.sigmoid(z)),
    ("centered", lambda z: 2 * torch.sigmoid(z) - 1),
    ("log", lambda z: torch.log(torch.sigmoid(z))),
    ("logit", lambda z: z),
])
def test_reward_is_the_transform_of_the_logit_at_the_last_token(tok, transform, expected):
    r = _reward(tok, max_length=5, transform=transform)
    completions = [_ids(tok, "ab") + [tok.eos_token_id], _ids(tok, "abcdefg")]
    rewards = r(prompts=["", ""], completions=["ab", "abcdefg"], completion_ids=completions)
    rows = r.completion_rows(completions)
    with torch.no_grad():
        logits = r.discriminator.net(rows).logits  # (2, 5)
    z = torch.stack([logits[0, 2], logits[1, 4]])  # the EOS of "ab"; the 5th token of the cut row
    assert rewards == pytest.approx(expected(z).tolist(), abs=1e-6)
    assert len(r.fakes) == 2 and torch.equal(torch.stack(list(r.fakes)), rows)


def test_pending_discriminator_metrics_go_out_through_log_metric_once(tok):
    r = _reward(tok)
    r.pending_metrics = {"discriminator/loss": 0.5, "discriminator/acc_real": 1.0}
    logged = []
    r(completion_ids=[[4, 5]], log_metric=lambda name, value: logged.append((name, value)), trainer_state=None)
    r(completion_ids=[[4, 5]], log_metric=lambda name, value: logged.append((name, value)))
    assert logged == [("discriminator/loss", 0.5), ("discriminator/acc_real", 1.0)]


def test_sample_fake_gives_the_newest_rows_repeating_when_short(tok):
    r = _reward(tok, buffer_size=3)
    with pytest.raises(ValueError, match="no finished completion has been scored yet"):
        r.sample_fake(2)
    eos = tok.eos_token_id
    r(completion_ids=[[4, eos], [5, eos], [6, eos], [7, eos]])  # the buffer keeps the newest 3
    newest = [row[0].item() - ID_OFFSET for row in r.sample_fake(2)]
    assert newest == [6, 7]
    assert [row[0].item() - ID_OFFSET for row in r.sample_fake(5)] == [5, 6, 7, 5, 6]


def test_only_completions_of_the_real_rows_shape_become_fakes(tok):
    """An unfinished completion shorter than max_length (no EOS, PAD at the end) has a shape no real row has."""
    r = _reward(tok, max_length=4)
    eos = tok.eos_token_id
    r(completion_ids=[[4, 5], [4, 5, eos], [4, 5, 6, 7, 8]])  # unfinished short; finished; filling max_length
    assert [row.tolist() for row in r.fakes] == [[4 + ID_OFFSET, 5 + ID_OFFSET, EOS_ID, PAD_ID],
                                                 [4 + ID_OFFSET, 5 + ID_OFFSET, 6 + ID_OFFSET, 7 + ID_OFFSET]]


def test_discriminator_updates_learn_real_from_fake(tok):
    torch.manual_seed(0)
    r = _reward(tok, max_length=5)
    fake_ids = [_ids(tok, "zzzz") + [tok.eos_token_id]] * 8
    before = r(completion_ids=fake_ids)[0]
    for _ in range(40):
        metrics = r.update_discriminator(r.sample_fake(8))
    assert r.discriminator.num_updates == 40
    assert set(metrics) >= {"loss", "acc_real", "acc_fake"}
    fake_after = r(completion_ids=fake_ids)[0]
    real_after = r(completion_ids=[_ids(tok, "anna") + [tok.eos_token_id]])[0]
    assert fake_after < before and fake_after < 0.2 < 0.6 < real_after


def _args(**kw):
    return SimpleNamespace(**{"world_size": 1, "max_completion_length": 5, "output_dir": "", **kw})


def test_callback_trains_d_every_n_steps_and_records_the_phase(tok):
    r = _reward(tok)
    cb = DiscriminatorTrainerCallback(r, DiscriminatorUpdateConfig(every=2, d_steps=3, batch_size=4))
    cb.on_train_begin(_args(), None, None)
    for step in range(1, 6):
        r(completion_ids=[[4 + step, 5, 2], [6, 7, 2]])  # what the trainer's reward call does each step (2 = EOS)
        cb.on_step_end(_args(), SimpleNamespace(global_step=step), None)
    assert r.discriminator.num_updates == 6  # phases after steps 2 and 4, 3 updates each
    assert [h["step"] for h in cb.history] == [2, 4]
    assert cb.history[-1]["discriminator/updates"] == 6
    assert r.pending_metrics == {k: v for k, v in cb.history[-1].items() if k not in ("step", "discriminator/updates")}


def test_frozen_schedule_never_trains(tok):
    r = _reward(tok)
    cb = DiscriminatorTrainerCallback(r, DiscriminatorUpdateConfig(freeze=True))
    r(completion_ids=[[4, 5, 2]])
    for step in range(1, 4):
        cb.on_step_end(_args(), SimpleNamespace(global_step=step), None)
    assert r.discriminator.num_updates == 0 and cb.history == []


def test_callback_refuses_several_processes_and_rows_longer_than_completions(tok):
    cb = DiscriminatorTrainerCallback(_reward(tok, max_length=5))
    with pytest.raises(RuntimeError, match="world_size=2"):
        cb.on_train_begin(_args(world_size=2), None, None)
    with pytest.raises(ValueError, match="max_completion_length=4.*max_length=4"):
        cb.on_train_begin(_args(max_completion_length=4), None, None)


def test_checkpoint_round_trip_restores_d_and_counters(tok, tmp_path):
    r = _reward(tok)
    cb = DiscriminatorTrainerCallback(r, DiscriminatorUpdateConfig(batch_size=2, d_steps=1, until_accuracy=None))
    r(completion_ids=[[4, 5, 2], [6, 2]])
    for step in (1, 2):
        cb.on_step_end(_args(), SimpleNamespace(global_step=step), None)
    cb.on_save(_args(output_dir=str(tmp_path)), SimpleNamespace(global_step=2), None)
    saved = r.discriminator.state_dict()

    r2 = _reward(tok)
    cb2 = DiscriminatorTrainerCallback(r2, DiscriminatorUpdateConfig(batch_size=2, d_steps=1, until_accuracy=None))
    assert not all(torch.equal(saved[k], v) for k, v in r2.discriminator.state_dict().items())
    cb2.load_checkpoint(tmp_path / "checkpoint-2")
    assert all(torch.equal(saved[k], v) for k, v in r2.discriminator.state_dict().items())
    assert cb2.core.state_dict() == {"num_generator_updates": 2, "num_discriminator_updates": 2}
    assert r2.discriminator.num_updates == 2


def test_bad_inputs_name_the_value_and_the_fix(tok):
    d = build_discriminator(tok, 5, TINY_D)
    with pytest.raises(ValueError, match="max_length=9 exceeds the discriminator's max_position_embeddings=8"):
        DiscriminatorRewardFunction(d, tok, REAL, 9)
    with pytest.raises(ValueError, match="non-empty list of strings"):
        DiscriminatorRewardFunction(d, tok, [], 5)
    with pytest.raises(ValueError, match=r"real_texts\[1\] = ''"):
        DiscriminatorRewardFunction(d, tok, ["ab", ""], 5)
    with pytest.raises(ValueError, match="unknown|choose one of"):
        DiscriminatorRewardFunction(d, tok, REAL, 5, transform="sqrt")
    r = DiscriminatorRewardFunction(d, tok, REAL, 5)
    with pytest.raises(ValueError, match=f"token id {len(tok)} .*vocab_size=model.config.vocab_size"):
        r(completion_ids=[[4, len(tok)]])
    with pytest.raises(ValueError, match="needs completion_ids"):
        r(prompts=[""], completions=["ab"])
    with pytest.raises(ValueError, match=r"completion_ids\[0\] is empty"):
        r(completion_ids=[[]])
    no_eos = SimpleNamespace(eos_token_id=None)
    with pytest.raises(ValueError, match="eos_token_ids"):
        DiscriminatorRewardFunction(d, no_eos, REAL, 5)


def test_build_discriminator_covers_a_padded_model_vocabulary(tok):
    d = build_discriminator(tok, 12, TINY_D, vocab_size=len(tok) + 10)
    assert d.vocab_size == len(tok) + 10 + ID_OFFSET
    assert d.model_config.max_position_embeddings == 12  # raised to fit the rows
    assert math.isfinite(DiscriminatorRewardFunction(d, tok, REAL, 12)(completion_ids=[[len(tok) + 9]])[0])


def test_generated_rows_cut_generate_output_as_trl_does(tok):
    r = _reward(tok, max_length=5)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    out = torch.tensor([[1, 4, 5, eos, pad, pad],  # <bos> a b <eos> and generate's padding
                        [1, 4, eos, 6, eos, pad],  # only the first EOS counts
                        [1, 4, 5, 6, 7, 8]])  # never finished
    expected = r.completion_rows([[4, 5, eos], [4, eos], [4, 5, 6, 7, 8]])
    assert torch.equal(r.generated_rows(out, prompt_length=1), expected)
    assert expected[1].tolist() == [4 + ID_OFFSET, EOS_ID, PAD_ID, PAD_ID, PAD_ID]


# ------------------------------------------------------------------ bad inputs name the value and the fix
@pytest.mark.parametrize("bad", ["gpt2", b"gpt2", __import__("pathlib").Path("gpt2")])
def test_build_discriminator_refuses_a_name_for_a_tokenizer(bad):
    """len("gpt2") == 4 would be taken for a vocabulary size: a name is not a tokenizer."""
    with pytest.raises(TypeError, match="is a .*not a tokenizer; fix: load it first.*AutoTokenizer") as info:
        build_discriminator(bad, 12)
    assert "gpt2" in str(info.value)


@pytest.mark.parametrize("ids, named", [
    ([[4.0, 5.0, 2]], "token id 4.0 (row 0) is a float"),
    ([[4, 5.7]], "token id 5.7 (row 0) is a float"),  # the last id, read to tell a finished completion
    ([[4, 5], [6, True]], "token id True (row 1) is a bool"),
    ([[4, torch.tensor(5.0)]], "is a Tensor"),
])
def test_reward_refuses_float_token_ids(tok, ids, named):
    import re

    r = _reward(tok)
    with pytest.raises(TypeError, match=re.escape(named) + ".*not an integer; fix: pass integer ids"):
        r(prompts=[""] * len(ids), completions=[""] * len(ids), completion_ids=ids)
    with pytest.raises(TypeError, match="not an integer"):
        r.rows([[4, 5.0]], [True])
    with pytest.raises(TypeError, match="not an integer"):  # model.generate output cast to float
        r.generated_rows(torch.tensor([[1, 4, 5, 2]], dtype=torch.float), 1)


def test_reward_takes_integer_ids_of_any_integer_kind(tok):
    import numpy as np

    r = _reward(tok)
    ref = r.completion_rows([[4, 5, tok.eos_token_id]]).tolist()
    assert r.completion_rows([np.array([4, 5, tok.eos_token_id])]).tolist() == ref
    assert r.completion_rows([torch.tensor([4, 5, tok.eos_token_id])]).tolist() == ref


@pytest.mark.parametrize("make, named", [
    (lambda d: "no-such-org/no-such-model", "does not exist; a Hugging Face Hub name is not fetched"),
    (lambda d: (d / "f.txt").write_text("x") and d / "f.txt", "is not a directory"),
    (lambda d: d, "has no config.json"),
])
def test_trl_helper_is_local_only(tok, make, named, tmp_path, monkeypatch):
    """A model name that is not a local model directory is refused before transformers (or TRL) is asked."""
    import transformers

    from seqgan_env.integrations.trl import make_adversarial_trainer

    def no_hub(*a, **k):
        raise AssertionError("from_pretrained must not be called for a name that is not a local directory")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_hub)
    model = make(tmp_path)
    args = SimpleNamespace(max_completion_length=5, per_device_train_batch_size=4, gradient_accumulation_steps=1,
                           model_init_kwargs=None)
    with pytest.raises(ValueError, match=named + ".*fix: pass a local directory") as info:
        make_adversarial_trainer(model, tok, REAL, args)
    assert str(model) in str(info.value)
