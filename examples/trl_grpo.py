"""TRL's GRPOTrainer paid by a co-trained SeqGAN discriminator, on any Hugging Face causal LM.

Shows: ``make_adversarial_trainer`` (the discriminator as TRL's reward function, a callback
that trains D after every GRPO step on the completions just scored, against the real
names), with a model and tokenizer of your own. Here they are built in the script so
nothing is downloaded: a character tokenizer (``tokenizers`` WordLevel, BOS added to
every encoding, so the empty prompt is one token) and a tiny Llama, given 200 MLE steps on
the embedded census first names first, and D 50 updates on its samples (SeqGAN pretrains
both the same way).
Swap in ``AutoModelForCausalLM.from_pretrained(dir)`` and its tokenizer for a real model.

Run: python examples/trl_grpo.py      (about 50 s on a shared 2-core CPU; needs pip install 'seqgan-env[trl]')
"""

import warnings

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, PrinterCallback
from transformers.utils import logging as hf_logging
from trl import GRPOConfig

from seqgan_env.data.text import DEFAULT_DATA_PATH, load_texts
from seqgan_env.integrations.trl import make_adversarial_trainer
from seqgan_env.models.networks import ModelConfig
from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig

torch.set_num_threads(1)  # tiny models: one thread beats two that wait on each other (and on other jobs)
hf_logging.disable_progress_bar()  # keep the output to what the example prints
warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")  # deprecations inside TRL
torch.manual_seed(0)

names = load_texts(DEFAULT_DATA_PATH, max_length=None)  # 5,000+ lowercase first names

# A character tokenizer: <pad>=0 <bos>=1 <eos>=2 <unk>=3, then one id per character.
vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
vocab.update({c: i + 4 for i, c in enumerate(sorted(set("".join(names))))})
backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
backend.decoder = decoders.Fuse()
backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                    pad_token="<pad>", unk_token="<unk>")

model = LlamaForCausalLM(LlamaConfig(
    vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, max_position_embeddings=32, pad_token_id=0, bos_token_id=1, eos_token_id=2))

# MLE pretraining: <bos> name <eos>, teacher-forced; PAD positions do not count.
rows = tokenizer([n + "<eos>" for n in names], padding=True, return_tensors="pt")
ids, mask = rows["input_ids"], rows["attention_mask"]  # (N, L)
labels = ids.masked_fill(mask == 0, -100)  # (N, L)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
for step in range(200):
    batch = torch.randint(0, len(names), (64,))
    loss = model(input_ids=ids[batch], attention_mask=mask[batch], labels=labels[batch]).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"MLE pretraining: 200 steps, final loss {loss.item():.3f}")

args = GRPOConfig(
    output_dir="runs/trl_grpo_example", max_steps=90, per_device_train_batch_size=32, num_generations=8,
    max_completion_length=12, learning_rate=5e-4, beta=0.0, logging_steps=30, report_to="none", use_cpu=True,
    bf16=False, save_strategy="no", seed=0, disable_tqdm=True, log_level="error",
)
trainer = make_adversarial_trainer(
    model, tokenizer, names, args,
    discriminator_model=ModelConfig(hidden_size=32, intermediate_size=64, num_heads=4, num_layers=2),
    d_updates=DiscriminatorUpdateConfig(every=1, d_steps=1, batch_size=32),
)
# Discriminator pretraining (as SeqGAN): 50 updates on the pretrained generator's samples vs real names.
reward = trainer.seqgan_reward
prompt = tokenizer([""] * 64, return_tensors="pt")  # 64 x <bos>
for _ in range(50):
    with torch.no_grad():
        out = model.generate(**prompt, do_sample=True, max_new_tokens=12, pad_token_id=0)  # (64, 1 + 12)
    m = reward.update_discriminator(reward.generated_rows(out, prompt_length=1))
print(f"D pretraining: 50 updates, acc_real {m['acc_real']:.2f}  acc_fake {m['acc_fake']:.2f}")

trainer.remove_callback(PrinterCallback)  # the trainer's own per-log prints; the summary is printed below
trainer.train()

rewards = [e["rewards/discriminator/mean"] for e in trainer.state.log_history if "rewards/discriminator/mean" in e]
print("mean D(x) of the completions, every 30 steps:", " ".join(f"{r:.3f}" for r in rewards))
d = trainer.seqgan_callback.history[-1]
print(f"D after {int(d['discriminator/updates'])} updates: loss {d['discriminator/loss']:.3f}  "
      f"acc_real {d['discriminator/acc_real']:.2f}  acc_fake {d['discriminator/acc_fake']:.2f}")
with torch.no_grad():
    out = model.generate(**prompt, do_sample=True, max_new_tokens=12, pad_token_id=0)
print("samples:", " ".join(tokenizer.batch_decode(out[:12], skip_special_tokens=True)))
