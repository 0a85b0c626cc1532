"""The DeepSpeed learner (plain class; the Ray actor wraps it) and the token-level losses it trains with:
`sft_loss` for the warm start, `grpo_loss` (with `group_advantages`) for the RL stages."""

from tracer1.learner.grpo import aggregate, group_advantages, grpo_loss, grpo_objective, kl_per_token
from tracer1.learner.learner import Learner, deepspeed_config, lr_lambda
from tracer1.learner.losses import sft_loss

__all__ = ["Learner", "aggregate", "deepspeed_config", "group_advantages", "grpo_loss", "grpo_objective",
           "kl_per_token", "lr_lambda", "sft_loss"]
