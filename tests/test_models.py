"""Tests for seqgan_env.models.networks: configs, generator, and the per-prefix discriminator net."""

import pytest
import torch
import transformers

from seqgan_env.models.networks import (
    DiscriminatorNet,
    ModelConfig,
    build_generator,
    last_token_index,
    to_llama_config,
)

VOCAB = 12
PAD, BOS, EOS = 0, 1, 2
TINY = dict(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=2,
            max_position_embeddings=32)


def tiny_cfg(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, **kw})


def make_net(num_outputs=1, seed=0, **kw) -> DiscriminatorNet:
    torch.manual_seed(seed)
    return DiscriminatorNet(tiny_cfg(**kw), VOCAB, num_outputs=num_outputs).eval()


def real_tokens(B, T, seed=0) -> torch.Tensor:
    """(B, T) symbol ids (never PAD/BOS/EOS) ending with EOS: a fully 'real' sequence."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, VOCAB, (B, T), generator=g)
    x[:, -1] = EOS
    return x


# ---------------------------------------------------------------- ModelConfig


def test_model_config_defaults_valid():
    cfg = ModelConfig()
    assert (cfg.hidden_size, cfg.num_heads, cfg.num_layers) == (32, 4, 2)
    assert cfg.head_dim == 8


def test_hidden_not_divisible_by_heads_names_both():
    with pytest.raises(ValueError) as e:
        ModelConfig(hidden_size=30, num_heads=4)
    msg = str(e.value)
    assert "hidden_size=30" in msg and "num_heads=4" in msg and "multiple" in msg


@pytest.mark.parametrize("kw, needle", [
    (dict(hidden_size=0), "hidden_size"),
    (dict(intermediate_size=-1), "intermediate_size"),
    (dict(num_layers=1.5), "num_layers"),
    (dict(num_heads=True), "num_heads"),
    (dict(max_position_embeddings=0), "max_position_embeddings"),
    (dict(hidden_size=12, num_heads=4), "even"),  # head_dim 3
    (dict(attention_dropout=1.0), "attention_dropout"),
    (dict(attention_dropout=-0.1), "attention_dropout"),
    (dict(rope_theta=0.0), "rope_theta"),
    (dict(rope_theta=float("nan")), "rope_theta"),
])
def test_model_config_rejects(kw, needle):
    with pytest.raises(ValueError, match=needle):
        ModelConfig(**kw)


def test_to_llama_config_fields():
    cfg = tiny_cfg(rope_theta=500.0, attention_dropout=0.25, tie_word_embeddings=False)
    lc = to_llama_config(cfg, VOCAB)
    assert isinstance(lc, transformers.LlamaConfig)
    assert lc.vocab_size == VOCAB and lc.hidden_size == 16 and lc.intermediate_size == 32
    assert lc.num_attention_heads == lc.num_key_value_heads == 2
    assert lc.num_hidden_layers == 2 and lc.max_position_embeddings == 32
    assert lc.rope_parameters["rope_theta"] == 500.0
    assert lc.attention_dropout == 0.25 and lc.tie_word_embeddings is False
    assert (lc.pad_token_id, lc.bos_token_id, lc.eos_token_id) == (PAD, BOS, EOS)
    with pytest.raises(ValueError, match="vocab_size"):
        to_llama_config(cfg, 2)


def test_build_generator_forward_and_tying():
    torch.manual_seed(0)
    gen = build_generator(tiny_cfg(), VOCAB)
    assert isinstance(gen, transformers.LlamaForCausalLM)
    assert gen.lm_head.weight.data_ptr() == gen.model.embed_tokens.weight.data_ptr()
    x = torch.cat([torch.full((2, 1), BOS), real_tokens(2, 5)], dim=1)  # (B, T)
    logits = gen(input_ids=x).logits  # (B, T, V)
    assert logits.shape == (2, 6, VOCAB) and torch.isfinite(logits).all()


# ---------------------------------------------------------------- last_token_index


def test_last_token_index_right_padding():
    x = torch.tensor([[5, 6, EOS, PAD, PAD],
                      [5, 6, 7, 8, EOS],
                      [PAD, PAD, PAD, PAD, PAD],
                      [EOS, PAD, PAD, PAD, PAD]])
    assert last_token_index(x).tolist() == [2, 4, 0, 0]


def test_last_token_index_with_mask():
    x = torch.tensor([[PAD, PAD, 5, EOS],
                      [5, 6, 7, EOS],
                      [PAD, PAD, PAD, PAD]])
    m = (x != PAD).long()
    assert last_token_index(x, m).tolist() == [3, 3, 0]
    # the mask, not the token ids, decides
    m2 = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert last_token_index(x, m2).tolist() == [1, 0, 0]


# ---------------------------------------------------------------- DiscriminatorNet


@pytest.mark.parametrize("num_outputs", [1, 2])
def test_one_pass_scores_every_prefix(num_outputs):
    net = make_net(num_outputs)
    x = real_tokens(3, 7)
    with torch.no_grad():
        out = net(x)
        assert out.logits.shape == (3, 7) and out.head.shape == (3, 7, num_outputs)
        assert out.cache is None
        for t in range(x.shape[1]):
            ref = net(x[:, : t + 1]).logits[:, -1]  # (B,)
            torch.testing.assert_close(out.logits[:, t], ref, atol=1e-5, rtol=0)


def test_two_output_logit_is_class_difference():
    net = make_net(2)
    x = real_tokens(2, 5)
    with torch.no_grad():
        out = net(x)
    torch.testing.assert_close(out.logits, out.head[..., 1] - out.head[..., 0])
    torch.testing.assert_close(torch.sigmoid(out.logits), out.head.softmax(-1)[..., 1],
                               atol=1e-6, rtol=0)


def test_bad_num_outputs():
    with pytest.raises(ValueError, match="num_outputs"):
        DiscriminatorNet(tiny_cfg(), VOCAB, num_outputs=3)


@pytest.mark.parametrize("num_outputs", [1, 2])
def test_left_and_right_padding_match_unpadded(num_outputs):
    net = make_net(num_outputs)
    lengths = [5, 3, 1]
    T = 6
    seqs = [real_tokens(1, n, seed=i)[0] for i, n in enumerate(lengths)]
    left = torch.full((3, T), PAD)
    right = torch.full((3, T), PAD)
    for i, s in enumerate(seqs):
        left[i, T - len(s):] = s
        right[i, : len(s)] = s
    mask = (left != PAD).long()
    with torch.no_grad():
        ref = torch.stack([net.sequence_logits(s[None])[0] for s in seqs])  # (B,)
        got_left = net.sequence_logits(left, mask)
        got_right = net.sequence_logits(right)
        # every prefix, not only the full sequence
        all_left = net(left, attention_mask=mask).logits  # (B, T)
        for i, s in enumerate(seqs):
            per_prefix = net(s[None]).logits[0]  # (n,)
            torch.testing.assert_close(all_left[i, T - len(s):], per_prefix, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_left, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_right, ref, atol=1e-5, rtol=0)


def test_4d_additive_mask_matches_2d_mask():
    net = make_net()
    x = torch.tensor([[PAD, PAD, 5, 6, EOS], [4, 5, 6, 7, EOS]])
    m2 = (x != PAD).long()  # (B, T)
    B, T = x.shape
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T)
    allowed = causal[None, None] & m2[:, None, None, :].bool()  # (B, 1, T, T)
    allowed |= torch.eye(T, dtype=torch.bool)[None, None]  # keep pad rows finite
    m4 = torch.zeros(B, 1, T, T).masked_fill(~allowed, torch.finfo(torch.float32).min)
    pos = (m2.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        a = net(x, attention_mask=m2).logits
        b = net(x, attention_mask=m4, position_ids=pos).logits
    torch.testing.assert_close(a[m2.bool()], b[m2.bool()], atol=1e-5, rtol=0)


def test_incremental_cache_matches_full_pass():
    net = make_net()
    x = real_tokens(2, 6)
    with torch.no_grad():
        full = net(x).logits  # (B, T)
        first = net(x[:, :4], use_cache=True)
        assert first.cache is not None
        rest = net(x[:, 4:], cache=first.cache, use_cache=True)
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), full,
                               atol=1e-5, rtol=0)


def test_incremental_cache_with_left_padding_mask():
    net = make_net()
    x = torch.tensor([[PAD, PAD, 5, 6, 7, EOS], [4, 5, 6, 7, 8, EOS]])
    m = (x != PAD).long()
    with torch.no_grad():
        full = net(x, attention_mask=m).logits
        first = net(x[:, :4], attention_mask=m[:, :4], use_cache=True)
        rest = net(x[:, 4:], attention_mask=m, cache=first.cache, use_cache=True)
    torch.testing.assert_close(rest.logits, full[:, 4:], atol=1e-5, rtol=0)
