"""A few TRL GRPO / RLOO steps on a tiny Llama the test builds and saves itself, paid by a co-trained D.

Needs the ``trl`` extra (``pip install 'seqgan-env[trl]'``); nothing is downloaded.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

trl = pytest.importorskip("trl", reason="the TRL integration needs the trl extra: pip install 'seqgan-env[trl]'")

from seqgan_env.integrations.trl import CHECKPOINT_SUBDIR, make_adversarial_trainer  # noqa: E402
from seqgan_env.models.networks import ModelConfig  # noqa: E402
from tests._hf_tiny import char_tokenizer, tiny_llama  # noqa: E402

# transformers' own deprecation notices, raised inside TRL's trainer (gradient_checkpointing renamed): not ours
pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning:transformers.*"),
              pytest.mark.usefixtures("one_torch_thread")]

REAL = ["anna", "bob", "cora", "dave", "emma", "finn", "gina", "hugo", "ivy", "jack"]
TINY_D = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny Llama and its tokenizer saved as a model directory, as a user's would be."""
    path = tmp_path_factory.mktemp("tiny_llama")
    tok = char_tokenizer()
    tiny_llama(len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _config(algorithm: str, out: str, **kw):
    cls = trl.GRPOConfig if algorithm == "grpo" else trl.RLOOConfig
    return cls(output_dir=out, max_steps=3, per_device_train_batch_size=4, num_generations=4,
               max_completion_length=6, learning_rate=1e-3, logging_steps=1, report_to="none", use_cpu=True,
               bf16=False, save_strategy="no", seed=0, disable_tqdm=True, **kw)


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_trl_trainer_runs_with_the_discriminator_reward_and_trains_d(model_dir, tmp_path, algorithm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    trainer = make_adversarial_trainer(model_dir, tok, REAL, _config(algorithm, str(tmp_path)), algorithm=algorithm,
                                       discriminator_model=TINY_D)
    reward, callback = trainer.seqgan_reward, trainer.seqgan_callback
    d_before = {k: v.clone() for k, v in reward.discriminator.state_dict().items()}
    trainer.train()

    assert trainer.state.global_step == 3
    # one D phase after each of the 3 steps, on that step's 4 completions
    assert [h["step"] for h in callback.history] == [1, 2, 3]
    assert reward.discriminator.num_updates == callback.core.num_discriminator_updates >= 3
    assert callback.config.batch_size == 4
    assert not all(torch.equal(d_before[k], v) for k, v in reward.discriminator.state_dict().items())
    logs = trainer.state.log_history
    rewards = [e["rewards/discriminator/mean"] for e in logs if "rewards/discriminator/mean" in e]
    assert len(rewards) == 3 and all(0.0 < r < 1.0 for r in rewards)  # D(x) in (0, 1) with transform "prob"
    # D's metrics of step k are logged with the rewards of step k + 1
    d_losses = [e["discriminator/loss"] for e in logs if "discriminator/loss" in e]
    assert len(d_losses) == 2 and all(math.isfinite(x) for x in d_losses)
    assert len(reward.fakes) == 12  # every scored completion was kept as a fake


def test_grpo_checkpoints_carry_the_discriminator(model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    args = _config("grpo", str(tmp_path))
    args.save_strategy, args.save_steps = "steps", 2
    trainer = make_adversarial_trainer(model_dir, tok, REAL, args, discriminator_model=TINY_D)
    trainer.train()
    saved = tmp_path / "checkpoint-2" / CHECKPOINT_SUBDIR
    assert sorted(os.listdir(saved)) == ["callback_state.json", "discriminator.json", "discriminator.safetensors",
                                         "discriminator_optim.safetensors"]
    at_step_2 = trainer.seqgan_callback.history[1]["discriminator/updates"]
    trainer.seqgan_callback.load_checkpoint(tmp_path / "checkpoint-2")
    assert trainer.seqgan_reward.discriminator.num_updates == at_step_2
    assert trainer.seqgan_callback.core.num_generator_updates == 2


def test_every_eos_id_the_model_declares_finishes_a_completion(tmp_path):
    tok = char_tokenizer()
    model = tiny_llama(len(tok))
    model.generation_config.eos_token_id = [2, 3]  # e.g. an end-of-turn token beside the tokenizer's EOS
    trainer = make_adversarial_trainer(model, tok, REAL, _config("grpo", str(tmp_path)), discriminator_model=TINY_D)
    reward = trainer.seqgan_reward
    assert reward.eos_token_ids == {2, 3}
    assert reward.completion_rows([[4, 3]]).tolist() == reward.completion_rows([[4, 2]]).tolist()


def test_prompt_that_encodes_to_nothing_is_refused(model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok._tokenizer.post_processor = None  # now nothing adds BOS: "" is zero tokens
    with pytest.raises(ValueError, match="prompt='' encodes to no tokens.*bos_token"):
        make_adversarial_trainer(model_dir, tok, REAL, _config("grpo", str(tmp_path)))


def test_a_model_directory_is_loaded_local_only(model_dir, tmp_path):
    """A directory (str or Path) is loaded with local_files_only; the caller's args are left as they were."""
    from pathlib import Path

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    args = _config("grpo", str(tmp_path))
    trainer = make_adversarial_trainer(Path(model_dir), tok, REAL, args, discriminator_model=TINY_D)
    assert trainer.args.model_init_kwargs["local_files_only"] is True
    assert args.model_init_kwargs is None
    with pytest.raises(ValueError, match="'no-such-org/tiny' is not a local directory.*nothing is downloaded"):
        make_adversarial_trainer("no-such-org/tiny", tok, REAL, args)
