"""REINFORCE for the SeqGAN token-generation env, one module per job.

* :mod:`~seqgan_agents.reinforce.config`: :class:`ReinforceConfig` (every hyper-parameter,
  validated on construction) and :func:`resolve_device`.
* :mod:`~seqgan_agents.reinforce.losses`: the policy-gradient maths as pure functions
  (returns, baselines, normalisation, entropy), tested with hand-computed values.
* :mod:`~seqgan_agents.reinforce.rollout`: :class:`Rollout` and ``collect``, episodes from a
  vector env through the package's one sampling loop (``seqgan_env.models.sampling``).
* :mod:`~seqgan_agents.reinforce.teacher_forced`: the teacher-forced forward DDP wraps.
* :mod:`~seqgan_agents.reinforce.agent`: :class:`ReinforceAgent`, which ties them together
  (collect, update, MLE step, env-free sampling, checkpoints).

Everything is importable from here: ``from seqgan_agents.reinforce import ReinforceAgent``.
"""

from seqgan_env.models.sampling import sampling_logits, top_p_keep_mask

from seqgan_agents.reinforce.agent import ReinforceAgent
from seqgan_agents.reinforce.config import BASELINES, DEVICES, ReinforceConfig, resolve_device
from seqgan_agents.reinforce.losses import apply_baseline, discounted_returns, entropy, normalize, trim_padding
from seqgan_agents.reinforce.rollout import Rollout, collect
from seqgan_agents.reinforce.teacher_forced import TeacherForced

__all__ = [
    "BASELINES",
    "DEVICES",
    "ReinforceAgent",
    "ReinforceConfig",
    "Rollout",
    "TeacherForced",
    "apply_baseline",
    "collect",
    "discounted_returns",
    "entropy",
    "normalize",
    "resolve_device",
    "sampling_logits",
    "top_p_keep_mask",
    "trim_padding",
]
