"""A test kit for users of seqgan-env: check your own reward source, scorer, tokenizer, env or wrapper.

Call these from your pytest suite; each raises :class:`CheckError` (an ``AssertionError``) whose
message says what is wrong and how to fix it::

    from seqgan_env.testing import check_reward_source, check_env, ScriptedDiscriminator

    def test_my_reward():
        check_reward_source(mypkg.rewards.brevity)

- :func:`check_reward_source`: the ``f(tokens, texts) -> scores`` contract.
- :func:`check_tokenizer`: PAD/BOS/EOS at 0/1/2, encode/decode round trip, the row layout.
- :func:`check_env` / :func:`check_vector_env`: Gymnasium's (and SB3's) checkers, then the token
  rule, reward accounting per mode, partial resets and vector == single.
- :class:`ScriptedDiscriminator`: a PrefixScorer with scripted logits, for deterministic rewards.

Rewards that must compare across runs need a discriminator that does not train meanwhile: pay
the env with a ScriptedDiscriminator, or build it with ``update_every=None``; the env checks pause
a wrapper's own D updates where they compare runs (see ``seqgan_env.testing.envs``).
"""

from seqgan_env.testing.envs import assert_vector_matches_single, check_env, check_vector_env, random_actions
from seqgan_env.testing.errors import CheckError
from seqgan_env.testing.scripted import ScriptedDiscriminator
from seqgan_env.testing.sources import SAMPLE_TEXTS, check_reward_source
from seqgan_env.testing.tokenizers import check_tokenizer

__all__ = [
    "SAMPLE_TEXTS",
    "CheckError",
    "ScriptedDiscriminator",
    "assert_vector_matches_single",
    "check_env",
    "check_reward_source",
    "check_tokenizer",
    "check_vector_env",
    "random_actions",
]
